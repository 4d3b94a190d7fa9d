"""A year of Taiyuan replayed through the full lifecycle, report to close.

Taiyuan (DOMAIN.md): 9,375 grids (5,282 urban, 1,660 rural, 2,433 dedicated), 67,657 issues
found in the year, 67,478 closed (99.74%). The replay runs on Taiyuan's own manifest
(contracts/tenants/taiyuan.yaml: city, district, street, community, grid, and the dedicated
grids beside them, generated from those figures by onegrid.operator.seed_trees), publishes
67,657 reports whose incidents are spread over the calendar year, and lets every service and
the simulated departments, grid workers and citizens (sim.actors) take each one to its
close: dispatch, acknowledge, resolve, verify, the citizen's answer, supervision and
escalation when a deadline slips, scores and notifications.

Two clocks, said plainly: each case's deadlines run ONEGRID_TIME_SCALE times faster than life
(default 3600, an hour a second, as in the demo); the reports arrive as fast as YEAR_RATE
allows, far denser than a real year, so the wall time measures the platform, not the calendar.
Duplicate merging is narrowed to the same second and place for the same reason: compressed
arrivals would otherwise merge unrelated reports that a real year keeps days apart.

The reports keep a real year's spacing (365 days / 67,657), so YEAR_EVENTS=5638 replays
January. On two cores the whole lifecycle carries about 10 cases/s (docs/benchmarks.md), so
the full year takes about two hours.

Env: YEAR_EVENTS (67657), YEAR_RATE (reports/s offered, 10), YEAR_LIMIT_S (10800),
ONEGRID_TIME_SCALE (3600).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

import yaml
from rich.progress import Progress

from bench.plot import draw, save
from bench.run import host, md_table, stamp, write_figures
from onegrid.app.registry import load_strict
from onegrid.cli.ui import console, table
from onegrid.operator import ops
from onegrid.operator.seed_trees import TAIYUAN
from sim.accounting import gather
from sim.fake import CST
from sim.figures import CLOSURE_COLUMNS, closure_rows
from sim.live import LiveCounty
from sim.reconcile import reconcile
from sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("YEAR_EVENTS", "67657"))
RATE = float(os.environ.get("YEAR_RATE", "10"))
LIMIT_S = float(os.environ.get("YEAR_LIMIT_S", "10800"))
SCALE = os.environ.get("ONEGRID_TIME_SCALE", "3600")
BEGIN, END = "<!-- year: written by make bench (bench/year.py) -->", "<!-- end of year -->"
TAIYUAN_ID = "taiyuan"  # the tenant manifest whose tree the year runs on
YEAR_START = datetime(2025, 1, 1, tzinfo=CST).timestamp()


def span() -> str:
    """What part of the year the replayed reports cover."""
    days = 365 * EVENTS / TAIYUAN["found"]
    return "the whole year" if TAIYUAN["found"] <= EVENTS else f"the first {days:.0f} days of the year"


def county(dest: Path, tenant_id: str):
    """A private copy of Taiyuan's own manifest (contracts/tenants/taiyuan.yaml: its five-level
    tree with the dedicated grids, its ladder and tables), duplicates narrowed for the
    compressed arrivals and a deeper intake backlog for the offered rate."""
    base = yaml.safe_load((ROOT / "contracts" / "tenants" / f"{TAIYUAN_ID}.yaml").read_text(encoding="utf-8"))
    sections = {
        "name": "A year of Taiyuan (replay)",
        "name_zh": "太原市（一年回放）",
        "lifecycle": {**base["lifecycle"], "duplicates": {"window": "1s", "distance_m": 0}},
        "limits": {**base["limits"], "max_intake_backlog": 500_000},
    }
    contracts = ops.clone_tenant(ROOT / "contracts", TAIYUAN_ID, tenant_id, dest, sections)
    registry = load_strict(contracts)
    return contracts, registry, registry.tenants[tenant_id]


def drive(live: LiveCounty, sim: Simulator, planned: list) -> dict:
    """Publish at RATE, follow registration and closure until every case is closed (or the
    time limit), sampling the county's state every few seconds for the timeline plot."""
    store, timeline = live.store, []
    started = time.monotonic()
    marks = {"all registered s": None, "all closed s": None}
    with Progress(console=console) as bar:
        pub = bar.add_task("reports published", total=len(planned))
        reg = bar.add_task("cases registered", total=len(planned))
        end = bar.add_task("cases closed", total=len(planned))
        sender = threading.Thread(
            target=sim.publish,
            args=(planned,),
            kwargs={"rate": RATE, "on_sent": lambda p: bar.advance(pub)},
            daemon=True,
        )
        sender.start()
        last_sample = 0.0
        while (elapsed := time.monotonic() - started) < LIMIT_S:
            stats, still_open = store.stats(), live.open_cases()
            cases = stats.get("cases", 0)
            bar.update(reg, completed=cases)
            bar.update(end, completed=cases - still_open)
            if elapsed - last_sample >= 5:
                last_sample = elapsed
                timeline.append(
                    {"s": round(elapsed, 1), "registered": cases, "open": still_open, "closed": cases - still_open}
                )
            if marks["all registered s"] is None and cases >= len(planned):
                marks["all registered s"] = elapsed
            if not sender.is_alive() and cases >= len(planned) and still_open == 0:
                marks["all closed s"] = elapsed
                break
            time.sleep(1.0)
    return {"timeline": timeline, **marks, "wall s": time.monotonic() - started}


def main() -> int:
    tenant_id = f"year-{uuid.uuid4().hex[:6]}"
    console.rule(
        f"A year of Taiyuan: {EVENTS:,} of its {TAIYUAN['found']:,} reports ({span()}) at {RATE:.0f}/s, "
        f"case clocks x{float(SCALE):,.0f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        contracts, registry, tenant = county(Path(tmp) / "contracts", tenant_id)
        units = Counter(n.level for n in tenant.nodes.values())
        above = ", ".join(f"{units[r.level]:,} {r.level}" for r in reversed(tenant.ladder[1:]))
        dedicated = sum(g.dedicated for g in tenant.grids())
        console.print(
            f"county: {above}; {len(tenant.grids()):,} grids ({dedicated:,} dedicated), "
            f"{len(tenant.departments)} departments"
        )
        sim = Simulator(
            tenant,
            ops.uri(tenant_id),
            registry=registry,
            seed=1949,
            epoch=YEAR_START,
            spacing_s=365 * 86400 / TAIYUAN["found"],
        )
        with console.status(f"planning {EVENTS:,} reports"):
            planned = sim.plan(EVENTS)
        live = LiveCounty(
            tenant, env={"ONEGRID_TIME_SCALE": SCALE, "CONTRACTS_DIR": str(contracts)}, log_dir=ROOT / "run"
        )
        try:
            with live:
                run = drive(live, sim, planned)
                run["people at work"] = dict(sorted(live.actors.done.items()))
                with console.status("reconciling every report with its case"):
                    case_of, reason_of = gather(live.store, planned)
                    stats = live.store.stats()
                    notified = live.receiver.counts["verified"]
            return report(run, stats, case_of, reconcile(planned, case_of, reason_of), notified)
        finally:
            ops.offboard(tenant_id, delete_data=True, force=True)


def report(run: dict, stats: dict, case_of: dict, rec, notified: int) -> int:
    rows = closure_rows(stats, case_of)
    total = rows[-1]
    closed = total[2] + total[3]
    wall = run["all closed s"] or run["wall s"]
    summary_cols = [
        "reports",
        "cases",
        "closed",
        "closure rate",
        "Taiyuan's",
        "wall time",
        "cases/s",
        "all registered at",
        "escalations",
        "supervisions (督办)",
        "reopened",
        "notifications",
    ]
    summary = [
        [
            f"{EVENTS:,}",
            f"{stats.get('cases', 0):,}",
            f"{closed:,}",
            f"{closed / max(1, total[1]):.2%}",
            f"{TAIYUAN['closed'] / TAIYUAN['found']:.2%}",
            f"{wall / 60:.1f} min" + ("" if run["all closed s"] else " (limit reached)"),
            f"{stats.get('cases', 0) / wall:.1f}",
            f"{run['all registered s'] / 60:.1f} min" if run["all registered s"] else "—",
            f"{total[6]:,}",
            f"{stats.get('supervisions', 0):,}",
            f"{stats.get('reopened', 0):,}",
            f"{notified:,}",
        ]
    ]
    console.print(table("A year of Taiyuan, replayed", summary_cols, summary))
    console.print(table("Closure by category", CLOSURE_COLUMNS, rows))
    console.print(f"people at work (actions taken: outcome): {run['people at work']}")
    problems = list(rec.problems)
    if not run["all closed s"]:
        problems.append(f"{total[1] - closed} cases still open after {LIMIT_S:.0f}s")
    when, commit = stamp()
    save(
        "year",
        {
            "when": when,
            "commit": commit,
            "machine": host(),
            "span": span(),
            "events": EVENTS,
            "rate": RATE,
            "scale": float(SCALE),
            **run,
            "summary": dict(zip(summary_cols, summary[0], strict=True)),
            "closure": [dict(zip(CLOSURE_COLUMNS, r, strict=True)) for r in rows],
        },
    )
    draw(["year"])
    write_figures(
        ROOT / "docs" / "benchmarks.md",
        "\n".join(
            [
                f"Last replay: {when}, commit {commit or 'uncommitted'}; "
                f"{EVENTS:,} of Taiyuan's {TAIYUAN['found']:,} reports ({span()}) offered at {RATE:.0f}/s, "
                f"case clocks x{float(SCALE):,.0f}; "
                "every service, 16 simulated departments, grid workers and citizens.",
                "",
                md_table(summary_cols, summary),
                "",
                md_table(CLOSURE_COLUMNS, rows),
                "",
                f"Reconciliation: {len(rec.problems)} discrepancies"
                + ("" if not problems else f"; {'; '.join(problems[:3])}"),
                "",
                "![A year of Taiyuan replayed, over wall time](bench/year.png)",
            ]
        ),
        BEGIN,
        END,
    )
    console.print("written to docs/benchmarks.md, docs/bench/year.json and year.png")
    if problems:
        console.print(f"[red]{len(problems)} problems[/]")
        for p in problems[:20]:
            console.print("  " + p)
        return 1
    console.print(f"[green]every one of {EVENTS:,} reports is exactly one case, and every case is closed[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
