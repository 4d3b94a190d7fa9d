"""The container image's recipe, read the way a reviewer would: a pinned base, the locked
dependencies and nothing else (offline from the wheelhouse when there is one), a non-root user,
a health check, the service chosen by the command. `make image` builds it with podman and
tests/deploy/test_container.py runs it."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib

import pytest

from onegrid.catalogue import SERVICES
from tests.deploy.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def stages() -> list[dict]:
    args: dict[str, str] = {}
    stages: list[dict] = []
    for op, rest in _instructions():
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], rest.split()[0])
            stages.append({"from": image, "ops": []})
        else:
            stages[-1]["ops"].append((op, rest))
    return stages


def test_base_images_are_pinned(stages):
    assert len(stages) == 2, "a build stage and a slim runtime stage"
    for stage in stages:
        image = stage["from"]
        assert "@sha256:" in image or re.search(r":\d+\.\d+\.\d+[-\w.]*$", image), f"{image}: pin a full version"
        assert not image.endswith(":latest")


def test_dependencies_come_from_the_lock_only(stages):
    build = " ".join(rest for op, rest in stages[0]["ops"] if op == "RUN")
    assert "-r requirements.lock" in build and "--no-deps" in build and "--require-hashes" in build
    installs = re.findall(r"pip install ([^&]*)", build)
    assert installs and all("--no-deps" in i for i in installs), installs
    assert "pip check" in build


def test_runtime_runs_as_a_non_root_user_with_a_health_check(stages):
    ops = stages[1]["ops"]
    users = [rest for op, rest in ops if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert [op for op, _ in ops].index("USER") > max(i for i, (op, _) in enumerate(ops) if op in ("RUN", "COPY"))
    (health,) = [rest for op, rest in ops if op == "HEALTHCHECK"]
    assert "/livez" in health and "--timeout" in health
    probe = json.loads(health.split(" CMD ", 1)[1])  # exec form: a JSON array, no shell
    assert probe[:2] == ["python", "-c"]
    compile(probe[2], "HEALTHCHECK", "exec")
    entry = [json.loads(rest) for op, rest in ops if op == "ENTRYPOINT"]
    cmd = [json.loads(rest) for op, rest in ops if op == "CMD"]
    assert entry == [["onegrid"]] and cmd[-1][0] == "serve" and cmd[-1][1] in SERVICES
    env = " ".join(rest for op, rest in ops if op == "ENV")
    assert "ONEGRID_CONFIG=/app/config.yml" in env and "PYTHONDONTWRITEBYTECODE=1" in env
    copied = " ".join(rest for op, rest in ops if op == "COPY")
    assert "config.yml" in copied and "contracts" in copied
    # what the Deployment runs must be what the image's entrypoint understands
    from onegrid.cli.main import main

    for service in SERVICES:
        with pytest.raises(SystemExit) as help_exit:
            main(["serve", service, "--help"])
        assert help_exit.value.code == 0


def _pins(lock: str) -> dict[str, str]:
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / lock).read_text(), re.M)}


def test_the_locks_are_current_and_pin_pyprojects_dependencies():
    """Stale only when pyproject.toml's dependencies changed and `make lock` was not run: the
    check reads a digest, so an upstream release can never make it fail."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lock.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr + out.stdout
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime, test = _pins("requirements.lock"), _pins("requirements-test.lock")
    for lock, deps in (
        (runtime, project["dependencies"]),
        (test, project["dependencies"] + project["optional-dependencies"]["test"]),
    ):
        for dep in deps:
            pin = re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;]+)", dep)  # extras: name[extra]==version
            assert pin, f"{dep}: pin an exact version"
            name, version = pin.groups()
            key = re.sub(r"[-_.]+", "-", name).lower()
            assert lock.get(key) == version, f"{name}: pyproject pins {version}, the lock has {lock.get(key)}"
    # the test lock is compiled with the runtime lock as constraints: they agree on every runtime pin
    assert {k: v for k, v in test.items() if k in runtime} == {k: v for k, v in runtime.items() if k in test}


def test_the_locks_are_hash_pinned_with_markers():
    for lock in ("requirements.lock", "requirements-test.lock"):
        text = (ROOT / lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        assert entries and all("--hash=sha256:" in e for e in entries if "==" in e), lock
    # Debian bookworm's python3 is 3.11.2: redis needs async-timeout there and not on 3.11.3+
    assert re.search(
        r"^async-timeout==\S+ ; python_full_version < '3.11.3'", (ROOT / "requirements.lock").read_text(), re.M
    )


def test_the_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests", "run", "build"} <= set(ignored)


def test_the_build_installs_offline_from_the_wheelhouse_when_it_has_one(stages):
    """`make image` fills deploy/image/wheels and builds with no network; a plain `docker build`
    with network finds only its README there and installs the same hashed files from the index."""
    ops = stages[0]["ops"]
    copies = [rest.split() for op, rest in ops if op == "COPY"]
    assert ["deploy/image/wheels/", "/wheels/"] in copies
    install = next(rest for op, rest in ops if op == "RUN" and "-r requirements.lock" in rest)
    assert re.search(r"if ls /wheels/\*\.whl .*then set -- --no-index --find-links /wheels; fi", install)
    assert '"$@"' in install
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy" in ignored and "!deploy/image/wheels" in ignored  # the one part of deploy/ sent
    assert (ROOT / "deploy" / "image" / "wheels" / "README.md").exists()  # so COPY finds the directory


def _wheelhouse():
    spec = importlib.util.spec_from_file_location("image_wheelhouse", ROOT / "scripts" / "image-wheelhouse.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheelhouse_follows_the_images_python_not_the_hosts():
    """pip download would evaluate the lock's markers for the host's Python: bookworm's 3.11.2
    needs async-timeout, which a host on 3.11.7 would leave out."""
    wheelhouse = _wheelhouse()
    lock = (ROOT / "requirements.lock").read_text()
    bookworm = wheelhouse.for_target(lock, wheelhouse.target_environment("3.11.2"))
    newer = wheelhouse.for_target(lock, wheelhouse.target_environment("3.11.11"))
    names = {v: set(re.findall(r"^([A-Za-z0-9_.-]+)==", text, re.M)) for v, text in (("b", bookworm), ("n", newer))}
    assert "async-timeout" in names["b"] and "async-timeout" not in names["n"]
    assert "tzdata" not in names["b"]  # sys_platform == 'win32'
    assert names["b"] - {"async-timeout"} == names["n"] == set(_pins("requirements.lock")) - {"async-timeout", "tzdata"}
    for text in (bookworm, newer):  # markers gone, every file still hash-checked
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.strip())
        assert all(";" not in e.split("\n")[0] and "--hash=sha256:" in e for e in entries)


def test_the_demo_harness_is_not_in_the_image(stages):
    """sim/ (demo, simulator, actors, fake data, runner) is for a source checkout only."""
    assert "sim" in (ROOT / ".dockerignore").read_text().split()
    copied = [rest.split()[0] for stage in stages for op, rest in stage["ops"] if op == "COPY"]
    assert not any(src.rstrip("/") in ("sim", ".") for src in copied), copied
