"""What-if: a county's past cases run again, in process, through another manifest's routing
table, deadline table, escalation ladder and points table.

A pure simulation over what the history recorded of each case (onegrid.app.whatif reads it):
when it was registered, how long its departments took to accept and to resolve it, whether
it was verified, closed fixed and with the reporter satisfied. It keeps those human response
times as they were and asks what the rules would have made of them: which level and
departments get work orders, which deadlines pass (each passing supervises, escalates one rung
and re-arms, as onegrid.domain.casework.overdue does), and which points each grid worker earns.
Departments are assumed to answer a rerouted work order as fast as they answered the original;
a case still open at the end of the window counts as open until then.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from onegrid.domain import scoring
from onegrid.domain.calendar import WEEKENDS_ONLY, Schedule, WorkCalendar, schedule
from onegrid.domain.routing import route
from onegrid.domain.supervision import deadline_spans
from onegrid.kernel.spans import Span
from onegrid.kernel.tenant import Tenant

# firings counted past this add nothing the figures show (a ladder is climbed long before), and
# a year of answers late by 1-working-hour dues would be thousands of calendar walks per case
MAX_FIRINGS = 64
RULES_PAID_AT_GRID = ("grid_resolved", "on_time")


@dataclass(frozen=True)
class Observed:
    """What the history says happened to one case."""

    case_id: str
    category: str
    severity: str
    grid: str
    registered: float  # epoch
    accepted: float | None = None  # its first work order accepted
    resolved: float | None = None  # its last work order resolved (or the case resolved)
    verified: bool = False
    verified_by: str | None = None
    reporter: dict = field(default_factory=dict)
    closed: float | None = None
    fixed: bool = False
    satisfied: bool | None = None
    on_site: bool = False  # settled on site and never dispatched (onegrid.domain.onsite)


@dataclass
class Figures:
    cases: int = 0
    work_orders: Counter = field(default_factory=Counter)  # (department, level) -> work orders
    overdue: int = 0  # cases with a deadline that passed
    escalations: int = 0  # rungs climbed by passing deadlines
    points: dict[str, int] = field(default_factory=dict)  # grid worker -> points

    @property
    def overdue_rate(self) -> float:
        return self.overdue / self.cases if self.cases else 0.0


def firings(delay: float, span: float) -> int:
    """How often a deadline of `span` seconds fires for an answer that took `delay`: once when
    it passes, then again every span (it re-arms after each escalation)."""
    if span <= 0 or delay <= span:
        return 0
    return math.ceil(delay / span) - 1


def firings_on(sched: Schedule, start: float, answered: float, span: Span) -> int:
    """`firings` for a span of any unit: the dues found one after another on the calendar
    (a deadline in working days re-arms in working days) that pass before the answer."""
    if not span.on_calendar:
        return firings(answered - start, span.seconds / sched.scale)
    fired, due = 0, sched.due(start, span)
    while due < answered and fired < MAX_FIRINGS:
        fired, due = fired + 1, sched.due(due, span)
    return fired


def simulate(
    tenant: Tenant,
    cfg: scoring.Config,
    observed: list[Observed],
    horizon: float,
    calendar: WorkCalendar = WEEKENDS_ONLY,
) -> Figures:
    """The figures `tenant`'s tables and `cfg`'s points table make of the observed cases;
    an answer still missing at `horizon` (epoch: the end of the window) is that late.
    `calendar`: which days are working days (the tools pass the Chinese one)."""
    out = Figures()
    sched = schedule(tenant, calendar)
    awards: Counter = Counter()  # (worker, month, rule) -> awards
    for case in observed:
        out.cases += 1
        if case.on_site:  # no work order, no deadline: the reporter's award, whatever the tables say
            _on_site(case, cfg, awards)
            continue
        decision = route(tenant, case.category, case.severity, case.grid)
        for dept in decision.departments:
            out.work_orders[(dept, decision.level)] += 1
        ack_span, resolve_span = deadline_spans(tenant, case.category, case.severity)
        ack = firings_on(sched, case.registered, case.accepted or horizon, ack_span)
        resolve = firings_on(sched, case.registered, case.resolved or horizon, resolve_span)
        fired = (ack + resolve) * len(decision.departments)  # each department's part has its timers
        level, climbed = decision.level, 0
        while climbed < fired and tenant.next_level(level, case.grid) is not None:
            level = tenant.next_level(level, case.grid) or level
            climbed += 1
        out.escalations += climbed
        overdue = fired > 0
        out.overdue += int(overdue)
        worker = _worker(case, cfg)
        at = case.closed or case.resolved or case.registered
        month = scoring.month_of(at, cfg.tz)
        if case.verified and case.reporter.get("kind") == "grid_worker" and case.reporter.get("id"):
            awards[(case.reporter["id"], month, "report_verified")] += 1
        if worker is None:
            continue
        if overdue and decision.level == "grid":  # supervised while the grid handled it
            awards[(worker, month, "overdue")] += 1
        if case.closed is not None and case.fixed and level == "grid":
            awards[(worker, month, "grid_resolved")] += 1
            if not overdue:
                awards[(worker, month, "on_time")] += 1
        if case.satisfied is True:
            awards[(worker, month, "satisfied")] += 1
    out.points = points(awards, cfg)
    return out


def _on_site(case: Observed, cfg: scoring.Config, awards: Counter) -> None:
    """What scoring awards a case the grid worker settled on site (onegrid.domain.scoring._closed)."""
    month = scoring.month_of(case.closed or case.resolved or case.registered, cfg.tz)
    reporter = case.reporter.get("id") if case.reporter.get("kind") == "grid_worker" else None
    if case.closed is not None and case.fixed and reporter:
        awards[(reporter, month, "resolved_on_site")] += 1
    worker = _worker(case, cfg)
    if case.satisfied is True and worker:
        awards[(worker, month, "satisfied")] += 1


def _worker(case: Observed, cfg: scoring.Config) -> str | None:
    """Who a case's points go to, as onegrid.domain.scoring.worker_of says."""
    reporter = case.reporter or {}
    return (
        case.verified_by
        or cfg.grid_workers.get(case.grid)
        or (reporter.get("id") if reporter.get("kind") == "grid_worker" else None)
    )


def points(awards: Counter, cfg: scoring.Config) -> dict[str, int]:
    """Points per worker: each month's awards through the points table and its monthly caps."""
    months: dict[tuple[str, str], Counter] = {}
    for (worker, month, rule), n in awards.items():
        months.setdefault((worker, month), Counter())[f"{worker}|{rule}"] += n
    out: Counter = Counter()
    for counts in months.values():
        for worker, row in scoring.worker_points(dict(counts), {}, cfg).items():
            out[worker] += row["points"]
    return dict(out)


@dataclass(frozen=True)
class Change:
    what: str
    current: float
    proposed: float

    @property
    def delta(self) -> float:
        return self.proposed - self.current


def compare_work_orders(current: Figures, proposed: Figures) -> list[Change]:
    """Work orders per department and level, every pair either side has, biggest change first."""
    keys = set(current.work_orders) | set(proposed.work_orders)
    rows = [Change(f"{d} @ {lvl}", current.work_orders[(d, lvl)], proposed.work_orders[(d, lvl)]) for d, lvl in keys]
    return sorted(rows, key=lambda c: (-abs(c.delta), c.what))


def compare_points(current: Figures, proposed: Figures, top: int = 10) -> list[Change]:
    """The grid workers whose points change most (then the most points)."""
    workers = set(current.points) | set(proposed.points)
    rows = [Change(w, current.points.get(w, 0), proposed.points.get(w, 0)) for w in workers]
    rows.sort(key=lambda c: (-abs(c.delta), -c.proposed, c.what))
    return [c for c in rows if c.delta][:top]


def summary(current: Figures, proposed: Figures) -> list[Change]:
    return [
        Change("cases", current.cases, proposed.cases),
        Change("work orders", sum(current.work_orders.values()), sum(proposed.work_orders.values())),
        Change("overdue cases", current.overdue, proposed.overdue),
        Change("overdue rate", round(current.overdue_rate, 4), round(proposed.overdue_rate, 4)),
        Change("escalations", current.escalations, proposed.escalations),
        Change("points awarded", sum(current.points.values()), sum(proposed.points.values())),
    ]
