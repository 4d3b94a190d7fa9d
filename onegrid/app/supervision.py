"""supervision's use cases: the tick that fires due deadlines, case queries, the command centre's
and the citizen's actions, the whistle and extension decisions. Each transition is casework's
(all-or-nothing, its events left in an outbox); what it left is announced here right after."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field

from marshmallow import ValidationError

from onegrid.app.history import published_heads
from onegrid.app.inputs import (
    CASE_ACTIONS,
    OFFICE_DECISIONS,
    CaseAction,
    CheckIn,
    ExtensionDecision,
    OfficeAction,
    Query,
    Whistle,
)
from onegrid.app.ports import CaseReader, Casework, Changes, Clock, HistoryReader, Outbox, Timers
from onegrid.domain import ladder as ld
from onegrid.domain.access import check_case_id
from onegrid.domain.casework import Closure
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.supervision import parse_member
from onegrid.domain.timeline import Head, verify
from onegrid.kernel import metrics
from onegrid.kernel.clock import SystemClock, now_iso
from onegrid.kernel.tenant import Tenant
from onegrid.kernel.topology import HISTORY_LIFECYCLE

# the bus's heads are read from this long before the case's registration time: the broker's clock
# (a stream's timestamps) and intake's may differ, and a stream starts at a chunk's boundary
HISTORY_SKEW_S = 300.0
NEEDS_NOTE = ("reject", "close_not_fixed", "verify_failed", "not_satisfied")  # a reason is on record


@dataclass
class Supervision:
    tenant: Tenant
    work: Casework
    cases: CaseReader
    timers: Timers
    announcer: Outbox
    clock: Clock = field(default_factory=SystemClock)
    history: HistoryReader | None = None  # the county's history streams: the heads the bus carried

    # -- the clock ---------------------------------------------------------------------------
    def tick(self) -> int:
        """Fire what is due; each timer is claimed by one process and released once handled.
        Returns how many fired."""
        now = self.clock.now()
        fired = 0
        for member, due in self.timers.claim(now):
            kind, subject = parse_member(member)
            metrics.TIMER_LAG.labels(kind).observe(max(0.0, now - due))
            self._fire(kind, subject, due)
            self.timers.done(member)
            fired += 1
        return fired

    def _fire(self, kind: str, subject: str, due: float) -> None:
        if kind == "feedback":  # the citizen did not answer: the case closes as fixed
            case = self.cases.case(subject)
            if case and case["status"] == "verified":
                self._announce(
                    self.work.case_act(subject, "no_answer", "supervision", "no answer within the feedback window")
                )
            return
        if kind == "arrival":  # no grid worker on site in time: said on the timeline, counted
            missed = self.work.arrival_due(subject, due)
            if missed is not None:
                metrics.ARRIVALS.labels(self.tenant.id, "missed").inc()
            return
        # an office's deadline on its escalation item, or a department's on its work order
        out = self.work.office_due(subject, due) if kind == ld.TIMER else self.work.overdue(kind, subject, due)
        if out is None:  # moot (done, or fired already)
            return
        for event, extra in out.events:
            if event == "case.supervised":
                metrics.SUPERVISIONS.labels(self.tenant.id, extra["level"] or "none", extra["reason"]).inc()
                if kind == ld.TIMER:
                    metrics.OFFICE_ITEMS.labels(self.tenant.id, extra["level"], "missed").inc()
        self._announce(out)

    def sweep(self) -> int:
        return self.announcer.sweep()

    # -- queries -----------------------------------------------------------------------------
    def get_case(self, case_id: str) -> dict:
        case = self.cases.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.tenant.id}")
        return {**case, "work_orders": self.cases.work_orders_of(case_id), "timeline": self.cases.timeline(case_id)}

    def verify_timeline(self, case_id: str, published: list[str] | None = None) -> dict:
        """Prove a case's timeline untouched, or say where it was altered: its hash chain
        against the head on the case record and the heads the bus carried (`published`)."""
        return verify_timeline(self.tenant.id, self.cases, case_id, published or [], self.history)

    def list_cases(self, filters: dict) -> dict:
        q = Query().load(filters)
        if q["level"] is not None and not self.tenant.is_level(q["level"]):  # the ladder is the tenant's
            raise ValidationError(
                {"level": [f"not a level of {self.tenant.id}'s ladder ({', '.join(self.tenant.levels)})"]}
            )
        total, cases = self.cases.query(**q)
        return {"total": total, "offset": q["offset"], "limit": q["limit"], "cases": cases}

    # -- actions -----------------------------------------------------------------------------
    def act(self, case_id: str, action: str, actor: str, note: str = "", evidence_urls: list | None = None) -> dict:
        if action not in CASE_ACTIONS:
            raise TransitionRefused(f"unknown case action {action!r}; one of {', '.join(CASE_ACTIONS)}")
        req = CaseAction().load({"actor": actor, "note": note, "evidence_urls": evidence_urls or []})
        if action in NEEDS_NOTE and not req["note"]:
            raise TransitionRefused(f"{action} needs a reason in `note`")
        out = self.work.case_act(case_id, action, req["actor"], req["note"], req["evidence_urls"])
        self._announce(out)
        return {"case": out.case}

    def whistle(
        self, case_id: str, actor: str, note: str, level: str | None = None, departments: list[str] | None = None
    ) -> dict:
        req = Whistle().load({"actor": actor, "note": note, "level": level, "departments": departments or []})
        if req["level"] is not None and not self.tenant.is_level(req["level"]):  # the ladder is the tenant's
            levels = ", ".join(self.tenant.levels)
            raise ValidationError({"level": [f"not a level of {self.tenant.id}'s ladder ({levels})"]})
        unknown = [d for d in req["departments"] if d not in self.tenant.departments]
        if unknown:
            raise LookupError(f"departments not enabled for {self.tenant.id}: {unknown}")
        if not req["level"] and not req["departments"]:
            raise TransitionRefused("a whistle names a higher level, departments, or both")
        out = self.work.whistle(case_id, req["actor"], req["level"], req["departments"], req["note"])
        self._announce(out)
        return {"case": out.case}

    def check_in(self, case_id: str, actor: str, **body) -> dict:
        """The grid worker on site (time and place) against the arrival deadline."""
        req = CheckIn().load({"actor": actor, **body})
        out = self.work.check_in(check_case_id(case_id), req["actor"], req["lat"], req["lon"], req["note"])
        late = bool(out.case.get("arrival_late"))
        metrics.ARRIVALS.labels(self.tenant.id, "late" if late else "on_time").inc()
        self._announce(out)
        return {"case": out.case}

    # -- the offices' escalation items ----------------------------------------------------------
    def office_items(self, unit: str, offset: int = 0, limit: int = 50) -> dict:
        """The items an office (a unit of the tree) still owes, oldest first."""
        if unit not in self.tenant.nodes:
            raise LookupError(f"no unit {unit[:80]} in {self.tenant.id}")
        total, items = self.cases.office_queue(unit, offset, limit)
        node = self.tenant.nodes[unit]
        office = self.tenant.rung(node.level).office
        return {"unit": unit, "level": node.level, "office": office, "total": total, "items": items}

    def item(self, item_id: str) -> dict:
        """An escalation item and its case (LookupError when there is none)."""
        case = self.cases.case(ld.case_of(item_id))
        found = [x for x in (case or {}).get("escalations") or [] if x.get("id") == item_id]
        if not case or not found:
            raise LookupError(f"no escalation item {item_id[:80]} in {self.tenant.id}")
        return {**found[0], "case": case}

    def office_decide(self, item_id: str, decision: str, actor: str, **body) -> dict:
        """The office acknowledges its item, or acts on it (take over, whistle, extend, close
        not fixed), as the person `actor`."""
        if decision not in OFFICE_DECISIONS:
            raise LookupError(f"unknown decision {decision!r}; one of {', '.join(OFFICE_DECISIONS)}")
        req = OfficeAction().load({"actor": actor, **body})
        level = self.item(item_id)["level"]
        if decision == "acknowledge":
            out = self.work.office_acknowledge(item_id, req["actor"], req["note"])
            metrics.OFFICE_ITEMS.labels(self.tenant.id, level, "acknowledged").inc()
        else:
            unknown = [d for d in req["departments"] if d not in self.tenant.departments]
            if unknown:
                raise LookupError(f"departments not enabled for {self.tenant.id}: {unknown}")
            out = self.work.office_act(
                item_id, req["actor"], decision, req["note"], req["departments"], req["work_order_id"]
            )
            metrics.OFFICE_ITEMS.labels(self.tenant.id, level, "acted").inc()
        self._announce(out)
        return {"case": out.case, "item": self.item(item_id)}

    def decide_extension(self, work_order_id: str, grant: bool, actor: str, note: str = "") -> dict:
        req = ExtensionDecision().load({"actor": actor, "note": note})
        out = self.work.extension(work_order_id, bool(grant), req["actor"], note=req["note"])
        self._announce(out)
        return {"work_order": out.work_order, "case": out.case}

    def attach_evidence(self, case_id: str, actor: str, evidence: dict, note: str = "") -> dict:
        """A photo the command-centre page stored, put on the case's timeline with its sha256."""
        req = CaseAction().load({"actor": actor, "note": note})
        if not isinstance(evidence, dict) or not evidence.get("sha256") or not evidence.get("url"):
            raise TransitionRefused("evidence names its url and sha256")
        out = self.work.attach_evidence(case_id, req["actor"], evidence, req["note"])
        self._announce(out)
        return {"case": out.case}

    def _announce(self, out: Changes) -> None:
        """Every transition passes here, whether an act or the clock made it: so closures are
        counted here, from what the transition says it closed, not from who asked."""
        if out.closure:
            count_closure(self.tenant.id, out.closure)
        for event, extra in out.events:
            if event == "case.escalated":
                metrics.OFFICE_ITEMS.labels(self.tenant.id, extra["to_level"], "received").inc()
        self.announcer.announce(out.outbox)


def verify_timeline(
    tenant: str, cases: CaseReader, case_id: str, published: list[str], history: HistoryReader | None = None
) -> dict:
    """The chain's verdict as a dict (the CLI and the HTTP route print it). `published`: heads
    given by hand; with `history`, also every head the bus carried for the case, read from
    the county's history.lifecycle stream, so a chain recomputed over entirely, the head on
    the record too, is caught without them."""
    try:
        heads = [Head.parse(h) for h in published]
    except ValueError as exc:
        raise ValidationError({"head": [str(exc)]}) from None
    case = cases.case(check_case_id(case_id))
    if case is None:
        raise LookupError(f"no case {case_id} in {tenant}")
    seen = None
    if history is not None:
        heads, seen = _heads_on_the_bus(history, case, heads)
    verdict = verify(tenant, case_id, cases.timeline(case_id), case.get("chainhead"), heads).as_dict()
    return {**verdict, "history": seen}


def _heads_on_the_bus(history: HistoryReader, case: dict, heads: list[Head]) -> tuple[list[Head], dict]:
    """`heads` and those history.lifecycle kept for `case`, read from its registration on (less
    HISTORY_SKEW_S), and what was read: the stream is read from there to its end, so a verify
    costs every lifecycle event of the county since the case was registered (see
    docs/lifecycle.md). A county whose streams are missing is said, not an error."""
    try:
        since = float(case["at"]) - HISTORY_SKEW_S
    except (KeyError, TypeError, ValueError):
        since = None  # a record without its registration time: the whole stream
    seen: dict = {"stream": HISTORY_LIFECYCLE, "since": now_iso(since) if since is not None else None}
    try:
        found = published_heads(history, case["id"], since)
    except LookupError as exc:  # the port's NoHistory: not onboarded with its streams
        return heads, {**seen, "heads": 0, "unavailable": str(exc)}
    for text in found:
        with suppress(ValueError):  # not a head the services publish: nothing to check by
            heads.append(Head.parse(text))
    return heads, {**seen, "heads": len(found)}


def count_closure(tenant: str, c: Closure) -> None:
    """The closure metrics, from what a transition closed (supervision's, or routing's on-site closure)."""
    metrics.CASES_CLOSED.labels(tenant, c.category, c.outcome).inc()
    if c.on_time:
        metrics.CASES_CLOSED_ON_TIME.labels(tenant, c.category).inc()
    for department in c.departments:
        metrics.DEPARTMENT_CASES_CLOSED.labels(tenant, department, c.outcome).inc()
        if c.on_time:
            metrics.DEPARTMENT_CASES_CLOSED_ON_TIME.labels(tenant, department).inc()
