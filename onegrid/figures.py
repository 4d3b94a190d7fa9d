"""The demo's closing tables for scoring and notify, read from the running services over
HTTP: the top of the monthly rankings, the department assessment, the grids per colour, and
what notify delivered (with a local receiver's count, when the demo runs one)."""
from __future__ import annotations

import json

import requests

from onegrid.ui import table

COLOUR_ZH = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝", "green": "绿"}


def _pct(rate) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


def _secs(value) -> str:
    return "—" if value is None else f"{value / 60:.1f} min"


def scoring_tables(scoring_url: str, month: str | None = None, top: int = 5) -> list:
    params = {"limit": top, **({"month": month} if month else {})}
    ranks = requests.get(f"{scoring_url}/scoring/rankings", params=params, timeout=10).json()
    assess = requests.get(f"{scoring_url}/scoring/assessment",
                          params={"period": "month", **({"key": month} if month else {})}, timeout=10).json()
    risk = requests.get(f"{scoring_url}/scoring/risk", timeout=10).json()
    out = []
    top_rows = []
    for what, rows, name_key in (("grid worker", ranks["workers"], "grid"), ("grid", ranks["grids"], "grid_name"),
                                 ("community", ranks["communities"], "community_name"),
                                 ("department", ranks["departments"], None)):
        top_rows += [(what, r["rank"], r["name"], r.get(name_key, "") if name_key else "", r["score"]) for r in rows]
    out.append(table(f"Monthly rankings {ranks['month']} (每月排序通报), top {top}",
                     ["ranked", "place", "who", "where", "points / score"], top_rows))
    rows = [(d, a["received"], a["closed_fixed"], a["closed_not_fixed"], _pct(a["closure_rate"]),
             _pct(a["on_time_rate"]), _pct(a["satisfaction_rate"]), _pct(a["return_rate"]),
             _secs(a["avg_ack_seconds"]), _secs(a["avg_resolve_seconds"]), "—" if a["score"] is None else a["score"])
            for d, a in sorted(assess["departments"].items(), key=lambda kv: -kv[1]["received"]) if a["received"]]
    out.append(table(f"Department assessment {assess['key']}", [
        "department", "received", "fixed", "not fixed", "closure", "on time", "satisfied", "returned",
        "avg ack", "avg resolve", "score"], rows))
    out.append(table("Grids by colour (五色管控)", ["colour", "grids"],
                     [(f"{c} {COLOUR_ZH[c]}", n) for c, n in risk["counts"].items()]))
    return out


def notify_table(notify_url: str, receiver=None):
    stats = requests.get(f"{notify_url}/notify/stats", timeout=10).json()
    channels = sorted({k.split(":", 1)[1] for k in stats if ":" in k})
    rows = [(ch, stats.get(f"sent:{ch}", 0), stats.get(f"parked:{ch}", 0)) for ch in channels]
    title = f"Notifications (件件有回音): {stats.get('enqueued', 0)} written, {stats['pending']} pending"
    if receiver is not None:
        title += f"; the local receiver took {receiver.counts['verified']} with a valid signature"
    return table(title, ["channel", "delivered", "parked"], rows)


CLOSURE_COLUMNS = ["category", "reported", "closed fixed", "closed not fixed", "closure rate", "on time",
                   "escalations"]


def closure_rows(stats: dict, case_of: dict) -> list[list]:
    """Closure the way the streets report it (problems by area, how many solved), plus how,
    on time, escalated: from the store's counters and the cases of a run's events; the last
    row is the total."""
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
    return rows


def closure_table(stats: dict, case_of: dict, title: str):
    return table(title, CLOSURE_COLUMNS, closure_rows(stats, case_of))


def scoring_snapshot(scoring_url: str, tenant_id: str) -> dict:
    """Everything scoring publishes for the current month and week, with the tenant's id
    taken out, so two counties that lived the same history compare equal."""
    get = lambda path, **params: requests.get(scoring_url + path, params=params, timeout=30).json()  # noqa: E731
    out = {"rankings": get("/scoring/rankings", limit=1000),
           "month": get("/scoring/assessment", period="month"),
           "week": get("/scoring/assessment", period="week"),
           "risk": get("/scoring/risk")}
    return json.loads(json.dumps(out, ensure_ascii=False).replace(tenant_id, "TENANT"))
