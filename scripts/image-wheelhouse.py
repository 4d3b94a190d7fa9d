"""The image's wheelhouse: every file requirements.lock names, for the image's Python and platform,
downloaded on the host so the image build needs no network (and an air-gapped county copies one
directory). The lock's markers are evaluated for the image's interpreter, not this one: pip
download evaluates them for the interpreter it runs on, which would drop async-timeout
(python_full_version < '3.11.3') for Debian bookworm's 3.11.2 when the host runs 3.11.7.

Every file is checked against the lock's hashes (--require-hashes). A package with no wheel for
the platform is kept as its locked sdist, built inside the build from the wheelhouse: a wheel
built here would not match the lock's hashes.

    python scripts/image-wheelhouse.py --python 3.11.2 --lock requirements.lock --dest deploy/image/wheels
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import Marker

# Debian bookworm's glibc is 2.36: any manylinux wheel up to that runs on it
GLIBC_MINOR = 36
STAMP = ".lock-digest"


def target_environment(python: str) -> dict[str, str]:
    """The marker environment of a CPython `python` on Linux, this machine's architecture."""
    return {
        "implementation_name": "cpython",
        "implementation_version": python,
        "os_name": "posix",
        "platform_machine": platform.machine(),
        "platform_python_implementation": "CPython",
        "platform_system": "Linux",
        "python_full_version": python,
        "python_version": ".".join(python.split(".")[:2]),
        "sys_platform": "linux",
    }


def for_target(lock: str, env: dict[str, str]) -> str:
    """The lock's entries whose markers hold in `env`, markers removed (hashes kept)."""
    header, *entries = re.split(r"\n(?=[A-Za-z0-9])", lock)
    kept = []
    for entry in entries:
        first, _, rest = entry.partition("\\\n")
        spec, _, marker = first.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(env):
            continue
        kept.append(f"{spec.strip()} \\\n{rest}")
    return "\n".join(kept) + "\n"


def platforms() -> list[str]:
    arch = platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 4, -1)]
    return tags + [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", f"linux_{arch}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", required=True, help="the image's Python version, e.g. 3.11.2")
    parser.add_argument("--lock", type=Path, default=Path("requirements.lock"))
    parser.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args(argv)

    requirements = for_target(args.lock.read_text(encoding="utf-8"), target_environment(args.python))
    digest = hashlib.sha256(f"{args.python} {platform.machine()}\n{requirements}".encode()).hexdigest()
    stamp = args.dest / STAMP
    if stamp.exists() and stamp.read_text().strip() == digest:
        print(f"wheelhouse: {args.dest} is current for Python {args.python}")
        return 0
    args.dest.mkdir(parents=True, exist_ok=True)
    for old in [*args.dest.glob("*.whl"), *args.dest.glob("*.tar.gz"), *args.dest.glob("*.zip"), stamp]:
        old.unlink(missing_ok=True)
    major, minor = args.python.split(".")[:2]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="image-lock-") as req:
        req.write(requirements)
        req.flush()
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--no-deps"]
        command += ["--prefer-binary", "--implementation", "cp", "--python-version", args.python]
        command += ["--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none"]
        command += [arg for tag in platforms() for arg in ("--platform", tag)]
        command += ["-r", req.name, "-d", str(args.dest)]
        print(f"wheelhouse: pip download {requirements.count('==')} locked files for CPython {args.python}")
        done = subprocess.run(command, stderr=subprocess.PIPE, text=True)
        # this machine's pip.conf names extra local indexes that lack most projects: not news
        noise = "is ignored: it is neither a file nor a directory"
        sys.stderr.write("".join(line for line in done.stderr.splitlines(True) if noise not in line))
        if done.returncode:
            return done.returncode
    sdists = sorted(p.name for p in args.dest.iterdir() if p.suffix in (".gz", ".zip"))
    if sdists:
        print(f"wheelhouse: no wheel for {', '.join(sdists)}: built from the locked sdist during the image build")
    stamp.write_text(digest + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
