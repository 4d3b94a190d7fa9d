"""Deadlines, supervision (督办) and escalation; duplicates; the citizen's word.

Pure rules over plain dicts. Timer bookkeeping lives in the store; what a due timer means is
decided here, so it is the same in a unit test with a fake clock and in the service.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from onegrid.tenant import LEVELS, Tenant, parse_duration

KINDS = ("acknowledge", "resolve", "feedback")


@dataclass(frozen=True)
class Policy:
    """A tenant's `lifecycle:` section, with defaults."""
    feedback_window: int = 3 * 86400   # seconds the reporter has to answer
    max_reopens: int = 2               # "not satisfied" this often, then the county handles it
    duplicate_window: int = 30 * 60    # seconds
    duplicate_distance_m: float = 100.0


def policy(tenant: Tenant) -> Policy:
    section = tenant.source.get("lifecycle") or {}
    dup = section.get("duplicates") or {}
    base = Policy()
    return Policy(parse_duration(section.get("feedback_window")) or base.feedback_window,
                  int(section.get("max_reopens", base.max_reopens)),
                  parse_duration(dup.get("window")) or base.duplicate_window,
                  float(dup.get("distance_m", base.duplicate_distance_m)))


def check_policy(section) -> list[tuple[str, str]]:
    """(path, reason) problems of a manifest's `lifecycle:` section."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return [("lifecycle", "must be a map")]
    problems = []
    for key in section:
        if key not in ("feedback_window", "max_reopens", "duplicates"):
            problems.append((f"lifecycle.{key}", "unknown key; feedback_window, max_reopens, duplicates"))
    if "feedback_window" in section and parse_duration(section["feedback_window"]) is None:
        problems.append(("lifecycle.feedback_window", "must be a duration like 3d"))
    reopens = section.get("max_reopens", 0)
    if isinstance(reopens, bool) or not isinstance(reopens, int) or reopens < 0:
        problems.append(("lifecycle.max_reopens", "must be an integer >= 0"))
    dup = section.get("duplicates") or {}
    if "window" in dup and parse_duration(dup["window"]) is None:
        problems.append(("lifecycle.duplicates.window", "must be a duration like 30m"))
    if "distance_m" in dup and (not isinstance(dup["distance_m"], (int, float)) or dup["distance_m"] < 0):
        problems.append(("lifecycle.duplicates.distance_m", "must be a number of metres >= 0"))
    return problems


def deadlines(tenant: Tenant, category: str, severity: str, scale: float = 1.0) -> tuple[float, float]:
    """(acknowledge, resolve) spans in seconds from the first matching deadline rule;
    `scale` > 1 compresses time (demo and tests only)."""
    for rule in tenant.deadlines:
        if rule.matches(category, severity):
            return (parse_duration(rule.values["acknowledge"]) / scale,
                    parse_duration(rule.values["resolve"]) / scale)
    raise LookupError(f"{tenant.id}: no deadline rule for {category}/{severity}")


def next_level(level: str) -> str | None:
    """One rung up the ladder grid → community → street → county; None at the top."""
    i = LEVELS.index(level)
    return LEVELS[i + 1] if i + 1 < len(LEVELS) else None


def is_higher(level: str, than: str) -> bool:
    return LEVELS.index(level) > LEVELS.index(than)


def member(kind: str, subject: str) -> str:
    return f"{kind}|{subject}"


def parse_member(text: str) -> tuple[str, str]:
    kind, _, subject = text.partition("|")
    if kind not in KINDS or not subject:
        raise ValueError(f"not a timer: {text!r}")
    return kind, subject


@dataclass(frozen=True)
class Overdue:
    reason: str                 # overdue_acknowledge | overdue_resolve
    escalate_to: str | None     # None: already at the county, stays flagged
    rearm_in: float | None      # seconds until the same check again; None at the top


def on_due(kind: str, work_order: dict, case: dict) -> Overdue | None:
    """What an acknowledge or resolve deadline passing means now; None if it is moot
    (the part was accepted, resolved, returned or cancelled, or the case is over)."""
    if case["status"] not in ("dispatched", "in_progress", "reopened"):
        return None
    if kind == "acknowledge" and work_order["status"] != "dispatched":
        return None
    if kind == "resolve" and work_order["status"] not in ("dispatched", "accepted", "extension_requested"):
        return None
    up = next_level(case["level"])
    span = float(work_order["ack_span" if kind == "acknowledge" else "resolve_span"])
    return Overdue(f"overdue_{kind}", up, span if up else None)


def after_not_satisfied(case: dict, pol: Policy) -> str:
    """"reopen" while the reporter has reopen chances left, else "county"."""
    return "reopen" if int(case.get("reopen_count") or 0) < pol.max_reopens else "county"


def distance_m(a: dict | None, b: dict | None) -> float:
    """Great-circle distance between two {lat, lon}; infinite when either is unknown."""
    if not a or not b:
        return math.inf
    la1, lo1, la2, lo2 = map(math.radians, (a["lat"], a["lon"], b["lat"], b["lon"]))
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def find_primary(case: dict, candidates: list[dict], pol: Policy) -> dict | None:
    """The open case this one duplicates: same category, registered before it (`at`), which
    happened within the window of it (`occurred`), in the same grid or within the distance.
    The first registered wins, so the same reports always merge the same way."""
    mine = (case["at"], case["id"])
    for other in sorted(candidates, key=lambda c: (c["at"], c["id"])):
        if (other["at"], other["id"]) >= mine:
            break
        if (other["category"] == case["category"]
                and abs(case.get("occurred", case["at"]) - other.get("occurred", other["at"])) <= pol.duplicate_window
                and other.get("status") not in ("closed", "rejected", "merged")
                and (other["grid"] == case["grid"]
                     or distance_m(other.get("location"), case.get("location")) <= pol.duplicate_distance_m)):
            return other
    return None
