#!/usr/bin/env python3
"""Compile OneGrid's two hash-pinned locks with uv (`make lock`):

  requirements.lock       the runtime: what the image installs (--require-hashes, --no-deps)
  requirements-test.lock  the runtime lock as constraints, plus the `test` extra: what `make`
                          installs into .venv

Both are universal (markers kept: redis needs async-timeout below Python 3.11.3, which is
Debian bookworm's python3) and carry, on their first line, the digest of the pyproject.toml
sections they were compiled from. `--check` compares that digest only: a lock is stale when
pyproject.toml changed and it was not recompiled, never because something new was released.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements.lock"
TEST = ROOT / "requirements-test.lock"
PYTHON = "3.11"  # the oldest Python the project supports (requires-python)
MARK = "# inputs-sha256: "


def inputs_digest(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The digest of what a lock is compiled from: requires-python, the dependencies and the
    extras. Anything else in pyproject.toml (tool settings, the description) may change freely."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    inputs = {k: project.get(k) for k in ("requires-python", "dependencies", "optional-dependencies")}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    first = lock.read_text(encoding="utf-8").splitlines()[:1] if lock.exists() else []
    return first[0].removeprefix(MARK) if first and first[0].startswith(MARK) else None


def compile_lock(uv: str, out: Path, *extra: str) -> None:
    cmd = [
        uv,
        "pip",
        "compile",
        "pyproject.toml",
        "--universal",
        "--python-version",
        PYTHON,
        "--generate-hashes",
        "--no-header",
        "--quiet",
        *extra,
    ]
    body = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    how = " ".join(["uv", *cmd[1:], "-o", out.name])
    out.write_text(f"{MARK}{inputs_digest()}\n# compiled by `make lock`: {how}\n{body}", encoding="utf-8")
    print(f"lock: wrote {out.name} ({body.count('==')} packages)")


def main(argv: list[str]) -> int:
    if argv[1:] == ["--check"]:
        stale = [lock.name for lock in (RUNTIME, TEST) if recorded_digest(lock) != inputs_digest()]
        for name in stale:
            print(f"{name} is stale: pyproject.toml changed since it was compiled; run `make lock`", file=sys.stderr)
        return 1 if stale else 0
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        print("lock: uv is not installed (it is in the test extra: make the venv first)", file=sys.stderr)
        return 2
    compile_lock(uv, RUNTIME)
    compile_lock(uv, TEST, "--extra", "test", "--constraint", RUNTIME.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
