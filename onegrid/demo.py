"""`make demo`: a demo county on the real bus, from department events to work queues.

Onboards the tenant (fresh), starts intake, routing and departments as `nameko run`
processes, publishes a realistic mix from all 16 departments with some bad events, lets a
few departments work their queues over HTTP, then prints what happened and stops everything.
Exits non-zero if any published event is unaccounted for.
"""
from __future__ import annotations

import json
import random
import threading
import time

import requests
from kombu import Connection
from rich.progress import Progress

from onegrid import ops
from onegrid.adapters import topology
from onegrid.domain.cases import case_id
from onegrid.reconcile import reconcile
from onegrid.runner import ServiceSet
from onegrid.simulator import Simulator
from onegrid.ui import console, table


def run(tenant_id: str, events: int, contracts_dir: str) -> int:
    tenant = ops.tenant(tenant_id, contracts_dir)
    console.rule(f"OneGrid demo: {tenant.name_zh} ({tenant.id}), {len(tenant.grids())} grids, "
                 f"{len(tenant.departments)} departments")
    result = ops.onboard(tenant, reset=True)
    console.print(f"onboarded: vhost [bold]{tenant.id}[/], {len(result['queues'])} queues")
    services = ServiceSet(tenant.id, ops.uri(tenant.id))
    with console.status("starting intake, routing, departments"):
        services.start()
    console.print(f"services up: {', '.join(f'{n} {services.url(n)}' for n in services.names)}")
    try:
        return _drive(tenant, events, services)
    finally:
        with console.status("stopping services"):
            services.stop()
        console.print("services stopped")


def _drive(tenant, events: int, services: ServiceSet) -> int:
    store = ops.store(tenant.id)
    sim = Simulator(tenant, ops.uri(tenant.id), seed=2026)
    planned = sim.plan(events, bad_every=40)
    with Progress(console=console) as bar:
        pub = bar.add_task("departments publishing", total=len(planned))
        done = bar.add_task("intake + routing", total=len(planned))
        sender = threading.Thread(target=lambda: sim.publish(planned, on_sent=lambda p: bar.advance(pub)))
        started = time.monotonic()
        sender.start()
        while True:
            stats = store.stats()
            bar.update(done, completed=min(stats.get("cases_dispatched", 0) + stats.get("quarantined", 0),
                                           len(planned)))
            if not sender.is_alive() and stats.get("cases_dispatched", 0) + stats.get("quarantined", 0) >= len(planned):
                break
            if time.monotonic() - started > 300:
                console.print("[red]gave up waiting after 300 s[/]")
                break
            time.sleep(0.2)
        sender.join()
    elapsed = time.monotonic() - started
    actions = _departments_at_work(services, tenant, store)
    time.sleep(1.0)  # returned work orders are re-routed asynchronously
    return _report(tenant, planned, store, elapsed, actions)


def _departments_at_work(services: ServiceSet, tenant, store) -> dict:
    """A few departments work their queues over HTTP: accept, resolve, and return some."""
    rng, counts = random.Random(7), {"accept": 0, "resolve": 0, "return": 0}
    base = services.url("departments")
    for dept in ("market_regulation", "urban_management", "emergency_management", "petitions"):
        orders = requests.get(f"{base}/departments/{dept}/work-orders", params={"limit": 12}, timeout=10).json()
        for wo in orders["work_orders"]:
            url = f"{base}/departments/{dept}/work-orders/{wo['id']}"
            if requests.post(f"{url}/accept", json={"actor": f"{dept}-duty"}, timeout=10).ok:
                counts["accept"] += 1
            if rng.random() < 0.2:
                ok = requests.post(f"{url}/return", json={"actor": f"{dept}-duty", "note": "不属于本部门职责"},
                                   timeout=10).ok
                counts["return"] += ok
            elif requests.post(f"{url}/resolve", json={"actor": f"{dept}-duty", "note": "已现场处置",
                                                       "evidence_urls": ["https://evidence.onegrid.invalid/1.jpg"]},
                               timeout=10).ok:
                counts["resolve"] += 1
    return counts


def _report(tenant, planned, store, elapsed: float, actions: dict) -> int:
    case_of = {}
    for p in planned:
        if p.expect == "case":
            case = store.case(case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}"))
            if case:
                case_of[p.event_id] = case
    reason_of: dict[str, list] = {}
    for entry in store.quarantined(count=100_000):
        event_id = json.loads(entry["headers"]).get("ce-id")
        reason_of.setdefault(event_id, []).append(entry["reason"])
    rec = reconcile(planned, case_of, reason_of)
    stats = store.stats()
    depth = _queue_depths(tenant)

    summary = table("Received", ["published", "cases registered", "quarantined", "accounted for", "seconds",
                                 "events/s"])
    accounted = rec.cases_found + sum(rec.quarantine_found.values())
    summary.add_row(str(rec.published), str(stats.get("cases", 0)), str(stats.get("quarantined", 0)),
                    f"{accounted}/{rec.published}", f"{elapsed:.1f}", f"{rec.published / elapsed:.0f}")
    console.print(summary)

    quarantine = table("Quarantined by reason", ["reason", "sent to provoke it", "found in quarantine"])
    for reason in sorted(set(rec.quarantine_expected) | {k.split(":", 1)[1] for k in stats if k.startswith("quarantine:")}):
        quarantine.add_row(reason, str(rec.quarantine_expected.get(reason, 0)),
                           str(stats.get(f"quarantine:{reason}", 0)))
    console.print(quarantine)

    levels = table("Routed by level (琐事不出网格、小事不出社区、大事不出街道)", ["level", "work orders"])
    for level in ("grid", "community", "street", "county"):
        levels.add_row(level, str(stats.get(f"level:{level}", 0)))
    console.print(levels)

    depts = table("Routed by department", ["department", "work orders", "in its work queue (broker)", "accepted",
                                           "resolved", "returned"])
    for dept in tenant.departments:
        depts.add_row(dept, str(stats.get(f"department:{dept}", 0)), str(depth.get(dept, 0)),
                      *(str(stats.get(f"{dept}:{state}", 0)) for state in ("accepted", "resolved", "returned")))
    console.print(depts)
    console.print(f"department actions over HTTP: {actions}; unrouted cases went to the command centre: "
                  f"{stats.get('department:governance', 0)} work orders for governance")
    if rec.ok:
        console.print(f"[green]reconciled: every one of {rec.published} events is exactly one case or one "
                      f"quarantine entry with its reason[/]")
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
