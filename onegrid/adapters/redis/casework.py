"""Lifecycle transitions on the store, each all-or-nothing: read the case and its work orders
under WATCH, let onegrid.domain.casework decide, then write the Changes (case, work orders,
timers, indexes, queues, timeline, counters) and the events to announce (an outbox) in one
MULTI. onegrid.adapters.amqp.announce publishes the outbox; what a crash leaves there is
swept and published later. No rule lives here: this module only reads and writes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from onegrid.adapters.calendar import CHINA
from onegrid.adapters.redis.store import ARCHIVED_STATUS, Store, _decode, encode
from onegrid.domain import casework as cw
from onegrid.domain import ladder as ld
from onegrid.domain.calendar import WorkCalendar
from onegrid.domain.cases import Case, WorkOrder
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.supervision import Policy, member
from onegrid.kernel.clock import now_iso
from onegrid.kernel.tenant import Tenant

# the domain's decision over what was read: (context, case, work orders, pipe for further reads)
Decide = Callable[[cw.Context, Case, list[WorkOrder], object], cw.Changes]


@dataclass
class Outcome:
    case: dict
    events: list[tuple[str, dict]] = field(default_factory=list)  # (type, extra data)
    work_order: dict | None = None
    outbox: list[str] = field(default_factory=list)  # ids of the events written to the outbox
    closure: cw.Closure | None = None  # the case closed by this transition, for the figures
    timeline: list = field(default_factory=list)  # the lines it wrote


class Casework:
    def __init__(
        self, store: Store, tenant: Tenant, pol: Policy, scale: float = 1.0, clock=time.time, calendar=CHINA
    ) -> None:
        self.store, self.tenant, self.policy, self.scale, self.clock = store, tenant, pol, scale, clock
        self.calendar: WorkCalendar = calendar

    def _run(self, case_id: str, decide: Decide, also_watch: tuple = (), also: tuple = ()) -> Outcome:
        """One transition; a case it names that is archived (closed, folded) is put back in
        its open form first (`also`: the other cases it reads, a primary) and folded again
        after, if it is still closed."""
        try:
            return self._transition(case_id, decide, also_watch)
        except LookupError:
            restored = [c for c in (case_id, *also) if c and self.store.unarchive(c)]
            if not restored:
                raise
        try:
            return self._transition(case_id, decide, also_watch)
        finally:
            for c in restored:
                self.store.archive(c)  # a case that is no longer closed (unmerged...) stays open

    def _transition(self, case_id: str, decide: Decide, also_watch: tuple) -> Outcome:
        s = self.store
        case_key, set_key = s.key("case", case_id), s.key("case", case_id, "work_orders")

        tried: list[Outcome] = []  # one per attempt; a WATCH conflict tries again

        def attempt(pipe) -> None:
            raw = pipe.hgetall(case_key)
            if not raw:
                raise LookupError(f"no case {case_id} in {s.tenant}")
            ids = sorted(x.decode() for x in pipe.smembers(set_key))
            if ids:
                pipe.watch(*(s.key("wo", i) for i in ids))
            wos = [WorkOrder.from_record(_decode(r)) for r in (pipe.hgetall(s.key("wo", i)) for i in ids) if r]
            ctx = cw.Context(self.tenant, self.policy, self.clock(), now_iso(), self.scale, self.calendar)
            changes = decide(ctx, Case.from_record(_decode(raw)), wos, pipe)
            outbox = [(str(uuid.uuid4()), kind, extra) for kind, extra in changes.events]
            pipe.multi()
            self._write(pipe, changes)
            head = changes.chainhead or raw.get(b"chainhead", b"").decode() or None
            for event_id, kind, extra in outbox:  # announced after commit; swept if the announcer dies
                entry = [kind, case_id, extra, head]  # with the timeline's head as this transition left it
                pipe.hset(s.key("outbox"), event_id, json.dumps(entry, ensure_ascii=False))
                pipe.zadd(s.key("outbox", "due"), {event_id: ctx.now})
            tried.append(
                Outcome(
                    {}, changes.events, changes.work_order, [e[0] for e in outbox], changes.closure, changes.timeline
                )
            )

        s.r.transaction(attempt, case_key, set_key, *also_watch)
        out = tried[-1]
        out.case = s.case(case_id) or {}
        return out

    def _write(self, pipe, ch: cw.Changes) -> None:
        """The Changes as Redis writes, queued in the open MULTI."""
        s, cid = self.store, ch.case_id
        if ch.case:
            pipe.hset(s.key("case", cid), mapping=encode(ch.case))
        for other, fields in ch.other_cases.items():
            pipe.hset(s.key("case", other), mapping=encode(fields))
        for wo_id, fields in ch.work_orders.items():
            pipe.hset(s.key("wo", wo_id), mapping=encode(fields))
        for index, move in (("status", ch.status), ("level", ch.level)):
            if move:
                pipe.zrem(s.key("idx", index, move[0]), cid)
                pipe.zadd(s.key("idx", index, move[1]), {cid: ch.case_at})
        if ch.status and ch.status[1] == ARCHIVED_STATUS:
            s.mark_closed(cid, time.time(), pipe)
        if ch.overdue is True:
            pipe.zadd(s.key("overdue"), {cid: ch.case_at})
        elif ch.overdue is False:
            pipe.zrem(s.key("overdue"), cid)
        for wo_id, (department, score) in ch.queues.items():
            queue = s.key("department", department, "queue")
            if score is None:
                pipe.zrem(queue, wo_id)
            else:
                pipe.zadd(queue, {wo_id: score})
        for item_id, (unit, score) in ch.offices.items():  # an office's escalation items
            queue = s.key("office", unit, "queue")
            if score is None:
                pipe.zrem(queue, item_id)
            else:
                pipe.zadd(queue, {item_id: score})
        for (kind, subject), due in ch.timers.items():
            if due is None:
                s.timers.cancel(member(kind, subject), pipe)
            else:
                s.timers.arm(member(kind, subject), due, pipe)
        for case, line in ch.timeline:
            pipe.rpush(s.key("case", case, "timeline"), json.dumps(line, ensure_ascii=False))
        for name, n in ch.counters.items():
            pipe.hincrby(s.key("stats"), name, n)

    def _case_of(self, wo_id: str) -> str | None:
        wo = self.store.work_order(wo_id)
        return wo["case_id"] if wo else None

    # -- departments ---------------------------------------------------------------------
    def department_act(
        self,
        wo_id: str,
        department: str,
        action: str,
        actor: str,
        note: str = "",
        evidence: list[str] | None = None,
        extension: float | None = None,
    ) -> Outcome:
        case_id = self._case_of(wo_id)
        if case_id is None:
            raise LookupError(f"no work order {wo_id} in {self.store.tenant}")
        return self._run(
            case_id,
            lambda ctx, case, wos, _: cw.department_act(
                ctx, case, wos, wo_id, department, action, actor, note, evidence, extension
            ),
        )

    def extension(self, wo_id: str, grant: bool, actor: str, seconds: float | None = None, note: str = "") -> Outcome:
        case_id = self._case_of(wo_id)
        if case_id is None:
            raise LookupError(f"no work order {wo_id} in {self.store.tenant}")
        return self._run(
            case_id, lambda ctx, case, wos, _: cw.extension(ctx, case, wos, wo_id, grant, actor, seconds, note)
        )

    # -- supervision ---------------------------------------------------------------------
    def overdue(self, kind: str, wo_id: str, due: float) -> Outcome | None:
        """A deadline passed: supervise, escalate one rung, re-arm; None if moot or done already."""
        case_id = self._case_of(wo_id)
        if case_id is None:
            return None
        out = self._run(case_id, lambda ctx, case, wos, _: cw.overdue(ctx, case, wos, kind, wo_id, due))
        return out if out.events else None

    def arrival_due(self, case_id: str, due: float) -> Outcome | None:
        out = self._run(case_id, lambda ctx, case, wos, _: cw.arrival_due(ctx, case, wos, due))
        return out if out.timeline else None

    def check_in(self, case_id: str, actor: str, lat: float, lon: float, note: str = "") -> Outcome:
        return self._run(case_id, lambda ctx, case, wos, _: cw.check_in(ctx, case, wos, actor, lat, lon, note))

    def office_due(self, item_id: str, due: float) -> Outcome | None:
        """An office's deadline on its escalation item passed; None if moot or done already."""
        out = self._run(ld.case_of(item_id), lambda ctx, case, wos, _: cw.office_due(ctx, case, wos, item_id, due))
        return out if out.events else None

    def office_acknowledge(self, item_id: str, actor: str, note: str = "") -> Outcome:
        return self._run(
            ld.case_of(item_id), lambda ctx, case, wos, _: cw.office_acknowledge(ctx, case, wos, item_id, actor, note)
        )

    def office_act(
        self,
        item_id: str,
        actor: str,
        action: str,
        note: str = "",
        departments: list[str] | None = None,
        wo_id: str | None = None,
    ) -> Outcome:
        return self._run(
            ld.case_of(item_id),
            lambda ctx, case, wos, _: cw.office_act(ctx, case, wos, item_id, actor, action, note, departments, wo_id),
        )

    def whistle(self, case_id: str, actor: str, to_level: str | None, departments: list[str], note: str) -> Outcome:
        return self._run(
            case_id, lambda ctx, case, wos, _: cw.whistle(ctx, case, wos, actor, to_level, departments, note)
        )

    # -- the citizen's word and the command centre ----------------------------------------
    def case_act(
        self, case_id: str, action: str, actor: str, note: str = "", evidence: list[str] | None = None
    ) -> Outcome:
        return self._run(case_id, lambda ctx, case, wos, _: cw.case_act(ctx, case, wos, action, actor, note, evidence))

    def settle_on_site(self, case_id: str, sampled: bool, actor: str = "routing") -> Outcome:
        return self._run(case_id, lambda ctx, case, wos, _: cw.settle_on_site(ctx, case, wos, sampled, actor))

    def attach_evidence(self, case_id: str, actor: str, evidence: dict, note: str = "") -> Outcome:
        return self._run(case_id, lambda ctx, case, wos, _: cw.attach_evidence(ctx, case, wos, actor, evidence, note))

    def merge(self, case_id: str, primary_id: str, actor: str = "routing", note: str = "") -> Outcome:
        """A duplicate: the case is merged into the primary, which links its report and reporter."""
        primary_key = self.store.key("case", primary_id)

        def decide(ctx: cw.Context, case: Case, wos: list[WorkOrder], pipe) -> cw.Changes:
            raw = pipe.hgetall(primary_key)  # watched: two duplicates linking at once both land
            if not raw:
                raise LookupError(f"no case {primary_id} in {self.store.tenant}")
            return cw.merge(ctx, case, wos, Case.from_record(_decode(raw)), actor, note)

        return self._run(case_id, decide, also_watch=(primary_key,), also=(primary_id,))

    def unmerge(self, case_id: str, actor: str, note: str = "") -> Outcome:
        """The case is its own again; its primary (watched) no longer lists it."""
        merged = self.store.case(case_id)
        primary_id = (merged or {}).get("merged_into") or ""
        primary_key = self.store.key("case", primary_id)

        def decide(ctx: cw.Context, case: Case, wos: list[WorkOrder], pipe) -> cw.Changes:
            if case.status == "merged" and (case.merged_into or "") != primary_id:  # re-merged meanwhile
                raise TransitionRefused(f"case {case_id} was merged into {case.merged_into} meanwhile; try again")
            raw = pipe.hgetall(primary_key) if primary_id else {}
            primary = Case.from_record(_decode(raw)) if raw else None
            return cw.unmerge(ctx, case, wos, primary, actor, note)

        return self._run(case_id, decide, also_watch=(primary_key,) if primary_id else (), also=(primary_id,))
