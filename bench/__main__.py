"""`make bench`: every benchmark, one after another (they share two cores, so never at once),
each writing its figures into docs/benchmarks.md and docs/bench/*.json, then the plots.

BENCH_PARTS picks some (comma-separated, in this order): throughput, memory, scaling, profile,
year, geo, plot.
"""

import importlib
import os
import time

from bench.run import main as throughput
from onegrid.cli.ui import console

PARTS = {
    "throughput": throughput,
    "memory": "bench.memory",
    "scaling": "bench.scaling",
    "profile": "bench.profile",
    "year": "bench.year",
    "geo": "bench.geo",
    "plot": "bench.plot",
}


def main() -> int:
    wanted = [p.strip() for p in os.environ.get("BENCH_PARTS", ",".join(PARTS)).split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PARTS]
    if unknown:
        console.print(f"[red]BENCH_PARTS: unknown {', '.join(unknown)}; the parts are {', '.join(PARTS)}[/]")
        return 2
    failed = []
    for i, part in enumerate(wanted, 1):
        console.rule(f"benchmark {i}/{len(wanted)}: {part}")
        started = time.monotonic()
        run = PARTS[part] if callable(PARTS[part]) else importlib.import_module(PARTS[part]).main
        code = run()
        console.print(
            f"{part}: {'done' if code == 0 else f'exit {code}'} in {(time.monotonic() - started) / 60:.1f} min"
        )
        if code:
            failed.append(part)
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/]")
    return 1 if failed else 0


raise SystemExit(main())
