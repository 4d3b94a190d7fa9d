"""What each step of a case's life does, decided without touching storage.

Given a case, its work orders, the tenant (its grid tree), the policy, the clock and the
request, each operation returns `Changes`: fields to set per record, index moves, timers to
arm or cancel, department queue entries, counters, timeline lines and the lifecycle events to
announce. onegrid.adapters.redis.casework reads under WATCH, calls one of these and writes the
Changes in one MULTI with the events as its outbox; so the rules are tested here, without Redis.
A refused action raises lifecycle.TransitionRefused before anything is written.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from onegrid.domain import ladder as ld
from onegrid.domain import lifecycle as lc
from onegrid.domain import timeline as tl
from onegrid.domain.calendar import WEEKENDS_ONLY, Schedule, WorkCalendar, schedule
from onegrid.domain.cases import Case, Step, WorkOrder
from onegrid.domain.onsite import ON_SITE, evidence_of, settled_on_site
from onegrid.domain.supervision import Policy, after_not_satisfied, on_due
from onegrid.kernel.spans import parse_span
from onegrid.kernel.tenant import COMMAND_CENTRE, Tenant

Timer = tuple[str, str]  # (kind, subject): acknowledge|resolve per work order, feedback per case


@dataclass(frozen=True)
class Context:
    tenant: Tenant  # its grid tree names the unit at a level
    policy: Policy
    now: float  # epoch seconds on the deadlines' clock
    at: str  # the same moment for the timeline (ISO 8601)
    scale: float = 1.0  # > 1 compresses time (demo and tests only)
    calendar: WorkCalendar = WEEKENDS_ONLY  # working days; services pass the Chinese one (adapters.calendar)

    @property
    def schedule(self) -> Schedule:
        return schedule(self.tenant, self.calendar, self.scale)

    def next_due(self, wo: WorkOrder, kind: str) -> float:
        """When `wo`'s `kind` deadline falls due if armed now: a span in working hours or days
        is found on the calendar again; a clock span (or a part written before spans were
        kept) is its stored length in seconds."""
        prefix = "ack" if kind == "acknowledge" else "resolve"
        span = parse_span(wo.get(f"{prefix}_deadline"))
        if span is not None and span.on_calendar:
            return self.schedule.due(self.now, span)
        return self.now + float(wo.get(f"{prefix}_span") or 0)


@dataclass
class Changes:
    """Everything one decision changes, for an adapter to write all-or-nothing. Maps are
    last-write-wins (a timer armed then cancelled in one decision ends cancelled)."""

    case_id: str
    case_at: float  # the case's score in its indexes
    case: dict[str, Any] = field(default_factory=dict)  # fields set on the case
    work_orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # work order id -> fields set
    other_cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # a merge's primary -> fields set
    status: tuple[str, str] | None = None  # the case moves from one status index to another
    level: tuple[str, str] | None = None  # ... and level index
    overdue: bool | None = None  # joins (True) or leaves (False) the overdue index
    timers: dict[Timer, float | None] = field(default_factory=dict)  # due to arm; None cancels
    queues: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # wo id -> (department, score | off)
    offices: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # item id -> (unit, score | off)
    counters: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[str, dict]] = field(default_factory=list)  # (case id, step), in order
    events: list[tuple[str, dict]] = field(default_factory=list)  # (type, extra data) to announce
    work_order: dict | None = None  # the work order acted on, as it now is
    closure: Closure | None = None  # set when this decision closed the case

    @property
    def chainhead(self) -> str | None:
        """The case's timeline head after this decision (None when it wrote no line)."""
        return self.case.get("chainhead")


@dataclass(frozen=True)
class Closure:
    """A case this decision closed, as the figures count it: the handling departments are
    those whose part was still theirs (not returned or cancelled) when the case closed, not
    the department that reported it."""

    category: str
    outcome: str  # fixed | not_fixed
    on_time: bool
    departments: tuple[str, ...]


DEPARTMENT_DONE = {
    "accept": "accepted",
    "return": "returned",
    "request_extension": "extension_requested",
    "resolve": "resolved",
}


# -- the operations ---------------------------------------------------------------------
def department_act(
    ctx: Context,
    case: Case,
    wos: Iterable[WorkOrder],
    wo_id: str,
    department: str,
    action: str,
    actor: str,
    note: str = "",
    evidence: list[str] | None = None,
    extension: float | None = None,
) -> Changes:
    """A department accepts, returns, asks for more time on or resolves its work order."""
    if action not in lc.DEPARTMENT_ACTIONS:
        raise lc.TransitionRefused(f"{action} is not a department action")
    d = _Decision(ctx, case, wos)
    w = d.wo(wo_id)
    lc.work_order_next(w, action, department)  # refuse early: another's, or not allowed
    done = DEPARTMENT_DONE[action]
    fields: dict[str, Any] = {f"{done}_at": ctx.at, f"{done}_epoch": ctx.now}
    if note:
        fields["note"] = note
    if evidence:
        fields["evidence_urls"] = evidence
    if action == "resolve":
        fields["on_time"] = ctx.now <= float(w.resolve_due) and not w.overdue_resolve
    if action == "request_extension":
        fields["extension_requested_s"] = (extension or 0) / ctx.scale  # on the deadlines' clock
    after = d.wo_to(w, action, f"{department}/{actor}", note, event=f"work_order.{done}", **fields)
    d.count(f"{department}:{after}")
    d.follow_parts("departments")
    return d.finish(w)


def extension(
    ctx: Context,
    case: Case,
    wos: Iterable[WorkOrder],
    wo_id: str,
    grant: bool,
    actor: str,
    seconds: float | None = None,
    note: str = "",
) -> Changes:
    """The command centre grants (the resolve deadline moves) or denies a requested extension."""
    d = _Decision(ctx, case, wos)
    return d.finish(_extension(d, wo_id, grant, actor, seconds, note))


def _extension(d: _Decision, wo_id: str, grant: bool, actor: str, seconds: float | None, note: str) -> WorkOrder:
    w = d.wo(wo_id)
    extra = float(seconds if seconds is not None else w.extension_requested_s or 0)
    if grant:
        due = float(w.resolve_due) + extra
        d.wo_to(w, "grant_extension", actor, note or f"+{extra:.0f}s", "work_order.extension_granted", resolve_due=due)
        d.arm("resolve", wo_id, due)
    else:
        d.wo_to(w, "deny_extension", actor, note, "work_order.extension_denied")
    return w


def overdue(ctx: Context, case: Case, wos: Iterable[WorkOrder], kind: str, wo_id: str, due: float) -> Changes:
    """A deadline passed: supervise, escalate one rung and re-arm. No events when it is moot,
    or when this deadline (work order, kind, due) fired already: a timer fires at least once."""
    d = _Decision(ctx, case, wos)
    w = d.wo(wo_id)
    verdict = on_due(ctx.tenant, kind, w, d.case)
    if verdict is None or w.fired(kind) == due:
        return d.finish()
    d.set_wo(w, **{"overdue_ack" if kind == "acknowledge" else "overdue_resolve": 1, f"{kind}_fired": due})
    status = d.case.status
    # `due` names the deadline: a firing is unique by work order, kind and due
    line = d.step("supervision", "supervise", status, status, f"{w.department}: {verdict.reason}", wo_id, due=due)
    at = {"level": d.case.level, "unit": d.case.unit}  # where it was when the deadline passed
    d.announce("case.supervised", step=line, reason=verdict.reason, work_order=w.to_record(), **at)
    d.set_case(overdue=1)
    d.changes.overdue = True
    d.count("supervisions")
    if verdict.escalate_to and verdict.rearm_in is not None:
        held = ld.live_item(d.case)
        # an office holding the case at its level has its own deadlines to climb by: the
        # department's is not re-armed meanwhile (no reminder every span until the office's ends)
        if held is None or held.level != d.case.level:
            d.escalate(verdict.escalate_to, verdict.reason, "supervision")
            d.arm(kind, wo_id, ctx.next_due(w, kind))
    return d.finish()


def arrival_due(ctx: Context, case: Case, wos: Iterable[WorkOrder], due: float) -> Changes:
    """The arrival deadline passed with no check-in: the timeline says so and it is counted
    (the case's state does not change; the check-in, when it comes, is marked late)."""
    d = _Decision(ctx, case, wos)
    if d.case.arrived_at or d.case.status not in lc.OPEN_CASE or float(d.case.get("arrival_missed") or 0) == due:
        return d.finish()
    d.set_case(arrival_missed=due)
    status = d.case.status
    d.step("supervision", "arrival_overdue", status, status, "no grid worker checked in on site in time", due=due)
    d.count("arrivals_missed")
    return d.finish()


def check_in(
    ctx: Context, case: Case, wos: Iterable[WorkOrder], actor: str, lat: float, lon: float, note: str = ""
) -> Changes:
    """The grid worker is on site: when and where, against the arrival deadline (late or not)."""
    d = _Decision(ctx, case, wos)
    if d.case.status not in lc.OPEN_CASE:
        raise lc.TransitionRefused(f"case {d.case.id} is {d.case.status}: a check-in is on an open case")
    if d.case.arrived_at:
        raise lc.TransitionRefused(f"case {d.case.id}: checked in already at {d.case.arrived_at}")
    due = d.case.arrival_due
    late = due is not None and ctx.now > float(due)
    d.set_case(arrived_at=ctx.at, arrival_late=late, arrival_location={"lat": lat, "lon": lon})
    d.cancel("arrival", d.case.id)
    status = d.case.status
    how = f"late by {(ctx.now - float(due or 0)) * ctx.scale / 60:.0f} min" if late else "on time"
    d.step(actor, "check_in", status, status, note or f"on site, {how}", location={"lat": lat, "lon": lon}, late=late)
    d.count("arrivals_late" if late else "arrivals_on_time")
    return d.finish()


def office_due(ctx: Context, case: Case, wos: Iterable[WorkOrder], item_id: str, due: float) -> Changes:
    """An office's deadline on its escalation item passed: supervise, and the case goes up
    again (the item is passed up); at the top it stays flagged. Moot when the item was acted
    on, passed up or closed, or this deadline fired already."""
    d = _Decision(ctx, case, wos)
    item = d.item(item_id)
    missed = ld.on_due(ctx.tenant, item, due, d.case.grid) if d.case.status in lc.WORKED_CASE else None
    if missed is None:
        return d.finish()
    d.set_item(replace(item, fired=due))
    status = d.case.status
    line = d.step("supervision", "supervise", status, status, f"{item.office}: {missed.reason}", due=due, item=item.id)
    d.announce("case.supervised", step=line, reason=missed.reason, level=item.level, unit=item.unit, item=item.id)
    d.set_case(overdue=1)
    d.changes.overdue = True
    d.count("supervisions")
    d.count(f"office_missed:{item.level}")
    if missed.escalate_to:
        d.escalate(missed.escalate_to, missed.reason, "supervision")
    return d.finish()


def office_acknowledge(
    ctx: Context, case: Case, wos: Iterable[WorkOrder], item_id: str, actor: str, note: str = ""
) -> Changes:
    """The office has the escalation: its act deadline starts."""
    d = _Decision(ctx, case, wos)
    item = d.item(item_id)
    if d.case.status not in lc.OPEN_CASE or item.status != "open":
        raise lc.TransitionRefused(f"escalation {item_id} is {item.status} (case {d.case.status}); cannot acknowledge")
    item = ld.acknowledge(ctx.tenant, item, actor, ctx.now, ctx.at, ctx.schedule.due)
    d.set_item(item)
    d.arm(ld.TIMER, item.id, item.due)
    status = d.case.status
    line = d.step(actor, "acknowledge_escalation", status, status, note or f"{item.office} acknowledged", item=item.id)
    d.announce("case.escalation_acknowledged", step=line, level=item.level, unit=item.unit, item=item.id)
    d.count(f"office_acknowledged:{item.level}")
    return d.finish()


def office_act(
    ctx: Context,
    case: Case,
    wos: Iterable[WorkOrder],
    item_id: str,
    actor: str,
    action: str,
    note: str = "",
    departments: list[str] | None = None,
    wo_id: str | None = None,
) -> Changes:
    """The office acts on its escalation, as itself: takes the case over (it is handled at its
    level now), whistles departments in, grants a department's requested extension, or closes
    it not fixed. The item is then done (an unacknowledged one counts as acknowledged)."""
    if action not in ld.OFFICE_ACTIONS:
        raise lc.TransitionRefused(f"unknown office action {action!r}; one of {', '.join(ld.OFFICE_ACTIONS)}")
    d = _Decision(ctx, case, wos)
    item = d.item(item_id)
    if not item.live or d.case.status not in lc.OPEN_CASE:
        raise lc.TransitionRefused(f"escalation {item_id} is {item.status} (case {d.case.status}); cannot {action}")
    d.set_item(ld.acted(item, actor, action, ctx.at))
    d.cancel(ld.TIMER, item.id)
    d.changes.offices[item.id] = (item.unit, None)
    if action == "take_over":
        lc.case_next(d.case, "whistle")
        status = d.case.status
        d.step(actor, "take_over", status, status, note or f"taken over by {item.office}", item=item.id)
    elif action == "whistle":
        if not departments:
            raise lc.TransitionRefused("a whistle names the departments to call in")
        _whistle(d, actor, None, departments, note or f"{item.office} whistled")
    elif action == "extend":
        _extension(d, wo_id or "", True, actor, None, note)
    else:
        if not note:
            raise lc.TransitionRefused("close_not_fixed needs a reason in `note`")
        d.close("close_not_fixed", actor, "not_fixed", note)
    d.count(f"office_acted:{item.level}")
    return d.finish()


def whistle(
    ctx: Context,
    case: Case,
    wos: Iterable[WorkOrder],
    actor: str,
    to_level: str | None,
    departments: list[str],
    note: str,
) -> Changes:
    """吹哨报到: the command centre calls departments in (and maybe a higher level); routing
    dispatches to those not already holding an active part."""
    d = _Decision(ctx, case, wos)
    _whistle(d, actor, to_level, departments, note)
    return d.finish()


def _whistle(d: _Decision, actor: str, to_level: str | None, departments: list[str], note: str) -> None:
    lc.case_next(d.case, "whistle")
    line = d.step(actor, "whistle", d.case.status, d.case.status, note)
    d.announce("case.whistled", step=line, departments=departments)
    if to_level and to_level != d.case.level:
        d.escalate(to_level, "whistle", actor, note)
    active = {w.department for w in d.wos.values() if w.status in lc.ACTIVE_WORK_ORDER}
    d.request_dispatch([x for x in departments if x not in active], "whistle")


def case_act(
    ctx: Context,
    case: Case,
    wos: Iterable[WorkOrder],
    action: str,
    actor: str,
    note: str = "",
    evidence: list[str] | None = None,
) -> Changes:
    """The grid worker's check, the reporter's word, the command centre's close or reject."""
    d = _Decision(ctx, case, wos)
    if action == "verify":
        d.case_to(
            "verify",
            actor,
            note,
            "case.verified",
            verified_at=ctx.at,
            verified_by=actor,
            evidence_urls=evidence or [],
        )
        d.arm("feedback", d.case.id, ctx.now + ctx.policy.feedback_window / ctx.scale)
    elif action in ("verify_failed", "not_satisfied"):
        d.reopen(action, actor, note)
    elif action in ("satisfied", "no_answer"):
        d.close(action, actor, "fixed", note, satisfied=True if action == "satisfied" else None)
    elif action == "close_not_fixed":
        d.close(action, actor, "not_fixed", note)
    elif action == "reject":
        lc.case_next(d.case, "reject")
        d.cancel_open_parts(actor, "case rejected")
        d.end_items()
        d.case_to("reject", actor, note, "case.rejected", rejected_reason=note)
        d.count(f"rejected:{d.case.category}")
    else:
        raise lc.TransitionRefused(f"case {d.case.id}: unknown action {action!r}")
    return d.finish()


def settle_on_site(
    ctx: Context, case: Case, wos: Iterable[WorkOrder], sampled: bool, actor: str = "routing"
) -> Changes:
    """A grid worker settled it on the spot (琐事不出网格): no work order, no deadline. Closed
    fixed with the report's evidence, or, when sampled, held at `resolved` for the ordinary
    verification (and the reporter's word); handled in the grid either way."""
    d = _Decision(ctx, case, wos)
    grid = d.case.grid
    d.set_case(level="grid", unit=grid, resolution=ON_SITE)
    fields: dict[str, Any] = {"resolved_at": ctx.at, "evidence_urls": evidence_of(d.case)}
    why = f"settled on site by {(d.case.reporter or {}).get('id', 'the grid worker')}"
    if sampled:
        d.case_to(
            "resolve_on_site", actor, f"{why}; sampled for verification", "case.resolved", on_site_sampled=1, **fields
        )
        d.count("on_site_sampled")
    else:
        d.close("close_on_site", actor, "fixed", why, **fields)
    d.count("on_site")
    return d.finish()


def attach_evidence(
    ctx: Context, case: Case, wos: Iterable[WorkOrder], actor: str, evidence: dict, note: str = ""
) -> Changes:
    """A photo put on record (the command-centre page's upload): a timeline line with where it
    is kept (`photo`) and its content's sha256, which the line's chained `evidence` hash covers;
    the state does not change."""
    d = _Decision(ctx, case, wos)
    if d.case.status not in lc.OPEN_CASE:
        raise lc.TransitionRefused(f"case {d.case.id} is {d.case.status}: evidence goes on an open case")
    d.step(actor, "attach_evidence", d.case.status, d.case.status, note, evidence=[evidence["sha256"]], photo=evidence)
    return d.finish()


def merge(
    ctx: Context,
    case: Case,
    wos: Iterable[WorkOrder],
    primary: Case,
    actor: str = "routing",
    note: str = "",
) -> Changes:
    """A duplicate: the case is merged into the primary, which links its report and reporter
    (told the primary's outcome when it closes). Routing merges at registration; the command
    centre confirms a suggestion later, when the case's own parts are already out: they are
    cancelled (an un-merge gives them back)."""
    if primary.status in lc.TERMINAL_CASE or primary.id == case.id:
        raise lc.TransitionRefused(f"case {primary.id} is {primary.status}; nothing can be merged into it")
    d = _Decision(ctx, case, wos)
    d.heads[primary.id] = _head(ctx, primary)
    lc.case_next(d.case, "merge")  # refuse before cancelling anything
    d.cancel_open_parts(actor, "case merged")
    d.end_items()
    if d.case.overdue:  # the primary's deadlines hold now
        d.set_case(overdue=0)
        d.changes.overdue = False
    why = f"duplicate of {primary.id}" + (f": {note}" if note else "")
    line = d.case_to("merge", actor, why, merged_into=primary.id)
    d.announce("case.merged", step=line, primary_id=primary.id)
    c = d.case
    link = {
        "case_id": c.id,
        "event_id": c.event_id,
        "reporter": c.reporter,
        "department": c.department,
        "summary": c.summary,
    }
    linked = [x for x in primary.linked or [] if x.get("case_id") != c.id]
    d.changes.other_cases[primary.id] = {"linked": linked + [link]}
    d.step(actor, "link_duplicate", primary.status, primary.status, f"{c.id} from {c.department}", case_id=primary.id)
    d.count("merged")
    return d.finish()


def unmerge(ctx: Context, case: Case, wos: Iterable[WorkOrder], primary: Case | None, actor: str, note: str) -> Changes:
    """Not a duplicate after all: the case is its own again. The primary no longer lists it
    (so its reporter is not told the primary's outcome); parts the merge cancelled go back to
    their departments with fresh deadlines, and a case merged before it was dispatched asks
    routing to route it as any registered case. Both timelines say who undid it."""
    d = _Decision(ctx, case, wos)
    primary_id = case.merged_into or ""
    why = note or f"not a duplicate of {primary_id}"
    line = d.case_to("unmerge", actor, why, merged_into="", unmerged_from=primary_id)
    d.announce("case.unmerged", step=line, primary_id=primary_id)
    if primary is not None:
        d.heads[primary.id] = _head(ctx, primary)
        linked = [x for x in primary.linked or [] if x.get("case_id") != case.id]
        d.changes.other_cases[primary.id] = {"linked": linked}
        d.step(actor, "unlink_duplicate", primary.status, primary.status, f"{case.id}: {why}", case_id=primary.id)
    cancelled = [w for w in d.wos.values() if w.status == "cancelled"]
    for wo in cancelled:
        d.redispatch(wo, "restore", actor, "case un-merged")
    if cancelled:
        d.case_to("dispatch", actor, "parts back to their departments", "case.dispatched")
    else:
        d.announce("case.dispatch_requested", case_id=case.id, departments=[], reason="unmerged")
    d.count("unmerged")
    return d.finish()


def counts_on_time(case: Case, wos: Iterable[WorkOrder]) -> bool:
    """A fixed case closes on time unless it, or a part that was not cancelled, ran late."""
    return not (
        bool(case.overdue)
        or any(w.overdue_ack or w.overdue_resolve or w.on_time is False for w in wos if w.status != "cancelled")
    )


def _head(ctx: Context, case: Case) -> tl.Head:
    """The head a case's next line is chained on; a head on record that is not one was edited
    by hand, and the case takes no more lines until someone looks (`onegrid audit verify`)."""
    try:
        return tl.recorded(ctx.tenant.id, case.id, case.get("chainhead"))
    except ValueError as exc:
        raise lc.TransitionRefused(f"case {case.id}: its timeline's head on record was altered ({exc})") from None


# -- the steps they are made of -----------------------------------------------------------
class _Decision:
    """Works on copies of the records, noting every change in `changes`."""

    def __init__(self, ctx: Context, case: Case, wos: Iterable[WorkOrder]):
        self.ctx = ctx
        self.case = copy.deepcopy(case)
        self.wos = {w.id: copy.deepcopy(w) for w in wos}
        self.changes = Changes(case.id, case.at)
        self._status, self._level = case.status, case.level
        # the head of each timeline this decision writes, as it grows
        self.heads = {case.id: _head(ctx, case)}

    def wo(self, wo_id: str) -> WorkOrder:
        if wo_id not in self.wos:
            raise LookupError(f"no work order {wo_id} in case {self.case.id}")
        return self.wos[wo_id]

    def finish(self, work_order: WorkOrder | None = None) -> Changes:
        ch = self.changes
        if self.case.status != self._status:
            ch.status = (self._status, self.case.status)
        if self.case.level != self._level:
            ch.level = (self._level, self.case.level)
        ch.work_order = work_order.to_record() if work_order else None
        return ch

    # records, timeline, counters, events
    def set_case(self, **fields: Any) -> None:
        self.case.update(**fields)
        self.changes.case.update(fields)

    def set_wo(self, wo: WorkOrder, **fields: Any) -> None:
        wo.update(**fields)
        self.changes.work_orders.setdefault(wo.id, {}).update(fields)

    def step(
        self,
        actor: str,
        action: str,
        before: str | None,
        after: str,
        note: str = "",
        wo: str | None = None,
        case_id: str | None = None,
        evidence: list[str] | None = None,
        **more: Any,
    ) -> dict:
        """Append a line to a case's timeline, chained to the one before it: the case record's
        head moves with it (the adapter writes both in one transaction, so the head never forks)."""
        line = {**Step(self.ctx.at, actor, action, before, after, note, wo).as_dict(), **more}
        if evidence:
            line["evidence"] = tl.evidence_digest(evidence)
        cid = case_id or self.case.id
        entry, self.heads[cid] = tl.link(self.heads[cid], line)
        self.changes.timeline.append((cid, entry))
        if cid == self.case.id:
            self.set_case(chainhead=str(self.heads[cid]))
        else:
            self.changes.other_cases.setdefault(cid, {})["chainhead"] = str(self.heads[cid])
        return entry

    def count(self, name: str, n: int = 1) -> None:
        self.changes.counters[name] += n

    def announce(self, kind: str, **extra: Any) -> None:
        self.changes.events.append((kind, extra))

    def arm(self, kind: str, subject: str, due: float) -> None:
        self.changes.timers[(kind, subject)] = due

    def cancel(self, kind: str, subject: str) -> None:
        self.changes.timers[(kind, subject)] = None

    # transitions
    def case_to(self, action: str, actor: str, why: str = "", event: str | None = None, **fields: Any) -> dict:
        """Move the case by `action`; returns its timeline line."""
        before = self.case.status
        after = lc.case_next(self.case, action)
        self.set_case(status=after, **fields)
        line = self.step(actor, action, before, after, why, evidence=fields.get("evidence_urls"))
        if event:
            self.announce(event, step=line)
        return line

    def wo_to(
        self, wo: WorkOrder, action: str, actor: str, why: str = "", event: str | None = None, **fields: Any
    ) -> str:
        """Move a work order by `action`: off its department's queue and its deadlines when it
        leaves the desk, back on when dispatched again; returns its new state."""
        before = wo.status
        after = lc.work_order_next(wo, action)
        self.set_wo(wo, status=after, **fields)
        if after not in lc.OPEN_WORK_ORDER:  # returned, resolved, cancelled
            self.changes.queues[wo.id] = (wo.department, None)
            self.cancel("acknowledge", wo.id)
            self.cancel("resolve", wo.id)
        elif after == "dispatched":
            self.changes.queues[wo.id] = (wo.department, self.ctx.now)
        if action == "accept":
            self.cancel("acknowledge", wo.id)
        line = self.step(actor, action, before, after, why, wo.id, evidence=fields.get("evidence_urls"))
        if event:
            self.announce(event, step=line, work_order=wo.to_record())
        return after

    def cancel_open_parts(self, actor: str, why: str) -> None:
        for wo in self.wos.values():
            if wo.status in lc.OPEN_WORK_ORDER:
                self.wo_to(wo, "cancel", actor, why)

    def request_dispatch(self, departments: list[str], reason: str) -> None:
        """Routing adds these departments' work orders (it owns dispatching)."""
        if departments:
            self.announce("case.dispatch_requested", case_id=self.case.id, departments=departments, reason=reason)

    def follow_parts(self, actor: str) -> None:
        """Start or resolve the case as its parts now say."""
        while (action := lc.case_after_parts(self.case.status, list(self.wos.values()))) is not None:
            if action == "resolve":
                self.case_to("resolve", actor, event="case.resolved", resolved_at=self.ctx.at, overdue=0)
                self.changes.overdue = False
            else:
                self.case_to("start", actor)

    def close(
        self, action: str, actor: str, outcome: str, note: str = "", satisfied: bool | None = None, **more: Any
    ) -> None:
        handling = tuple(sorted({w.department for w in self.wos.values() if w.status in lc.ACTIVE_WORK_ORDER}))
        self.cancel_open_parts(actor, f"case {action}")
        self.end_items()
        on_time = outcome == "fixed" and counts_on_time(self.case, self.wos.values())
        self.case_to(
            action,
            actor,
            note,
            "case.closed",
            outcome=outcome,
            closed_at=self.ctx.at,
            on_time=on_time,
            satisfied=satisfied,
            overdue=0,
            **more,
        )
        self.changes.overdue = False
        self.cancel("feedback", self.case.id)
        self.count(f"closed:{self.case.category}:{outcome}")
        if on_time:
            self.count(f"closed_on_time:{self.case.category}")
        self.changes.closure = Closure(str(self.case.category), outcome, on_time, handling)

    def reopen(self, action: str, actor: str, note: str) -> None:
        """Not fixed after all: resolved parts go back to their departments with fresh
        deadlines; past the policy's reopen limit the county takes the case."""
        to_top = after_not_satisfied(self.case, self.ctx.policy) == "top"
        times = int(self.case.reopen_count or 0) + 1
        satisfied = False if action == "not_satisfied" else self.case.get("satisfied")
        self.case_to(action, actor, note, "case.reopened", reopen_count=times, satisfied=satisfied)
        self.count("reopened")
        self.changes.overdue = False
        self.cancel("feedback", self.case.id)
        if settled_on_site(self.case) and not self.wos:  # it never had parts: routing routes it now
            self.set_case(resolution="", on_site_reopened=1)
            self.count("on_site_not_fixed")
            self.announce("case.dispatch_requested", case_id=self.case.id, departments=[], reason="on_site_not_fixed")
            return
        for wo in self.wos.values():
            if wo.status == "resolved":
                self.redispatch(wo, "reopen", actor, "case reopened")
        self.case_to("dispatch", "supervision", "parts back to their departments", "case.dispatched", overdue=0)
        top = self.ctx.tenant.top
        if to_top and self.case.level != top:
            self.escalate(top, "reopen_limit", "supervision", f"reopened {times} times")
            self.request_dispatch([COMMAND_CENTRE], "reopen_limit")

    def redispatch(self, wo: WorkOrder, action: str, actor: str, why: str) -> None:
        """A part back on its department's queue with fresh deadlines (a reopen, an un-merge)."""
        now = self.ctx.now
        ack, res = self.ctx.next_due(wo, "acknowledge"), self.ctx.next_due(wo, "resolve")
        self.wo_to(
            wo, action, actor, why, ack_due=ack, resolve_due=res, dispatched_epoch=now, overdue_ack=0, overdue_resolve=0
        )
        self.arm("acknowledge", wo.id, ack)
        self.arm("resolve", wo.id, res)
        self.announce("work_order.dispatched", work_order=wo.to_record())  # back on its queue

    def escalate(self, to_level: str, reason: str, actor: str, note: str = "") -> None:
        before = self.case.level
        if not self.ctx.tenant.is_level(to_level):
            levels = ", ".join(self.ctx.tenant.levels)
            raise lc.TransitionRefused(f"case {self.case.id}: {to_level!r} is not a level of the ladder ({levels})")
        if before and not self.ctx.tenant.is_higher(to_level, before):
            raise lc.TransitionRefused(f"case {self.case.id} is handled at {before}; {to_level} is not higher")
        node = self.ctx.tenant.ancestor_or_none(self.case.grid, to_level)
        if node is None:  # a dedicated grid: the level it skips has no office for it
            raise lc.TransitionRefused(f"case {self.case.id}: grid {self.case.grid} has no {to_level} above it")
        unit = node.code
        line = self.case_to("escalate", actor, note or reason, level=to_level, unit=unit)
        item = self.hand_to_office(unit, to_level, before, reason)
        told = ld.below(self.ctx.tenant, self.case.grid, to_level)
        self.announce(
            "case.escalated",
            step=line,
            from_level=before,
            to_level=to_level,
            reason=reason,
            item=item.as_dict(),
            told=[{"level": lv, "unit": u} for lv, u in told],
        )
        self.count(f"escalations:{self.case.category}")
        self.count(f"office_received:{to_level}")

    # the offices' escalation items
    def item(self, item_id: str) -> ld.Item:
        for item in ld.items_of(self.case):
            if item.id == item_id:
                return item
        raise LookupError(f"no escalation item {item_id} on case {self.case.id}")

    def set_item(self, item: ld.Item) -> None:
        items = [x for x in ld.items_of(self.case) if x.id != item.id] + [item]
        order = {x.id: i for i, x in enumerate(ld.items_of(self.case))}
        items.sort(key=lambda x: order.get(x.id, len(order)))
        self.set_case(escalations=[x.as_dict() for x in items])

    def hand_to_office(self, unit: str, level: str, from_level: str, reason: str) -> ld.Item:
        """The office of the case's new level gets its item (the one below, if still owed, is
        passed up): on the office's queue, its acknowledge deadline armed."""
        self.end_items("passed_up")
        c, ctx = self.case, self.ctx
        item = ld.open_item(ctx.tenant, c.id, unit, level, from_level or "", reason, ctx.now, ctx.at, ctx.schedule.due)
        self.set_item(item)
        self.arm(ld.TIMER, item.id, item.due)
        self.changes.offices[item.id] = (unit, ctx.now)
        return item

    def end_items(self, status: str = "closed") -> None:
        """Live items are over (the case went higher, or ended): off their queues, unarmed."""
        for item in ld.items_of(self.case):
            if item.live:
                self.set_item(replace(item, status=status))
                self.cancel(ld.TIMER, item.id)
                self.changes.offices[item.id] = (item.unit, None)
