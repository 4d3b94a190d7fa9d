"""routing's use cases: a registered case becomes one work order per responsible department
(or is merged into the case it duplicates); a returned work order goes to the next
department; a whistle or a reopen adds departments.

Each dispatch records first, then publishes every work order onto its department's queue
(`work_order.dispatched` on the work-orders exchange) and `case.dispatched`. Idempotent: a
redelivery records nothing new and publishes again only when `again` says a crash may have
come between the record and the publish.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from onegrid.app.ports import CaseStore, Casework, Clock, DuplicateBook, Outbox, Publisher
from onegrid.app.receipts import tell
from onegrid.app.supervision import count_closure
from onegrid.domain.calendar import WEEKENDS_ONLY, WorkCalendar, schedule
from onegrid.domain.cases import new_work_order
from onegrid.domain.duplicates import Match, Suggestion, best_match
from onegrid.domain.lifecycle import TERMINAL_CASE
from onegrid.domain.onsite import reported_on_site, sampled, settled_on_site
from onegrid.domain.receipts import of_case
from onegrid.domain.routing import Decision, Dispatch, command_centre, placed, reroute, route
from onegrid.domain.supervision import deadline_spans, deadlines
from onegrid.kernel import envelope as ce
from onegrid.kernel import metrics, topology
from onegrid.kernel.tenant import Tenant


@dataclass(frozen=True)
class Dispatched:
    work_orders: list[dict]  # every work order of this dispatch
    created: frozenset[str]  # the ids recorded now; the others were already

    @property
    def recorded(self) -> list[dict]:
        """The work orders this dispatch put on a queue for the first time."""
        return [wo for wo in self.work_orders if wo["id"] in self.created]


@dataclass(frozen=True)
class Merged:
    case_id: str
    primary_id: str


@dataclass(frozen=True)
class OnSite:
    """A case the grid worker settled on site: closed fixed, or held for a sampled check."""

    case_id: str
    sampled: bool


@dataclass(frozen=True)
class Planned:
    """A dispatch decided and not yet recorded: route_batch records a batch's together."""

    write: Dispatch
    again: bool  # a redelivery: publish again what is already recorded


@dataclass(frozen=True)
class Routing:
    tenant: Tenant
    store: CaseStore
    work: Casework
    bus: Publisher
    outbox: Outbox
    clock: Clock
    book: DuplicateBook  # suggestions for the command centre, pairs said to be distinct
    scale: float = 1.0  # deadlines divided by this (onegrid.kernel.settings.time_scale)
    calendar: WorkCalendar = WEEKENDS_ONLY  # working days; the service passes the Chinese one

    @property
    def source(self) -> str:
        return f"/{self.tenant.id}/routing"

    def route_batch(self, batch: list[tuple[str, bool]]) -> list[Dispatched | Merged | OnSite | None]:
        """`case_registered` for each (case id, again) of a batch, in turn, the batch's cases
        read together first (one round trip, not one each), then the ids of their duplicate
        candidates (one more), and the dispatches recorded together (one more). A record read
        then is used once, and only while no earlier case of the batch has written it: a case
        id that comes again, or a primary an earlier one was merged into, is read afresh, as
        the batch left it. The candidates' own records are read at each case's turn, so a
        duplicate sees its primary as the batch left it: the dispatches waiting to be recorded
        are recorded first when a case is to be read again or one of them is among its
        candidates. A case registered after the ids were read is no candidate, as one
        registered after a case's look-up never was (best_match: while it is registered, its
        own routing finds this one)."""
        read = {c["id"]: c for c in self.store.cases(list(dict.fromkeys(cid for cid, _ in batch)))}
        windows = {cid: self._window(c) for cid, c in read.items() if self._may_duplicate(c)}
        ids = dict(zip(windows, self.book.recent_ids(list(windows.values())), strict=True)) if windows else {}
        results: list[Dispatched | Merged | OnSite | Planned | None] = []
        waiting: dict[str, int] = {}  # case id -> where its planned dispatch is in results
        for case_id, again in batch:
            case, look_alikes = read.pop(case_id, None), ids.pop(case_id, None)
            if waiting and self._reads_written(case, look_alikes, waiting):
                self._record(results, waiting)
            result = self._registered(case_id, again, case, look_alikes)
            if isinstance(result, Merged):  # the merge linked the duplicate on its primary
                read.pop(result.primary_id, None)
                ids.pop(result.primary_id, None)
            if isinstance(result, Planned):
                waiting[case_id] = len(results)
            results.append(result)
        self._record(results, waiting)
        return cast(list[Dispatched | Merged | OnSite | None], results)  # none is left Planned

    def _reads_written(self, case: dict | None, look_alikes: list[str] | None, waiting: dict[str, int]) -> bool:
        """Whether a case's turn reads what a waiting dispatch writes: its own record (not read
        with the batch) or a duplicate candidate's."""
        if case is None:
            return True
        if not self._may_duplicate(case):
            return False
        return look_alikes is None or any(cid in waiting for cid in look_alikes)

    def _record(self, results: list, waiting: dict[str, int]) -> None:
        """The waiting dispatches recorded in one call, each then announced in its place."""
        if not waiting:
            return
        planned: list[Planned] = [results[i] for i in waiting.values()]
        recorded = self.store.dispatch_many([p.write for p in planned])
        for i, p, (created, head) in zip(waiting.values(), planned, recorded, strict=True):
            results[i] = self._announce(p, created, head)
        waiting.clear()

    def case_registered(
        self, case_id: str, again: bool = False, case: dict | None = None, look_alikes: list[str] | None = None
    ) -> Dispatched | Merged | OnSite | None:
        """Close a case the grid worker settled on site (or hold a sampled one for its check);
        merge a duplicate into its primary (and tell its department: an `event.merged`
        receipt), else route and dispatch; None for a case closed, rejected or merged meanwhile.
        `case`: its record as just read, and `look_alikes` the ids of its duplicate candidates
        (route_batch); else they are read here."""
        result = self._registered(case_id, again, case, look_alikes)
        return self._recorded(result) if isinstance(result, Planned) else result

    def _registered(
        self, case_id: str, again: bool, case: dict | None, look_alikes: list[str] | None
    ) -> Planned | Merged | OnSite | None:
        """case_registered up to the dispatch, which it plans and leaves to the caller."""
        case = case if case is not None else self.store.case(case_id)
        if case is None:  # intake records before it announces: a missing case is a fault to retry
            raise LookupError(f"case {case_id} announced but not in the store")
        if case["status"] == "registered" and reported_on_site(case):  # never a duplicate: it is settled
            return self._settle_on_site(case)
        if self._may_duplicate(case):
            match = self._duplicate(case, look_alikes)
            verdict = match.verdict(self.work.policy.duplicates) if match else "distinct"
            if match is not None and verdict == "merge":
                out = self.work.merge(case["id"], match.primary_id)
                self.outbox.announce(out.outbox)
                self.book.count("auto_merged")
                metrics.DUPLICATES.labels(self.tenant.id, "auto_merged").inc()
                self._tell_merged({**case, "merged_into": match.primary_id})
                return Merged(case["id"], match.primary_id)
            if match is not None and verdict == "suggest":  # dispatched meanwhile: the incident may be new
                suggestion = Suggestion(case["id"], match.primary_id, match, self.clock.now_iso())
                if self.book.suggest(suggestion, case["at"]):
                    metrics.DUPLICATES.labels(self.tenant.id, "suggested").inc()
        elif case["status"] in TERMINAL_CASE:
            if again and case.get("merged_into"):  # a crash may have come before the receipt
                self._tell_merged(case)
            return None
        elif settled_on_site(case):  # held for its sampled check: nothing to dispatch
            return None
        decision = route(self.tenant, case["category"], case["severity"], case["grid"])
        return self._plan(case, decision, decision.departments, decision.reason, again)

    def _settle_on_site(self, case: dict) -> OnSite:
        """No work order, no deadline; the closure counts in the same figures as supervision's."""
        checked = sampled(case["id"], self.work.policy.on_site_sample)
        out = self.work.settle_on_site(case["id"], checked)
        self.outbox.announce(out.outbox)
        if out.closure:
            count_closure(self.tenant.id, out.closure)
        return OnSite(case["id"], checked)

    def work_order_returned(self, case_id: str, again: bool = False) -> Dispatched | None:
        """The next alternate department the case's rule names, else the command centre."""
        case = self.store.case(case_id)
        if case is None:
            raise LookupError(f"a returned work order names an unknown case {case_id!r}")
        if case["status"] in TERMINAL_CASE:
            return None
        tried = {w["department"] for w in self.store.work_orders_of(case["id"])}
        decision = route(self.tenant, case["category"], case["severity"], case["grid"])
        department, reason = reroute(self.tenant, decision, tried)
        if reason == "returned_by_all":
            decision = command_centre(self.tenant, reason)
        return self.dispatch(case, decision, (department,), reason, again)

    def dispatch_requested(
        self, case_id: str, departments: Iterable[str], reason: str, again: bool = False
    ) -> Dispatched | None:
        """More departments on a case (a whistle, a reopen), at the case's current level."""
        case = self.store.case(case_id)
        if case is None or case["status"] in TERMINAL_CASE:
            return None
        if reason in ("unmerged", "on_site_not_fixed"):  # routed as any registered case
            decision = route(self.tenant, case["category"], case["severity"], case["grid"])
            out = self.dispatch(case, decision, decision.departments, decision.reason, again)
            if reason == "unmerged":
                self._tell_merged(case)  # no longer merged: its department's receipt says accepted
            return out
        level, unit = placed(self.tenant, case["grid"], case["level"] or self.tenant.top)
        decision = Decision(level, unit, tuple(departments), (), None, reason)
        return self.dispatch(case, decision, decision.departments, reason, again)

    def dispatch(
        self, case: dict, decision: Decision, departments: Iterable[str], reason: str, again: bool
    ) -> Dispatched:
        return self._recorded(self._plan(case, decision, departments, reason, again))

    def _recorded(self, planned: Planned) -> Dispatched:
        """One dispatch recorded (one round trip), then announced."""
        [(created, head)] = self.store.dispatch_many([planned.write])
        return self._announce(planned, created, head)

    def _plan(self, case: dict, decision: Decision, departments: Iterable[str], reason: str, again: bool) -> Planned:
        """The work orders of a dispatch, with their deadlines found on the calendar."""
        at, now, tenant = self.clock.now_iso(), self.clock.now(), self.tenant
        sched = schedule(tenant, self.calendar, self.scale)
        spans = deadlines(tenant, case["category"], case["severity"], sched, now)  # found on the calendar
        ack, resolve = deadline_spans(tenant, case["category"], case["severity"])
        texts = (str(ack), str(resolve))
        orders = [new_work_order(case, d, decision, reason, at, spans, now, texts) for d in departments]
        # its first dispatch: the grid worker has to be on site (armed in the dispatch's own write)
        arrival = now + self.work.policy.arrival / self.scale if case["status"] == "registered" else None
        return Planned(Dispatch(case, decision, orders, at, arrival), again)

    def _announce(self, planned: Planned, recorded: list[str], head: str | None) -> Dispatched:
        """Once recorded: each work order recorded now onto its department's queue, and
        `case.dispatched`; all again on a redelivery (a crash may have come between the
        store and the publish)."""
        tenant, again = self.tenant, planned.again
        case, decision, orders = planned.write.case, planned.write.decision, planned.write.work_orders
        at = planned.write.at
        created = frozenset(recorded)
        for wo in orders:
            if wo["id"] in created or again:
                env = ce.new(
                    tenant=tenant.id,
                    department=wo["department"],
                    type="work_order.dispatched",
                    source=self.source,
                    subject=wo["id"],
                    id=f"{wo['id']}.dispatched",
                    traceparent=case.get("traceparent"),
                    chainhead=head,
                )
                self.bus.publish(env, wo, exchange=topology.WORKORDERS, routing_key=wo["department"])
        if created or again:
            env = ce.new(
                tenant=tenant.id,
                department=case["department"],
                type="case.dispatched",
                source=self.source,
                subject=case["id"],
                id=f"{case['id']}.dispatched.{'-'.join(sorted(o['id'] for o in orders))}"[:200],
                traceparent=case.get("traceparent"),
                chainhead=head,
            )
            case = {**case, "chainhead": head}
            if case["status"] in ("registered", "reopened"):  # what the dispatch just recorded
                case = {
                    **case,
                    "status": "dispatched",
                    "level": decision.level,
                    "unit": decision.unit,
                    "dispatched_at": at,
                }
            self.bus.publish(env, {**case, "work_orders": orders}, mandatory=False)
        return Dispatched(orders, created)

    def _tell_merged(self, case: dict) -> None:
        """Its department's receipt: merged (into which case), or accepted once un-merged."""
        if case["department"] in self.tenant.departments:
            receipt = of_case(case, case["department"], self.clock.now_iso())
            tell(self.store, self.bus, self.tenant.id, "routing", receipt)

    @staticmethod
    def _may_duplicate(case: dict) -> bool:
        """Looked at as a duplicate: registered, not settled on site, not un-merged by a person."""
        return case["status"] == "registered" and not reported_on_site(case) and not case.get("unmerged_from")

    def _window(self, case: dict) -> tuple[str, float, float]:
        """(category, since, until): where its duplicate candidates are, near it in time."""
        th = self.work.policy.duplicates
        occurred = case.get("occurred", case["at"])
        return case["category"], occurred - th.window, occurred + th.window

    def _duplicate(self, case: dict, ids: list[str] | None = None) -> Match | None:
        """The open case this one most likely duplicates, among those of its category near in
        time (`ids`: theirs, read with the batch), except pairs a person said are distinct."""
        found = self.book.candidates(case["id"], *self._window(case), ids=ids)
        return best_match(case, found.cases, self.work.policy.duplicates, found.distinct)
