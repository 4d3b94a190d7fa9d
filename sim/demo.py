"""`make demo`: a demo county on the real bus, from department events to closed cases.

Onboards the tenant (fresh), starts every service as a `nameko run` process with time
compressed (ONEGRID_TIME_SCALE, default 3600: an hour of deadline passes in a second),
publishes a realistic mix from all 16 departments with some bad events and some duplicates,
lets simulated departments, grid workers and citizens work (sim.actors), then prints what
happened — in the shape of Qinling Rd street's closure table — and stops everything.
Exits non-zero if any published event is unaccounted for.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import requests
from kombu import Connection
from rich.progress import Progress

from onegrid.adapters.amqp import topology
from onegrid.adapters.identity import EmbeddedIssuer
from onegrid.cli.ui import console, table
from onegrid.domain.access import AUDITOR, OPERATOR, TENANT_ADMIN
from onegrid.operator import ops
from sim.accounting import gather
from sim.actors import Actors
from sim.figures import closure_table, notify_table, registry_table, report_line, scoring_tables, two_way_table
from sim.live import LiveCounty
from sim.reconcile import reconcile
from sim.simulator import ON_SITE_SHARE, Simulator

SCALE = os.environ.get("ONEGRID_TIME_SCALE", "3600")
LIMIT_S = 240
DEMO_PERSON = "demo-operator"  # the person `make demo` hands the command-centre page to


def run(tenant_id: str, events: int, contracts_dir: str, services_to_run=None) -> int:
    tenant = ops.tenant(tenant_id, contracts_dir)
    console.rule(
        f"OneGrid demo: {tenant.name_zh} ({tenant.id}), {len(tenant.grids())} grids, "
        f"{len(tenant.departments)} departments; time x{float(SCALE):,.0f}"
    )
    with LiveCounty(tenant, env={"ONEGRID_TIME_SCALE": SCALE}, services=services_to_run) as county:
        code = _drive(county, events)
        if "console" in county.services.names:
            _hand_over(county)
        return code


def _drive(county: LiveCounty, events: int) -> int:
    tenant, store, services = county.tenant, county.store, county.services
    sim = Simulator(tenant, county.uri, seed=2026, on_site_share=ON_SITE_SHARE)
    planned = sim.plan(events, bad_every=40, duplicate_every=30)
    started = time.monotonic()
    with Progress(console=console) as bar:
        pub = bar.add_task("departments publishing", total=len(planned))
        reg = bar.add_task("registered or quarantined", total=len(planned))
        end = bar.add_task("cases closed, merged or rejected", total=None)
        sender = threading.Thread(target=lambda: sim.publish(planned, rate=80, on_sent=lambda p: bar.advance(pub)))
        sender.start()
        citizens = _open311_requests(county) if "open311" in services.names else []
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
    auditor = county.badges.headers("auditor-1", AUDITOR)  # the closing tables, read as the county's auditor
    if "scoring" in services.names:
        for t in scoring_tables(services.url("scoring"), auditor):
            console.print(t)
        console.print(report_line(services.url("scoring"), auditor, tenant))
    if "notify" in services.names:
        console.print(notify_table(services.url("notify"), auditor, county.receiver))
        console.print(two_way_table(services.url("notify"), auditor))
    if citizens:
        console.print(_open311_table(services.url("open311"), citizens))
    if "registry" in services.names and "intake" in services.names:
        admin = county.badges.headers("admin-1", TENANT_ADMIN)
        operator = county.badges.headers("operator-1", OPERATOR)
        shown, taken = registry_table(services, sim, admin, operator)
        console.print(shown)
        if not taken:
            console.print("[red]the running intake did not accept the version published through the registry[/]")
            code = code or 1
    return code


def _hand_over(county: LiveCounty, fresh: int = 30) -> None:
    """The command-centre page for a person to walk: the simulated people stop working, a few
    fresh reports arrive and stay open (their deadlines pass, they escalate), and the page's
    address and a demo operator's sign-in token are printed. At a terminal the county keeps
    running until Enter (ONEGRID_DEMO_STAY=0: never; 1: even without a terminal)."""
    if county.actors:
        county.actors.close()
        county.actors = None
    sim = Simulator(county.tenant, county.uri, seed=2027)
    sim.publish([p for p in sim.plan(fresh) if p.department != "governance"], rate=50)
    issuer = EmbeddedIssuer(county.store.r, county.tenant)
    issuer.add(DEMO_PERSON, OPERATOR, name="值班员（演示）")
    token = issuer.token(DEMO_PERSON)
    console.rule("the command-centre page (一屏观全域)")
    console.print(f"open  [bold]{county.services.url('console')}/console[/]  (Chinese; English on the switch)")
    console.print(f"sign in as [bold]{DEMO_PERSON}[/] (operator) with this token, valid 8 hours:")
    console.print(token, soft_wrap=True, highlight=False)
    console.print(f"(another: .venv/bin/onegrid people token {county.tenant.id} {DEMO_PERSON})")
    stay = os.environ.get("ONEGRID_DEMO_STAY", "")
    if stay == "1" or (stay != "0" and sys.stdin.isatty()):
        try:
            input("the county keeps running; press Enter to stop it ")
        except (EOFError, KeyboardInterrupt):
            pass


OPEN311 = [  # (service_code, description, where: a grid to stand in, or an address naming a unit)
    ("public_facilities", "人行道井盖缺失，晚上有人差点踩空", "grid"),
    ("city_appearance", "秦江社区门口垃圾堆积多日无人清运", "address"),
    ("pollution", "夜间施工噪音扰民", "grid"),
]


def _open311_requests(county: LiveCounty) -> list[str]:
    """A citizens' app sends three requests through the Open311 door (docs/open311.md): the
    same intake path as every event, placed in their grids by their points."""
    from onegrid.adapters.geo import shape_of
    from onegrid.adapters.redis.open311 import Clients

    geography = county.tenant.geography
    if geography is None:
        return []
    key = Clients(county.store.r, county.tenant.id).issue("citizen-app")
    url, ids = county.services.url("open311") + "/open311/v2/requests.json", []
    for i, (code, text, where) in enumerate(OPEN311):
        form = {"api_key": key, "service_code": code, "description": text}
        if where == "grid":
            spot = shape_of(geography.grids()[i * 7 % len(geography.grids())]).representative_point()
            form.update(lat=f"{spot.y:.6f}", long=f"{spot.x:.6f}")
        else:
            form["address_string"] = text
        answer = requests.post(url, data=form, timeout=10).json()[0]
        ids.append(answer.get("service_request_id") or answer.get("token", ""))
    return ids


def _open311_table(base: str, ids: list[str]):
    """The door's requests as a citizens' app reads them back (GET requests.json)."""
    listed = requests.get(base + "/open311/v2/requests.json", timeout=10).json()
    rows = [
        [r["service_request_id"], r["service_name"], r["status"], r["agency_responsible"], r["updated_datetime"]]
        for r in listed
    ]
    return table(
        f"Open311 door: {len(ids)} citizens' requests, read back",
        ["service_request_id", "service", "status", "agency", "updated"],
        rows,
    )


def _report(tenant, planned, store, elapsed: float, actors: Actors) -> int:
    case_of, reason_of = gather(store, planned)
    rec = reconcile(planned, case_of, reason_of)
    stats = store.stats()

    accounted = rec.cases_found + sum(rec.quarantine_found.values())
    console.print(
        table(
            "Received",
            ["published", "cases registered", "merged as duplicates", "quarantined", "accounted for", "seconds"],
            [
                [
                    rec.published,
                    stats.get("cases", 0),
                    stats.get("merged", 0),
                    stats.get("quarantined", 0),
                    f"{accounted}/{rec.published}",
                    f"{elapsed:.0f}",
                ]
            ],
        )
    )
    console.print(
        table(
            "Duplicates (auto-merged above the strict confidence; suggested to the command centre below it)",
            ["auto-merged", "suggested", "confirmed", "dismissed", "un-merged", "still open"],
            [
                [stats.get(f"duplicates:{k}", 0) for k in ("auto_merged", "suggested", "confirmed", "dismissed")]
                + [
                    stats.get("unmerged", 0),
                    stats.get("duplicates:suggested", 0)
                    - stats.get("duplicates:confirmed", 0)
                    - stats.get("duplicates:dismissed", 0),
                ]
            ],
        )
    )
    console.print(
        table(
            "Settled on site by the grid worker (琐事不出网格; a sample is checked, not fixed goes to dispatch)",
            ["closed on site", "sampled", "sampled not fixed"],
            [[stats.get("on_site", 0) - stats.get("on_site_sampled", 0)]
             + [stats.get(k, 0) for k in ("on_site_sampled", "on_site_not_fixed")]],
        )
    )  # fmt: skip
    reasons = sorted(set(rec.quarantine_expected) | {k.split(":", 1)[1] for k in stats if k.startswith("quarantine:")})
    console.print(
        table(
            "Quarantined by reason",
            ["reason", "sent to provoke it", "found in quarantine"],
            [[r, rec.quarantine_expected.get(r, 0), stats.get(f"quarantine:{r}", 0)] for r in reasons],
        )
    )
    console.print(
        table(
            "Routed by level (琐事不出网格、小事不出社区、大事不出街道)",
            ["level", "work orders"],
            [[lvl, stats.get(f"level:{lvl}", 0)] for lvl in tenant.levels],
        )
    )
    console.print(
        table(
            "Escalations received by each level's office (督办单)",
            ["level", "office", "received", "acknowledged", "acted on", "deadline missed"],
            [
                [
                    r.level,
                    r.office,
                    stats.get(f"office_received:{r.level}", 0),
                    stats.get(f"office_acknowledged:{r.level}", 0),
                    stats.get(f"office_acted:{r.level}", 0),
                    stats.get(f"office_missed:{r.level}", 0),
                ]
                for r in tenant.ladder[1:]
            ],
        )
    )
    console.print(
        table(
            "Grid workers on site (arrival deadline)",
            ["on time", "late", "no check-in by the deadline"],
            [[stats.get("arrivals_on_time", 0), stats.get("arrivals_late", 0), stats.get("arrivals_missed", 0)]],
        )
    )
    depth = _queue_depths(tenant)
    console.print(
        table(
            "Routed by department",
            ["department", "work orders", "accepted", "resolved", "returned", "left in its queue"],
            [
                [
                    d,
                    stats.get(f"department:{d}", 0),
                    stats.get(f"{d}:accepted", 0),
                    stats.get(f"{d}:resolved", 0),
                    stats.get(f"{d}:returned", 0),
                    depth.get(d, 0),
                ]
                for d in tenant.departments
            ],
        )
    )
    console.print(
        closure_table(
            stats, case_of, "Closure by category (as Qinling Rd reports it: 805 problems, 790 solved, 98.14%)"
        )
    )
    console.print(
        f"supervisions (督办): {stats.get('supervisions', 0)}; reopened: {stats.get('reopened', 0)}; "
        f"people at work: {dict(sorted(actors.done.items()))}"
    )
    if rec.ok:
        console.print(
            f"[green]reconciled: every one of {rec.published} events is exactly one case (or merged into "
            f"the case it duplicates) or one quarantine entry with its reason[/]"
        )
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
