"""The container image's recipe. No Docker engine here (nor in CI) can build it, so these
read the Dockerfile the way a reviewer would: a pinned base, the locked dependencies and
nothing else, a non-root user, a health check, the service chosen by the command."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest

from onegrid.runner import SERVICES
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
def stages():
    args, stages = {}, []
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
    assert "-r requirements.lock" in build and "--no-deps" in build
    installs = re.findall(r"pip install ([^&]*)", build)
    assert installs and all("--no-deps" in i for i in installs), installs
    assert "pip check" in build


def test_runtime_runs_as_a_non_root_user_with_a_health_check(stages):
    ops = stages[1]["ops"]
    users = [rest for op, rest in ops if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert [op for op, _ in ops].index("USER") > max(i for i, (op, _) in enumerate(ops) if op in ("RUN", "COPY"))
    (health,) = [rest for op, rest in ops if op == "HEALTHCHECK"]
    assert "/health" in health and "--timeout" in health
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
    from onegrid.cli import main
    for service in SERVICES:
        with pytest.raises(SystemExit) as help_exit:
            main(["serve", service, "--help"])
        assert help_exit.value.code == 0


def test_the_lock_is_current_and_pins_pyprojects_dependencies():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock-requirements.py"), "--check"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    locked = dict(line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines()
                  if line and not line.startswith("#"))
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, version = re.match(r"([A-Za-z0-9_.-]+)==([^\s;]+)", dep).groups()
        key = re.sub(r"[-_.]+", "-", name).lower()
        assert locked.get(key) == version, f"{name}: pyproject pins {version}, the lock has {locked.get(key)}"


def test_the_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "tests", "run"} <= set(ignored)
