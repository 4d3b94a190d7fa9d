"""Deadlines, supervision (督办) and escalation; duplicates; the citizen's word.

Pure rules over the records of onegrid.domain.cases (a stored dict reads the same). Timer
bookkeeping lives in the store; what a due timer means is decided here, so it is the same in
a unit test with a fake clock and in the service.
"""

from __future__ import annotations

from dataclasses import dataclass

from onegrid.domain.calendar import Schedule
from onegrid.domain.cases import CaseLike, WorkOrderLike
from onegrid.domain.duplicates import Thresholds
from onegrid.domain.lifecycle import OPEN_WORK_ORDER, WORKED_CASE
from onegrid.domain.onsite import DEFAULT_SAMPLE
from onegrid.kernel.spans import Span, parse_span
from onegrid.kernel.tenant import Tenant, parse_duration

KINDS = (
    "acknowledge",
    "resolve",
    "feedback",
    "office",
    "arrival",
)  # office: an escalation item (onegrid.domain.ladder)
LIFECYCLE_KEYS = ("feedback_window", "max_reopens", "duplicates", "on_site_sample", "arrival")


@dataclass(frozen=True)
class Policy:
    """A tenant's `lifecycle:` section, with defaults."""

    feedback_window: int = 3 * 86400  # seconds the reporter has to answer
    max_reopens: int = 2  # "not satisfied" this often, then the county handles it
    duplicate_window: int = 30 * 60  # seconds
    duplicate_distance_m: float = 100.0
    # confidences (onegrid.domain.duplicates): merged without a person at or above the first,
    # suggested to the command centre at or above the second; docs/duplicates.md measures them
    duplicate_auto_merge: float = 0.7
    duplicate_suggest: float = 0.4
    on_site_sample: float = DEFAULT_SAMPLE  # share of on-site closures checked (onegrid.domain.onsite)
    # the grid worker's on-site arrival after a dispatch (Taiyuan: 10 minutes), clock time
    arrival: int = 10 * 60

    @property
    def duplicates(self) -> Thresholds:
        return Thresholds(
            self.duplicate_window, self.duplicate_distance_m, self.duplicate_auto_merge, self.duplicate_suggest
        )


def policy(tenant: Tenant) -> Policy:
    section = tenant.source.get("lifecycle") or {}
    dup = section.get("duplicates") or {}
    base = Policy()
    return Policy(
        parse_duration(section.get("feedback_window")) or base.feedback_window,
        int(section.get("max_reopens", base.max_reopens)),
        parse_duration(dup.get("window")) or base.duplicate_window,
        float(dup.get("distance_m", base.duplicate_distance_m)),
        float(dup.get("auto_merge", base.duplicate_auto_merge)),
        float(dup.get("suggest", base.duplicate_suggest)),
        float(section.get("on_site_sample", base.on_site_sample)),
        parse_duration(section.get("arrival")) or base.arrival,
    )


def check_policy(section) -> list[tuple[str, str]]:
    """(path, reason) problems of a manifest's `lifecycle:` section."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return [("lifecycle", "must be a map")]
    problems = []
    for key in section:
        if key not in LIFECYCLE_KEYS:
            problems.append((f"lifecycle.{key}", f"unknown key; {', '.join(LIFECYCLE_KEYS)}"))
    share = section.get("on_site_sample", 0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        problems.append(("lifecycle.on_site_sample", "must be a share in [0, 1]"))
    if "feedback_window" in section and parse_duration(section["feedback_window"]) is None:
        problems.append(("lifecycle.feedback_window", "must be a duration like 3d"))
    if "arrival" in section and parse_duration(section["arrival"]) is None:
        problems.append(("lifecycle.arrival", "must be a duration like 10m (clock time)"))
    reopens = section.get("max_reopens", 0)
    if isinstance(reopens, bool) or not isinstance(reopens, int) or reopens < 0:
        problems.append(("lifecycle.max_reopens", "must be an integer >= 0"))
    dup = section.get("duplicates") or {}
    if "window" in dup and parse_duration(dup["window"]) is None:
        problems.append(("lifecycle.duplicates.window", "must be a duration like 30m"))
    if "distance_m" in dup and (not isinstance(dup["distance_m"], (int, float)) or dup["distance_m"] < 0):
        problems.append(("lifecycle.duplicates.distance_m", "must be a number of metres >= 0"))
    for key in dup:
        if key not in ("window", "distance_m", "auto_merge", "suggest"):
            problems.append((f"lifecycle.duplicates.{key}", "unknown key; window, distance_m, auto_merge, suggest"))
    levels = [dup.get(k) for k in ("suggest", "auto_merge")]
    for key, v in zip(("suggest", "auto_merge"), levels, strict=True):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1):
            problems.append((f"lifecycle.duplicates.{key}", "must be a confidence in (0, 1]"))
    auto = dup.get("auto_merge", Policy.duplicate_auto_merge)
    low = dup.get("suggest", Policy.duplicate_suggest)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (auto, low)) and low > auto:
        problems.append(("lifecycle.duplicates.suggest", "must not be above auto_merge"))
    return problems


def deadline_spans(tenant: Tenant, category: str, severity: str) -> tuple[Span, Span]:
    """(acknowledge, resolve) spans as the first matching deadline rule writes them."""
    for rule in tenant.deadlines:
        if rule.matches(category, severity):
            return (_span(rule.values["acknowledge"]), _span(rule.values["resolve"]))
    raise LookupError(f"{tenant.id}: no deadline rule for {category}/{severity}")


def deadlines(tenant: Tenant, category: str, severity: str, sched: Schedule, now: float) -> tuple[float, float]:
    """(acknowledge, resolve): seconds from `now` until each falls due on `sched` (its scale
    > 1 compresses time: demo and tests only)."""
    ack, resolve = deadline_spans(tenant, category, severity)
    return (sched.due(now, ack) - now, sched.due(now, resolve) - now)


def _span(text: object) -> Span:
    span = parse_span(text)
    if span is None:  # the manifest check refuses these; a tenant loaded without it must not divide None
        raise ValueError(f"not a duration: {text!r}")
    return span


def member(kind: str, subject: str) -> str:
    return f"{kind}|{subject}"


def parse_member(text: str) -> tuple[str, str]:
    kind, _, subject = text.partition("|")
    if kind not in KINDS or not subject:
        raise ValueError(f"not a timer: {text!r}")
    return kind, subject


@dataclass(frozen=True)
class Overdue:
    reason: str  # overdue_acknowledge | overdue_resolve
    escalate_to: str | None  # None: already at the ladder's top, stays flagged
    rearm_in: float | None  # seconds until the same check again; None at the top


def on_due(tenant: Tenant, kind: str, work_order: WorkOrderLike, case: CaseLike) -> Overdue | None:
    """What an acknowledge or resolve deadline passing means now; None if it is moot
    (the part was accepted, resolved, returned or cancelled, or the case is over)."""
    if case["status"] not in WORKED_CASE:
        return None
    if kind == "acknowledge" and work_order["status"] != "dispatched":
        return None
    if kind == "resolve" and work_order["status"] not in OPEN_WORK_ORDER:
        return None
    up = tenant.next_level(case["level"], case.get("grid"))
    span = float(work_order["ack_span" if kind == "acknowledge" else "resolve_span"])
    return Overdue(f"overdue_{kind}", up, span if up else None)


def after_not_satisfied(case: CaseLike, pol: Policy) -> str:
    """ "reopen" while the reporter has reopen chances left, else "top" (the ladder's top takes it)."""
    return "reopen" if int(case.get("reopen_count") or 0) < pol.max_reopens else "top"
