"""Lifecycle transitions on the store, each all-or-nothing: read under WATCH, decide with the
pure rules (lifecycle, supervision), then write case, work orders, timers, indexes, timeline,
counters and the events to announce (an outbox) in one MULTI. onegrid.adapters.announce
publishes the outbox; what a crash leaves there is swept and published later."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

from onegrid.adapters.store import Store, _decode, encode, now_iso
from onegrid.domain import lifecycle as lc
from onegrid.domain.cases import Step
from onegrid.domain.supervision import Policy, after_not_satisfied, is_higher, member, on_due
from onegrid.tenant import Tenant


@dataclass
class Outcome:
    case: dict
    events: list[tuple[str, dict]] = field(default_factory=list)  # (type, extra data)
    work_order: dict | None = None
    outbox: list[str] = field(default_factory=list)      # ids of the events written to the outbox


class _Tx:
    """The writes of one transaction, queued while deciding, applied after MULTI."""

    def __init__(self, work: "Casework", case: dict, wos: list[dict]):
        self.w, self.s, self.case, self.wos = work, work.store, case, {w["id"]: w for w in wos}
        self.ops, self.now, self.at = [], work.clock(), now_iso()
        self.out = Outcome(case)

    def step(self, actor, action, before, after, note="", wo=None):
        line = Step(self.at, actor, action, before, after, note, wo).as_dict()
        self.ops.append(lambda p: p.rpush(self.s.key("case", self.case["id"], "timeline"),
                                          json.dumps(line, ensure_ascii=False)))
        return line

    def count(self, name, n=1):
        self.ops.append(lambda p: p.hincrby(self.s.key("stats"), name, n))

    def set_case(self, **fields):
        self.case.update(fields)
        self.ops.append(lambda p: p.hset(self.s.key("case", self.case["id"]), mapping=encode(fields)))

    def case_to(self, action, actor, why="", event=None, **fields) -> str:
        before = self.case["status"]
        after = lc.case_next(self.case, action)
        cid, at = self.case["id"], self.case["at"]
        if after != before:
            self.ops.append(lambda p: p.zrem(self.s.key("idx", "status", before), cid))
            self.ops.append(lambda p: p.zadd(self.s.key("idx", "status", after), {cid: at}))
        self.set_case(status=after, **fields)
        line = self.step(actor, action, before, after, why)
        if event:
            self.out.events.append((event, {"step": line}))
        return after

    def wo_to(self, wo, action, actor, why="", event=None, **fields) -> str:
        before = wo["status"]
        after = lc.work_order_next(wo, action)
        wo.update(status=after, **fields)
        key, queue = self.s.key("wo", wo["id"]), self.s.key("department", wo["department"], "queue")
        self.ops.append(lambda p: p.hset(key, mapping=encode({"status": after, **fields})))
        if after in ("returned", "resolved", "cancelled"):
            self.ops.append(lambda p: p.zrem(queue, wo["id"]))
            self.cancel_timers(wo)
        elif after == "dispatched":
            self.ops.append(lambda p: p.zadd(queue, {wo["id"]: self.now}))
        if action == "accept":
            self.ops.append(lambda p: self.s.timers.cancel(member("acknowledge", wo["id"]), p))
        line = self.step(actor, action, before, after, why, wo["id"])
        if event:
            self.out.events.append((event, {"step": line, "work_order": dict(wo)}))
        return after

    def request_dispatch(self, departments, reason):
        """Routing adds these departments' work orders (it owns dispatching)."""
        if departments:
            self.out.events.append(("case.dispatch_requested", {"case_id": self.case["id"],
                                                                 "departments": departments, "reason": reason}))

    def cancel_timers(self, wo):
        for kind in ("acknowledge", "resolve"):
            self.ops.append(lambda p, k=kind: self.s.timers.cancel(member(k, wo["id"]), p))

    def arm(self, kind, subject, due):
        self.ops.append(lambda p: self.s.timers.arm(member(kind, subject), due, p))

    def follow_parts(self, actor):
        """Start or resolve the case as its parts now say."""
        while (action := lc.case_after_parts(self.case["status"], list(self.wos.values()))) is not None:
            if action == "resolve":
                self.case_to("resolve", actor, event="case.resolved", resolved_at=self.at, overdue=0)
                self.ops.append(lambda p: p.zrem(self.s.key("overdue"), self.case["id"]))
            else:
                self.case_to("start", actor)

    def close(self, action, actor, outcome, note="", satisfied=None):
        for wo in self.wos.values():
            if wo["status"] in ("dispatched", "accepted", "extension_requested"):
                self.wo_to(wo, "cancel", actor, f"case {action}")
        on_time = outcome == "fixed" and not _overdue(self.case, self.wos.values())
        self.case_to(action, actor, note, event="case.closed", outcome=outcome, closed_at=self.at, on_time=on_time,
                     satisfied=satisfied, overdue=0)
        self.ops.append(lambda p: p.zrem(self.s.key("overdue"), self.case["id"]))
        self.ops.append(lambda p: self.s.timers.cancel(member("feedback", self.case["id"]), p))
        cat = self.case["category"]
        self.count(f"closed:{cat}:{outcome}")
        if on_time:
            self.count(f"closed_on_time:{cat}")

    def escalate(self, to_level, reason, actor, note=""):
        before, cid, at = self.case["level"], self.case["id"], self.case["at"]
        if before and not is_higher(to_level, before):
            raise lc.TransitionRefused(f"case {cid} is handled at {before}; {to_level} is not higher")
        self.case_to("escalate", actor, note or reason, event="case.escalated",
                     level=to_level, unit=self.w.tenant.ancestor(self.case["grid"], to_level).code)
        self.out.events[-1][1].update(from_level=before, to_level=to_level, reason=reason)
        self.ops.append(lambda p: p.zrem(self.s.key("idx", "level", before), cid))
        self.ops.append(lambda p: p.zadd(self.s.key("idx", "level", to_level), {cid: at}))
        self.count(f"escalations:{self.case['category']}")


class Casework:
    def __init__(self, store: Store, tenant: Tenant, pol: Policy, scale: float = 1.0, clock=time.time):
        self.store, self.tenant, self.policy, self.scale, self.clock = store, tenant, pol, scale, clock

    def _run(self, case_id: str, decide, also_watch: tuple = ()) -> Outcome:
        s = self.store
        case_key, set_key = s.key("case", case_id), s.key("case", case_id, "work_orders")

        def attempt(pipe):
            raw = pipe.hgetall(case_key)
            if not raw:
                raise LookupError(f"no case {case_id} in {s.tenant}")
            ids = sorted(x.decode() for x in pipe.smembers(set_key))
            if ids:
                pipe.watch(*(s.key("wo", i) for i in ids))
            tx = _Tx(self, _decode(raw), [_decode(pipe.hgetall(s.key("wo", i))) for i in ids])
            decide(tx)
            outbox = [(str(uuid.uuid4()), kind, extra) for kind, extra in tx.out.events]
            pipe.multi()
            for op in tx.ops:
                op(pipe)
            for event_id, kind, extra in outbox:  # announced after commit; swept if the announcer dies
                pipe.hset(s.key("outbox"), event_id, json.dumps([kind, case_id, extra], ensure_ascii=False))
                pipe.zadd(s.key("outbox", "due"), {event_id: tx.now})
            tx.out.outbox = [e[0] for e in outbox]
            return tx.out

        out = s.r.transaction(attempt, case_key, set_key, *also_watch, value_from_callable=True)
        out.case = s.case(case_id)
        return out

    # -- departments ---------------------------------------------------------------------
    def department_act(self, wo_id: str, department: str, action: str, actor: str, note: str = "",
                       evidence: list[str] | None = None, extension: float | None = None) -> Outcome:
        wo = self.store.work_order(wo_id)
        if wo is None:
            raise LookupError(f"no work order {wo_id} in {self.store.tenant}")
        if action not in lc.DEPARTMENT_ACTIONS:
            raise lc.TransitionRefused(f"{action} is not a department action")

        def decide(tx: _Tx):
            w = tx.wos[wo_id]
            lc.work_order_next(w, action, department)  # refuse early: another's, or not allowed
            who = f"{department}/{actor}"
            done = {"accept": "accepted", "return": "returned", "request_extension": "extension_requested",
                    "resolve": "resolved"}[action]
            fields = {f"{done}_at": tx.at, f"{done}_epoch": tx.now}
            if note:
                fields["note"] = note
            if evidence:
                fields["evidence_urls"] = evidence
            if action == "resolve":
                fields["on_time"] = tx.now <= float(w["resolve_due"]) and not w.get("overdue_resolve")
            if action == "request_extension":
                fields["extension_requested_s"] = (extension or 0) / self.scale  # on the deadlines' clock
            event = {"accept": "work_order.accepted", "return": "work_order.returned",
                     "request_extension": "work_order.extension_requested", "resolve": "work_order.resolved"}[action]
            after = tx.wo_to(w, action, who, note, event=event, **fields)
            tx.count(f"{department}:{after}")
            tx.out.work_order = w
            tx.follow_parts("departments")

        return self._run(wo["case_id"], decide)

    def extension(self, wo_id: str, grant: bool, actor: str, seconds: float | None = None, note: str = "") -> Outcome:
        wo = self.store.work_order(wo_id)
        if wo is None:
            raise LookupError(f"no work order {wo_id} in {self.store.tenant}")

        def decide(tx: _Tx):
            w = tx.wos[wo_id]
            extra = float(seconds if seconds is not None else w.get("extension_requested_s") or 0)
            if grant:
                due = float(w["resolve_due"]) + extra
                tx.wo_to(w, "grant_extension", actor, note or f"+{extra:.0f}s", event="work_order.extension_granted",
                         resolve_due=due)
                tx.arm("resolve", wo_id, due)
            else:
                tx.wo_to(w, "deny_extension", actor, note, event="work_order.extension_denied")
            tx.out.work_order = w

        return self._run(wo["case_id"], decide)

    # -- supervision ---------------------------------------------------------------------
    def overdue(self, kind: str, wo_id: str, due: float) -> Outcome | None:
        """A deadline passed: supervise, escalate one rung, re-arm; None if moot or done already."""
        wo = self.store.work_order(wo_id)
        if wo is None:
            return None

        def decide(tx: _Tx):
            w = tx.wos[wo_id]
            verdict = on_due(kind, w, tx.case)
            if verdict is None or float(w.get(f"{kind}_fired") or 0) == due:
                return
            flag = "overdue_ack" if kind == "acknowledge" else "overdue_resolve"
            w.update({flag: 1, f"{kind}_fired": due})
            tx.ops.append(lambda p: p.hset(tx.s.key("wo", wo_id), mapping=encode({flag: 1, f"{kind}_fired": due})))
            line = tx.step("supervision", "supervise", tx.case["status"], tx.case["status"],
                           f"{w['department']}: {verdict.reason}", wo_id)
            line["due"] = due  # which deadline this was: a firing is unique by work order, kind and due
            tx.out.events.append(("case.supervised", {"step": line, "reason": verdict.reason, "work_order": dict(w),
                                                      "level": tx.case["level"]}))
            tx.set_case(overdue=1)
            tx.ops.append(lambda p: p.zadd(tx.s.key("overdue"), {tx.case["id"]: tx.case["at"]}))
            tx.count("supervisions")
            if verdict.escalate_to:
                tx.escalate(verdict.escalate_to, verdict.reason, "supervision")
                tx.arm(kind, wo_id, tx.now + verdict.rearm_in)

        out = self._run(wo["case_id"], decide)
        return out if out.events else None

    def whistle(self, case_id: str, actor: str, to_level: str | None, departments: list[str], note: str) -> Outcome:
        def decide(tx: _Tx):
            lc.case_next(tx.case, "whistle")
            line = tx.step(actor, "whistle", tx.case["status"], tx.case["status"], note)
            tx.out.events.append(("case.whistled", {"step": line, "departments": departments}))
            if to_level and to_level != tx.case["level"]:
                tx.escalate(to_level, "whistle", actor, note)
            active = {w["department"] for w in tx.wos.values() if w["status"] in lc.ACTIVE_WORK_ORDER}
            tx.request_dispatch([d for d in departments if d not in active], "whistle")

        return self._run(case_id, decide)

    # -- the citizen's word and the command centre ----------------------------------------
    def case_act(self, case_id: str, action: str, actor: str, note: str = "",
                 evidence: list[str] | None = None) -> Outcome:
        def decide(tx: _Tx):
            if action == "verify":
                tx.case_to("verify", actor, note, event="case.verified", verified_at=tx.at, verified_by=actor,
                           evidence_urls=evidence or [])
                tx.arm("feedback", case_id, tx.now + self.policy.feedback_window / self.scale)
            elif action in ("verify_failed", "not_satisfied"):
                self._reopen(tx, action, actor, note)
            elif action in ("satisfied", "no_answer"):
                tx.close(action, actor, "fixed", note, satisfied=True if action == "satisfied" else None)
            elif action == "close_not_fixed":
                tx.close(action, actor, "not_fixed", note)
            elif action == "reject":
                lc.case_next(tx.case, "reject")
                for wo in tx.wos.values():
                    if wo["status"] in ("dispatched", "accepted", "extension_requested"):
                        tx.wo_to(wo, "cancel", actor, "case rejected")
                tx.case_to("reject", actor, note, event="case.rejected", rejected_reason=note)
                tx.count(f"rejected:{tx.case['category']}")
            else:
                raise lc.TransitionRefused(f"case {case_id}: unknown action {action!r}")

        return self._run(case_id, decide)

    def _reopen(self, tx: _Tx, action: str, actor: str, note: str) -> None:
        to_county = after_not_satisfied(tx.case, self.policy) == "county"
        count = int(tx.case.get("reopen_count") or 0) + 1
        tx.case_to(action, actor, note, event="case.reopened", reopen_count=count,
                   satisfied=False if action == "not_satisfied" else tx.case.get("satisfied"))
        tx.count("reopened")
        tx.ops.append(lambda p: p.zrem(tx.s.key("overdue"), tx.case["id"]))
        tx.ops.append(lambda p: tx.s.timers.cancel(member("feedback", tx.case["id"]), p))
        for wo in tx.wos.values():
            if wo["status"] == "resolved":
                ack, res = tx.now + float(wo["ack_span"]), tx.now + float(wo["resolve_span"])
                tx.wo_to(wo, "reopen", actor, "case reopened", ack_due=ack, resolve_due=res, dispatched_epoch=tx.now,
                         overdue_ack=0, overdue_resolve=0)
                tx.arm("acknowledge", wo["id"], ack)
                tx.arm("resolve", wo["id"], res)
                tx.out.events.append(("work_order.dispatched", {"work_order": dict(wo)}))  # back on its queue
        tx.case_to("dispatch", "supervision", "parts back to their departments", event="case.dispatched", overdue=0)
        if to_county and tx.case["level"] != "county":
            tx.escalate("county", "reopen_limit", "supervision", f"reopened {count} times")
            tx.request_dispatch(["governance"], "reopen_limit")

    def merge(self, case_id: str, primary_id: str) -> Outcome:
        """A duplicate: the case is merged into the primary, which links its report and reporter."""
        def decide(tx: _Tx):
            primary = self.store.case(primary_id)  # watched: two duplicates linking at once both land
            tx.case_to("merge", "routing", f"duplicate of {primary_id}", event="case.merged", merged_into=primary_id)
            tx.out.events[-1][1]["primary_id"] = primary_id
            link = {"case_id": case_id, "event_id": tx.case["event_id"], "reporter": tx.case["reporter"],
                    "department": tx.case["department"]}
            linked = (primary.get("linked") or []) + [link]
            tx.ops.append(lambda p: p.hset(tx.s.key("case", primary_id), "linked", json.dumps(linked, ensure_ascii=False)))
            line = Step(tx.at, "routing", "link_duplicate", primary["status"], primary["status"],
                        f"{case_id} from {tx.case['department']}").as_dict()
            tx.ops.append(lambda p: p.rpush(tx.s.key("case", primary_id, "timeline"), json.dumps(line, ensure_ascii=False)))
            tx.count("merged")

        return self._run(case_id, decide, also_watch=(self.store.key("case", primary_id),))


def _overdue(case: dict, wos) -> bool:
    return bool(case.get("overdue")) or any(w.get("overdue_ack") or w.get("overdue_resolve") or
                                            w.get("on_time") is False for w in wos if w["status"] != "cancelled")
