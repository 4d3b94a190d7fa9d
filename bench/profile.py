"""Where the time goes: py-spy samples intake and routing (the measured path) while they drain
a backlog, and the samples are summed by what the code was doing (`python -m bench.profile`).

Each sample is charged to one activity, by the innermost frame that tells (a Redis call, a
publish and its confirm, marshmallow, JSON, ...), looking through eventlet's own frames (a
green socket waiting inside a Redis call is Redis time); a sample in no known library but in
OneGrid's own code counts as "OneGrid's own code", and one in eventlet's hub with nothing
above it as waiting. Env: PROFILE_EVENTS (20000), PROFILE_SECONDS (20), PROFILE_KEEP (a directory
to keep py-spy's collapsed stacks in, `<service>.txt`: input for a flame graph or a closer look).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.run import drain_backlogs, md_table, stamp, write_figures
from bench.scaling import Tenants, service_sets, start_all, stop_all
from onegrid.cli.ui import console, table

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("PROFILE_EVENTS", "20000"))
SECONDS = int(os.environ.get("PROFILE_SECONDS", "20"))
BEGIN, END = "<!-- profile: written by python -m bench.profile -->", "<!-- end of profile -->"
WAITING = "waiting (eventlet hub, nothing to do)"
# innermost match wins: (activity, substrings of a frame's file path or function)
ACTIVITIES = [
    ("Redis (scripts, transactions, socket I/O)", ("redis/",)),
    ("publishing (kombu Producer, OneGrid's bus)", ("kombu/messaging.py", "onegrid/adapters/amqp/bus.py")),
    ("AMQP I/O: frames, publisher confirms, acks (amqp, kombu)", ("amqp/", "kombu/")),
    ("marshmallow (contract validation)", ("marshmallow/",)),
    ("JSON encode/decode", ("json/",)),
    ("nameko (entrypoints, workers, containers)", ("nameko/",)),
    ("prometheus-client (metrics)", ("prometheus_client/",)),
]


def _in(frame: str, mark: str) -> bool:
    """`mark` (a package path) starts the frame's file name or one of its directories; py-spy
    names files by their full path or relative to sys.path."""
    return f"({mark}" in frame or f"/{mark}" in frame


def activity(stack: list[str]) -> str:
    """Charge a sample to the innermost frame that tells; eventlet's own frames are see-through
    (a green socket waiting inside a Redis call is Redis time), and a stack of nothing but the
    hub is a process with nothing to do."""
    green = lambda f: _in(f, "eventlet/") or _in(f, "greenlet/")  # noqa: E731
    if all(green(f) or "<module>" in f or "nameko/cli" in f for f in stack):
        return WAITING
    for frame in reversed(stack):  # innermost first
        if green(frame):
            continue
        for name, marks in ACTIVITIES:
            if any(_in(frame, m) for m in marks):
                return name
        if _in(frame, "onegrid/") or _in(frame, "services/"):
            return "OneGrid's own code"
    return "eventlet (green threads, sockets)" if any(green(f) for f in stack) else "other (interpreter, stdlib)"


def summarise(collapsed: str) -> Counter:
    """py-spy's raw (collapsed) output: `frame;frame;... count` per line, outermost first."""
    out = Counter()
    for line in collapsed.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            out[activity(stack.split(";"))] += int(n)
    return out


def py_spy() -> str | None:
    """py-spy from the PATH or from this virtualenv (make runs .venv/bin/python, not its PATH)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def profile(pids: dict[str, int], seconds: int, tmp: Path) -> dict[str, Counter]:
    procs = {
        name: subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "-o",
                str(tmp / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    }
    for p in procs.values():
        p.wait(seconds + 30)
    if keep := os.environ.get("PROFILE_KEEP"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        for name in pids:
            if (tmp / f"{name}.txt").exists():
                shutil.copy(tmp / f"{name}.txt", Path(keep) / f"{name}.txt")
    return {name: summarise((tmp / f"{name}.txt").read_text()) for name in pids if (tmp / f"{name}.txt").exists()}


def main() -> int:
    if not py_spy():
        console.print("[red]py-spy is not installed (pip install -e '.[test]')[/]")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tenants = Tenants(1, tmp)
        try:
            tenants.onboard()
            sets = service_sets(tenants, 1, ROOT / "run")
            found: dict[str, dict[str, Counter]] = {}

            def start():
                start_all(sets, 60)
                pids = {name: proc.pid for name, proc in sets[0].procs.items()}
                with console.status(f"py-spy on {', '.join(pids)} for {SECONDS}s while they drain {EVENTS:,} events"):
                    found.update(profile(pids, SECONDS, tmp))

            loads = [(tenants.simulator(0, 5), tenants.tenants[0])]
            run, _ = drain_backlogs(loads, lambda: stop_all(sets), start, EVENTS)[0]
            stop_all(sets)
        finally:
            tenants.offboard()
    return report(found, run)


def report(found: dict[str, Counter], run) -> int:
    rows = []
    for name, counts in found.items():
        total = sum(counts.values()) or 1
        busy = total - counts.get(WAITING, 0)
        for what, n in counts.most_common():
            rows.append([name, what, f"{100 * n / total:.0f}%", "—" if what == WAITING else f"{100 * n / busy:.0f}%"])
    cols = ["service", "what it was doing", "of samples", "of busy samples"]
    console.print(table(f"Where the time goes (py-spy, {SECONDS}s of a drained backlog)", cols, rows))
    when, _ = stamp()
    write_figures(
        ROOT / "docs" / "benchmarks.md",
        "\n".join(
            [
                f"Last `python -m bench.profile`: {when}; py-spy at 200 Hz on intake and routing for {SECONDS}s "
                f"while they drained a backlog of {EVENTS:,} events "
                f"({run.per_second:,.0f} events/s over the whole drain).",
                "",
                md_table(cols, rows),
            ]
        ),
        BEGIN,
        END,
    )
    return 0 if found else 1


if __name__ == "__main__":
    raise SystemExit(main())
