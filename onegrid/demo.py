"""`make demo`: a demo county on the real bus, from department events to closed cases.

Onboards the tenant (fresh), starts every service as a `nameko run` process with time
compressed (ONEGRID_TIME_SCALE, default 3600: an hour of deadline passes in a second),
publishes a realistic mix from all 16 departments with some bad events and some duplicates,
lets simulated departments, grid workers and citizens work (onegrid.actors), then prints what
happened — in the shape of Qinling Rd street's closure table — and stops everything.
Exits non-zero if any published event is unaccounted for.
"""
from __future__ import annotations

import os
import threading
import time

from kombu import Connection
from rich.progress import Progress

from onegrid import ops
from onegrid.accounting import gather
from onegrid.actors import Actors
from onegrid.adapters import topology
from onegrid.figures import closure_table, notify_table, scoring_tables
from onegrid.live import LiveCounty
from onegrid.reconcile import reconcile
from onegrid.simulator import Simulator
from onegrid.ui import console, table

SCALE = os.environ.get("ONEGRID_TIME_SCALE", "3600")
LIMIT_S = 240


def run(tenant_id: str, events: int, contracts_dir: str, services_to_run=None) -> int:
    tenant = ops.tenant(tenant_id, contracts_dir)
    console.rule(f"OneGrid demo: {tenant.name_zh} ({tenant.id}), {len(tenant.grids())} grids, "
                 f"{len(tenant.departments)} departments; time x{float(SCALE):,.0f}")
    with LiveCounty(tenant, env={"ONEGRID_TIME_SCALE": SCALE}, services=services_to_run) as county:
        return _drive(county, events)


def _drive(county: LiveCounty, events: int) -> int:
    tenant, store, services = county.tenant, county.store, county.services
    sim = Simulator(tenant, county.uri, seed=2026)
    planned = sim.plan(events, bad_every=40, duplicate_every=30)
    started = time.monotonic()
    with Progress(console=console) as bar:
        pub = bar.add_task("departments publishing", total=len(planned))
        reg = bar.add_task("registered or quarantined", total=len(planned))
        end = bar.add_task("cases closed, merged or rejected", total=None)
        sender = threading.Thread(target=lambda: sim.publish(planned, rate=80, on_sent=lambda p: bar.advance(pub)))
        sender.start()
        while time.monotonic() - started < LIMIT_S:
            stats = store.stats()
            bar.update(reg, completed=stats.get("cases", 0) + stats.get("quarantined", 0))
            cases, still_open = stats.get("cases", 0), county.open_cases()
            bar.update(end, total=cases or None, completed=cases - still_open)
            if not sender.is_alive() and cases + stats.get("quarantined", 0) >= len(planned) and still_open == 0:
                break
            time.sleep(0.25)
        sender.join()
    code = _report(tenant, planned, store, time.monotonic() - started, county.actors)
    if "scoring" in services.names:
        for t in scoring_tables(services.url("scoring")):
            console.print(t)
    if "notify" in services.names:
        console.print(notify_table(services.url("notify"), county.receiver))
    return code


def _report(tenant, planned, store, elapsed: float, actors: Actors) -> int:
    case_of, reason_of = gather(store, planned)
    rec = reconcile(planned, case_of, reason_of)
    stats = store.stats()

    accounted = rec.cases_found + sum(rec.quarantine_found.values())
    console.print(table("Received", ["published", "cases registered", "merged as duplicates", "quarantined",
                                     "accounted for", "seconds"],
                        [[rec.published, stats.get("cases", 0), stats.get("merged", 0), stats.get("quarantined", 0),
                          f"{accounted}/{rec.published}", f"{elapsed:.0f}"]]))
    reasons = sorted(set(rec.quarantine_expected) | {k.split(":", 1)[1] for k in stats if k.startswith("quarantine:")})
    console.print(table("Quarantined by reason", ["reason", "sent to provoke it", "found in quarantine"],
                        [[r, rec.quarantine_expected.get(r, 0), stats.get(f"quarantine:{r}", 0)] for r in reasons]))
    console.print(table("Routed by level (琐事不出网格、小事不出社区、大事不出街道)", ["level", "work orders"],
                        [[lvl, stats.get(f"level:{lvl}", 0)] for lvl in ("grid", "community", "street", "county")]))
    depth = _queue_depths(tenant)
    console.print(table("Routed by department", ["department", "work orders", "accepted", "resolved", "returned",
                                                 "left in its queue"],
                        [[d, stats.get(f"department:{d}", 0), stats.get(f"{d}:accepted", 0),
                          stats.get(f"{d}:resolved", 0), stats.get(f"{d}:returned", 0), depth.get(d, 0)]
                         for d in tenant.departments]))
    console.print(closure_table(stats, case_of, "Closure by category (as Qinling Rd reports it: 805 problems, "
                                "790 solved, 98.14%)"))
    console.print(f"supervisions (督办): {stats.get('supervisions', 0)}; reopened: {stats.get('reopened', 0)}; "
                  f"people at work: {dict(sorted(actors.done.items()))}")
    if rec.ok:
        console.print(f"[green]reconciled: every one of {rec.published} events is exactly one case (or merged into "
                      f"the case it duplicates) or one quarantine entry with its reason[/]")
        return 0
    console.print(f"[red]{len(rec.problems)} discrepancies[/]")
    for problem in rec.problems[:20]:
        console.print("  " + problem)
    return 1


def _queue_depths(tenant) -> dict[str, int]:
    depths = {}
    with Connection(ops.uri(tenant.id)) as conn:
        channel = conn.channel()
        for dept in tenant.departments:
            _, count, _ = topology.work_queue(dept)(channel).queue_declare(passive=True)
            depths[dept] = count
    return depths
