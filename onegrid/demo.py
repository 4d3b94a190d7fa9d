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
import secrets
import threading
import time

from kombu import Connection
from rich.progress import Progress

from onegrid import ops
from onegrid.accounting import gather
from onegrid.actors import Actors
from onegrid.adapters import topology
from onegrid.domain.lifecycle import OPEN_CASE
from onegrid.figures import notify_table, scoring_tables
from onegrid.notify_receiver import WebhookReceiver
from onegrid.reconcile import reconcile
from onegrid.runner import ServiceSet
from onegrid.simulator import Simulator
from onegrid.ui import console, table

SCALE = os.environ.get("ONEGRID_TIME_SCALE", "3600")
LIMIT_S = 240


def run(tenant_id: str, events: int, contracts_dir: str, services_to_run=None) -> int:
    tenant = ops.tenant(tenant_id, contracts_dir)
    console.rule(f"OneGrid demo: {tenant.name_zh} ({tenant.id}), {len(tenant.grids())} grids, "
                 f"{len(tenant.departments)} departments; time x{float(SCALE):,.0f}")
    result = ops.onboard(tenant, reset=True)
    console.print(f"onboarded: vhost [bold]{tenant.id}[/], {len(result['queues'])} queues")
    secret = secrets.token_hex(16)
    receiver = WebhookReceiver(secret.encode()).start()  # notifications land here, signatures checked
    services = ServiceSet(tenant.id, ops.uri(tenant.id),
                          env={"ONEGRID_TIME_SCALE": SCALE, "ONEGRID_WEBHOOK_SECRET": secret,
                               "NOTIFY_WEBHOOK_URL": receiver.url},
                          **({"services": services_to_run} if services_to_run else {}))
    with console.status(f"starting {', '.join(services.names)}"):
        services.start()
    console.print(f"services up: {', '.join(f'{n} {services.url(n)}' for n in services.names)}")
    actors = Actors(ops.uri(tenant.id), services.url("departments"), services.url("supervision"),
                    tenant.departments).start()
    try:
        return _drive(tenant, events, actors, services, receiver)
    finally:
        actors.close()
        receiver.close()
        with console.status("stopping services"):
            services.stop()
        console.print("services stopped")


def _open(store) -> int:
    pipe = store.r.pipeline()
    for status in OPEN_CASE:
        pipe.zcard(store.key("idx", "status", status))
    return sum(pipe.execute())


def _drive(tenant, events: int, actors: Actors, services: ServiceSet, receiver) -> int:
    store = ops.store(tenant.id)
    sim = Simulator(tenant, ops.uri(tenant.id), seed=2026)
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
            cases = stats.get("cases", 0)
            bar.update(end, total=cases or None, completed=cases - _open(store))
            if not sender.is_alive() and stats.get("cases", 0) + stats.get("quarantined", 0) >= len(planned) \
                    and _open(store) == 0:
                break
            time.sleep(0.25)
        sender.join()
    code = _report(tenant, planned, store, time.monotonic() - started, actors)
    if "scoring" in services.names:
        for t in scoring_tables(services.url("scoring")):
            console.print(t)
    if "notify" in services.names:
        console.print(notify_table(services.url("notify"), receiver))
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
    console.print(_closure(tenant, stats, case_of))
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


def _closure(tenant, stats: dict, case_of: dict):
    """Qinling Rd's table: problems by area, how many solved; plus how, on time, escalated."""
    reported = {}
    for case in case_of.values():
        if case["status"] != "merged":
            reported[case["category"]] = reported.get(case["category"], 0) + 1
    rows, total = [], [0, 0, 0, 0, 0]
    for cat, n in sorted(reported.items(), key=lambda kv: -kv[1]):
        fixed, not_fixed = stats.get(f"closed:{cat}:fixed", 0), stats.get(f"closed:{cat}:not_fixed", 0)
        on_time, esc = stats.get(f"closed_on_time:{cat}", 0), stats.get(f"escalations:{cat}", 0)
        rows.append([cat, n, fixed, not_fixed, f"{fixed / n:.2%}", f"{on_time / fixed:.0%}" if fixed else "—", esc])
        total = [a + b for a, b in zip(total, (n, fixed, not_fixed, on_time, esc))]
    n, fixed, not_fixed, on_time, esc = total
    rows.append(["all", n, fixed, not_fixed, f"{fixed / n:.2%}" if n else "—",
                 f"{on_time / fixed:.0%}" if fixed else "—", esc])
    return table("Closure by category (as Qinling Rd reports it: 805 problems, 790 solved, 98.14%)",
                 ["category", "reported", "closed fixed", "closed not fixed", "closure rate", "on time",
                  "escalations"], rows)


def _queue_depths(tenant) -> dict[str, int]:
    depths = {}
    with Connection(ops.uri(tenant.id)) as conn:
        channel = conn.channel()
        for dept in tenant.departments:
            _, count, _ = topology.work_queue(dept)(channel).queue_declare(passive=True)
            depths[dept] = count
    return depths
