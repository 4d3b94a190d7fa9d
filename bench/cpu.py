"""What the processes of a benchmark cost, from /proc (no psutil): CPU time per process, of
the broker, of Redis and of the whole machine, sampled through a run; memory (RSS).
bench/scaling.py and bench/run.py measure with it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from onegrid.kernel import settings
from sim.runner import ServiceSet

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5), after pid and comm


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pids_named(name: str) -> list[int]:
    """Processes whose command (comm) is `name`, e.g. beam.smp or redis-server."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuSampler:
    """Samples, four times a second in a thread, the CPU time so far of every service process
    of `sets`, of the broker, of Redis and of the machine; `between(t0, t1)` (time.time())
    gives each as percent of one core over that span, the machine's as percent of all cores."""

    def __init__(self, sets: list[ServiceSet], interval: float = 0.25):
        port = f":{urlparse(settings.redis_url()).port or 6379}"
        self.others = {
            "rabbitmq": pids_named("beam.smp"),
            "redis": [p for p in pids_named("redis-server") if port in _cmdline(p)],
        }
        self.sets, self.interval = sets, interval
        self.samples: list[tuple[float, dict[str, float], tuple[int, int]]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        cpu = {name: cpu_seconds(pid) for name, pid in processes(self.sets).items()}
        cpu.update({k: sum(cpu_seconds(p) for p in pids) for k, pids in self.others.items()})
        self.samples.append((time.time(), cpu, machine_jiffies()))

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            self.sample()

    def __enter__(self) -> CpuSampler:
        self.sample()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.sample()

    def between(self, t0: float, t1: float) -> dict[str, float]:
        a = max((s for s in self.samples if s[0] <= t0), key=lambda s: s[0], default=self.samples[0])
        b = min((s for s in self.samples if s[0] >= t1), key=lambda s: s[0], default=self.samples[-1])
        wall = max(1e-6, b[0] - a[0])
        out = {name: 100 * (used - a[1].get(name, 0.0)) / wall for name, used in b[1].items()}
        out["machine (all cores)"] = 100 * (b[2][0] - a[2][0]) / max(1, b[2][1] - a[2][1])
        return out


def processes(sets: list[ServiceSet]) -> dict[str, int]:
    """Every instance's pid, named <tenant>/<instance>."""
    return {f"{s.tenant}/{name}": p.pid for s in sets for name, p in s.procs.items() if p.poll() is None}
