"""The layers keep their order: what each may import, read from the source (ast), every import
counted, also those inside functions.

    kernel      the standard library and third parties only, nothing else of onegrid
    contracts   the kernel
    domain, app no I/O library (bus, Redis, HTTP) and nothing of the layers above them:
    adapters, operator, cli, services, sim; and nothing in onegrid/ or services/ imports sim

The environment is read in one place, onegrid/kernel/settings.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ("kernel", "contracts", "domain", "app")  # the layers below the adapters
IO_LIBRARIES = ("nameko", "kombu", "amqp", "redis", "eventlet", "werkzeug", "requests")
ABOVE = ("onegrid.adapters", "onegrid.operator", "onegrid.cli", "services", "sim")
ENV_READER = "onegrid.kernel.settings"
# module -> why it still reads the environment itself (to be moved to settings)
ENV_NOT_YET: dict[str, str] = {}  # module -> why it still reads the environment itself (none left)
ALLOWED_ONEGRID = {  # the only parts of onegrid a layer may import
    "kernel": ("onegrid.kernel",),
    "contracts": ("onegrid.kernel", "onegrid.contracts"),
}


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module `path` imports, dotted; `from a import b` counts as a.b (b may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _cases(*folders: str) -> list:
    """One test case per module, named by it."""
    return [pytest.param(path, id=_module_name(path)) for path in _modules(*folders)]


def _violations(path: Path, forbidden, root: Path = ROOT) -> list[str]:
    return sorted(name for name in imports(path, root) if any(_within(name, f) for f in forbidden))


@pytest.mark.parametrize("path", _cases(*(f"onegrid/{layer}" for layer in PURE)))
def test_the_pure_layers_import_no_io_library(path):
    assert _violations(path, IO_LIBRARIES) == []


@pytest.mark.parametrize("path", _cases(*(f"onegrid/{layer}" for layer in PURE)))
def test_the_pure_layers_import_nothing_above_them(path):
    assert _violations(path, ABOVE) == []


@pytest.mark.parametrize("path", _cases(*(f"onegrid/{layer}" for layer in ALLOWED_ONEGRID)))
def test_the_kernel_imports_only_itself_and_contracts_only_the_kernel(path):
    layer = _module_name(path).split(".")[1]
    onegrid = {name for name in imports(path) if _within(name, "onegrid")}
    assert sorted(n for n in onegrid if not any(_within(n, a) for a in ALLOWED_ONEGRID[layer])) == []


@pytest.mark.parametrize("path", _cases("onegrid", "services"))
def test_nothing_that_ships_imports_the_demo_harness(path):
    assert _violations(path, ("sim",)) == []


def environment_reads(path: Path) -> list[int]:
    """The lines where `path` touches the environment: os.environ, os.getenv, os.putenv, or
    environ/getenv imported from os."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "environb", "getenv", "putenv", "unsetenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "environb", "getenv") for a in node.names)
        ):
            lines.append(node.lineno)
    return sorted(lines)


def _env_cases() -> list:
    out = []
    for path in _modules("onegrid", "services"):
        module = _module_name(path)
        if module == ENV_READER:
            continue
        why = ENV_NOT_YET.get(module)
        out.append(pytest.param(path, id=module, marks=[pytest.mark.xfail(reason=why, strict=True)] if why else []))
    return out


@pytest.mark.parametrize("path", _env_cases())
def test_only_settings_reads_the_environment(path):
    assert environment_reads(path) == [], "read it through onegrid.kernel.settings"


def test_the_rules_see_imports_of_every_form(tmp_path):
    # the parser itself: plain, from, relative and function-level imports all count
    pkg = tmp_path / "onegrid" / "domain"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    mod = pkg / "x.py"
    mod.write_text(
        "import redis.client\nfrom ..adapters import bus\nfrom . import cases\n"
        "def f():\n    from sim import demo\n    import kombu\n"
    )
    assert imports(mod, tmp_path) == {
        "redis.client",
        "onegrid.adapters.bus",
        "onegrid.domain.cases",
        "sim.demo",
        "kombu",
    }
    assert _violations(mod, IO_LIBRARIES, tmp_path) == ["kombu", "redis.client"]
    assert _violations(mod, ABOVE, tmp_path) == ["onegrid.adapters.bus", "sim.demo"]


def test_environment_reads_are_seen_in_every_form(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text("import os\nfrom os import getenv\na = os.environ['A']\nb = os.getenv('B')\nc = os.path.sep\n")
    assert environment_reads(mod) == [2, 3, 4]
