"""The demo's closing tables for scoring and notify, read from the running services over
HTTP: the top of the monthly rankings, the department assessment, the grids per colour, and
what notify delivered (with a local receiver's count, when the demo runs one)."""

from __future__ import annotations

import json
import time

import requests

from onegrid.cli.ui import table
from onegrid.domain import reports, scoring
from onegrid.domain.access import AUDITOR
from sim.actors import Badges

COLOUR_ZH = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝", "green": "绿"}


def _pct(rate) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


def _secs(value) -> str:
    return "—" if value is None else f"{value / 60:.1f} min"


def scoring_tables(scoring_url: str, headers: dict, month: str | None = None, top: int = 5) -> list:
    """`headers`: a person's Authorization who may read scoring (an auditor, say)."""
    params = {"limit": top, **({"month": month} if month else {})}
    ranks = requests.get(f"{scoring_url}/scoring/rankings", params=params, headers=headers, timeout=10).json()
    assess = requests.get(
        f"{scoring_url}/scoring/assessment",
        params={"period": "month", **({"key": month} if month else {})},
        headers=headers,
        timeout=10,
    ).json()
    risk = requests.get(f"{scoring_url}/scoring/risk", headers=headers, timeout=10).json()
    out = []
    top_rows = []
    for what, rows, name_key in (
        ("grid worker", ranks["workers"], "grid"),
        ("grid", ranks["grids"], "grid_name"),
        ("community", ranks["communities"], "community_name"),
        ("department", ranks["departments"], None),
    ):
        top_rows += [(what, r["rank"], r["name"], r.get(name_key, "") if name_key else "", r["score"]) for r in rows]
    out.append(
        table(
            f"Monthly rankings {ranks['month']} (每月排序通报), top {top}",
            ["ranked", "place", "who", "where", "points / score"],
            top_rows,
        )
    )
    rows = [
        (
            d,
            a["received"],
            a["closed_fixed"],
            a["closed_not_fixed"],
            _pct(a["closure_rate"]),
            _pct(a["on_time_rate"]),
            _pct(a["satisfaction_rate"]),
            _pct(a["return_rate"]),
            _secs(a["avg_ack_seconds"]),
            _secs(a["avg_resolve_seconds"]),
            "—" if a["score"] is None else a["score"],
        )
        for d, a in sorted(assess["departments"].items(), key=lambda kv: -kv[1]["received"])
        if a["received"]
    ]
    out.append(
        table(
            f"Department assessment {assess['key']}",
            [
                "department",
                "received",
                "fixed",
                "not fixed",
                "closure",
                "on time",
                "satisfied",
                "returned",
                "avg ack",
                "avg resolve",
                "score",
            ],
            rows,
        )
    )
    out.append(
        table(
            "Grids by colour (五色管控)",
            ["colour", "grids"],
            [(f"{c} {COLOUR_ZH[c]}", n) for c, n in risk["counts"].items()],
        )
    )
    return out


def notify_table(notify_url: str, headers: dict, receiver=None):
    stats = requests.get(f"{notify_url}/notify/stats", headers=headers, timeout=10).json()
    channels = sorted({k.split(":", 1)[1] for k in stats if k.startswith(("sent:", "parked:"))})
    rows = [(ch, stats.get(f"sent:{ch}", 0), stats.get(f"parked:{ch}", 0)) for ch in channels]
    title = f"Notifications (件件有回音): {stats.get('enqueued', 0)} written, {stats['pending']} pending"
    if receiver is not None:
        title += f"; the local receiver took {receiver.counts['verified']} with a valid signature"
    return table(title, ["channel", "delivered", "parked"], rows)


def two_way_table(notify_url: str, headers: dict):
    """The citizen's word by SMS and the answers to 12345 (docs/notify.md): replies received,
    what became of them (unmatched by reason), and the 12345 answers delivered."""
    stats = requests.get(f"{notify_url}/notify/stats", headers=headers, timeout=10).json()
    rows = [
        (f"SMS replies {k}", stats.get(f"replies:{k}", 0)) for k in ("received", "matched", "ambiguous", "unmatched")
    ]
    rows += [
        (f"  unmatched: {k.split(':', 2)[2]}", v)
        for k, v in sorted(stats.items())
        if k.startswith("replies:unmatched:")
    ]
    rows.append(("12345 answers sent", stats.get("sent:hotline", 0)))
    return table("Two-way (回复与 12345 答复)", ["", "count"], rows)


CLOSURE_COLUMNS = ["category", "problems", "solved", "closed not fixed", "closure rate", "on time", "escalations"]


def closure_rows(stats: dict, case_of: dict) -> list[list]:
    """Closure the way the streets report it (problems by area, how many solved), plus how,
    on time, escalated: the monthly report's rules (onegrid.domain.reports: a merged duplicate
    or a rejected case is no problem, solved is closed fixed) over the cases of a run's events,
    escalations from the store's counters; the last row is the total."""
    rows, total = reports.closure([reports.CaseFacts.of(c) for c in case_of.values()], {})
    out = []
    for r in [*rows, total]:
        esc = (
            sum(stats.get(f"escalations:{x.category}", 0) for x in rows)
            if r is total
            else stats.get(f"escalations:{r.category}", 0)
        )
        out.append(
            [
                r.category or "all",
                r.problems,
                r.solved,
                r.not_fixed,
                _pct2(r.closure_rate),
                "—" if r.on_time_rate is None else f"{r.on_time_rate:.0%}",
                esc,
            ]
        )
    return out


def _pct2(rate) -> str:
    return "—" if rate is None else f"{100 * rate:.2f}%"


def report_line(scoring_url: str, headers: dict, tenant) -> str:
    """This month's report as scoring serves it (GET /reports/<month>), in a sentence, with the
    command that writes its files (docs/reports.md)."""
    month = scoring.month_of(time.time(), scoring.parse_config(tenant.source, tenant).tz)
    r = requests.get(f"{scoring_url}/reports/{month}", headers=headers, timeout=30).json()
    t = r["closure_total"]
    return (
        f"monthly report {month} (月度通报, {r['scope_name']}): {t['problems']} problems, {t['solved']} solved "
        f"({_pct2(t['closure_rate'])}), {len(r['departments'])} departments assessed, {len(r['workers'])} grid "
        f"workers ranked; files: onegrid report {tenant.id} {month} --format xlsx --out report.xlsx "
        f"(--format html: the bulletin)"
    )


def closure_table(stats: dict, case_of: dict, title: str):
    return table(title, CLOSURE_COLUMNS, closure_rows(stats, case_of))


def scoring_snapshot(scoring_url: str, tenant) -> dict:
    """Everything scoring publishes for the current month and week, with the tenant's id
    taken out, so two counties that lived the same history compare equal (read as the
    county's auditor, signed in with its embedded issuer)."""
    auth = Badges.of(tenant).headers("auditor-figures", AUDITOR)
    get = lambda path, **params: requests.get(scoring_url + path, params=params, headers=auth, timeout=30).json()  # noqa: E731
    out = {
        "rankings": get("/scoring/rankings", limit=1000),
        "month": get("/scoring/assessment", period="month"),
        "week": get("/scoring/assessment", period="week"),
        "risk": get("/scoring/risk"),
    }
    return json.loads(json.dumps(out, ensure_ascii=False).replace(tenant.id, "TENANT"))


# the registry's step of the demo: onboarding publishes a new contract version through the
# registry's HTTP API, a department sends it to the RUNNING intake, and the usage per version
DEMO_KEY = "market_regulation.food_safety_hazard_found"
DEMO_FIELD = {"inspector": {"type": "string", "required": False, "max_length": 20, "description": "Inspector's id."}}


def registry_table(services, sim, admin: dict, operator: dict, wait_s: float = 15.0):
    """Publish the next version of DEMO_KEY (its newest with an optional field more), send one
    event of it over HTTP until the running intake takes it, and show each version's use."""
    registry_url, intake_url = services.url("registry"), services.url("intake")
    listed = requests.get(f"{registry_url}/contracts", headers=operator, timeout=10).json()
    (item,) = [c for c in listed["contracts"] if c["key"] == DEMO_KEY]
    newest = item["versions"][-1]["version"]
    base = requests.get(f"{registry_url}/contracts/{DEMO_KEY}/versions/{newest}", headers=operator, timeout=10).json()
    fields = {**base["fields"], **DEMO_FIELD}
    proposal = {"summary": base["summary"], "category": base["category"], "fields": fields}
    if "inspector" in base["fields"]:  # published by an earlier run: use it
        version, outcome = newest, "unchanged"
    else:
        r = requests.post(f"{registry_url}/contracts/{DEMO_KEY}/versions", json=proposal, headers=admin, timeout=10)
        r.raise_for_status()
        version, outcome = r.json()["version"], r.json()["outcome"]
    planned = sim.one(DEMO_KEY, max(sim.registry.versions(DEMO_KEY)), version, inspector="insp-042")
    started, status = time.monotonic(), 0
    while time.monotonic() - started < wait_s:
        headers = {**planned.headers, "Content-Type": planned.content_type}
        status = requests.post(f"{intake_url}/events", data=planned.body, headers=headers, timeout=10).status_code
        if status in (200, 201):
            break
        time.sleep(0.2)
    took = time.monotonic() - started
    usage = requests.get(f"{registry_url}/contracts/{DEMO_KEY}/usage", headers=operator, timeout=10).json()
    rows = [(u["version"], u["department"], u["events"]) for u in usage["uses"]]
    verdict = f"accepted by the running intake after {took:.1f} s" if status in (200, 201) else f"answered {status}"
    title = f"Registry: {DEMO_KEY} v{version} {outcome}; an event of it {verdict}. Events per version"
    return table(title, ["version", "department", "events"], rows), status in (200, 201)
