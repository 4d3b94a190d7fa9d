"""routing: a registered case becomes one work order per responsible department, on that
department's durable work queue; a duplicate is merged into its primary instead; a returned
work order goes to the next department; a whistle or a reopen can add departments.

The tenant's routing table decides (first matching rule wins, so the same case always
routes the same way); a case no rule covers goes to the command centre with the reason.
Each work order carries its acknowledge and resolve deadlines from the deadline table.
"""
from __future__ import annotations

import json
import time

from onegrid import envelope as ce
from onegrid import metrics, settings
from onegrid.adapters import topology
from onegrid.adapters.announce import announce
from onegrid.adapters.providers import CaseworkProvider, Observable, RedisStore, TenantBus, TenantContext
from onegrid.adapters.reliable import ATTEMPT, Inbound, reliable_consume
from onegrid.adapters.store import now_iso
from onegrid.domain.cases import new_work_order
from onegrid.domain.routing import Decision, command_centre, reroute, route
from onegrid.domain.supervision import deadlines, find_primary


class RoutingService(Observable):
    name = "routing"
    ctx = TenantContext()
    store = RedisStore()
    work = CaseworkProvider()
    bus = TenantBus()

    @reliable_consume("routing.case-registered")
    def on_case_registered(self, message: Inbound):
        case = self.store.case(json.loads(message.body)["id"])
        if case is None:  # intake records before it announces: a missing case is a fault to retry
            raise LookupError(f"case {json.loads(message.body)['id']} announced but not in the store")
        if case["status"] == "registered":
            pol = self.work.policy
            occurred = case.get("occurred", case["at"])
            candidates = self.store.recent(case["category"], occurred - pol.duplicate_window,
                                           occurred + pol.duplicate_window)
            primary = find_primary(case, candidates, pol)
            if primary is not None:
                out = self.work.merge(case["id"], primary["id"])
                announce(self.bus, self.store, out.outbox, f"/{self.ctx.tenant.id}/routing")
                return
        elif case["status"] in ("merged", "rejected", "closed"):
            return
        decision = route(self.ctx.tenant, case["category"], case["severity"], case["grid"])
        self.dispatch(case, decision, decision.departments, decision.reason, _again(message))

    @reliable_consume("routing.work-order-returned")
    def on_work_order_returned(self, message: Inbound):
        returned = json.loads(message.body)
        case = self.store.case(returned["id"] if "work_order" in returned else returned["case_id"])
        if case is None:
            raise LookupError(f"a returned work order names an unknown case: {message.body[:200]!r}")
        if case["status"] in ("merged", "rejected", "closed"):
            return
        tried = {w["department"] for w in self.store.work_orders_of(case["id"])}
        decision = route(self.ctx.tenant, case["category"], case["severity"], case["grid"])
        department, reason = reroute(self.ctx.tenant, decision, tried)
        if reason == "returned_by_all":
            decision = command_centre(self.ctx.tenant, reason)
        self.dispatch(case, decision, (department,), reason, _again(message))

    @reliable_consume("routing.dispatch-requested")
    def on_dispatch_requested(self, message: Inbound):
        """A whistle or a reopen asks for more departments on a case, at its current level."""
        request = json.loads(message.body)
        case = self.store.case(request["case_id"])
        if case is None or case["status"] in ("merged", "rejected", "closed"):
            return
        level = case["level"] or "county"
        decision = Decision(level, self.ctx.tenant.ancestor(case["grid"], level).code,
                            tuple(request["departments"]), (), None, request["reason"])
        self.dispatch(case, decision, decision.departments, request["reason"], _again(message))

    def dispatch(self, case: dict, decision: Decision, departments, reason: str, again: bool) -> None:
        at, now, tenant = now_iso(), time.time(), self.ctx.tenant
        spans = deadlines(tenant, case["category"], case["severity"], settings.time_scale())
        orders = [new_work_order(case, d, decision, reason, at, spans, now) for d in departments]
        created = set(self.store.dispatch(case, decision, orders, at))
        for wo in orders:
            # a redelivery may follow a crash between the store and the publish: send again
            if wo["id"] in created or again:
                env = ce.new(tenant=tenant.id, department=wo["department"], type="work_order.dispatched",
                             source=f"/{tenant.id}/routing", subject=wo["id"], id=f"{wo['id']}.dispatched")
                self.bus.publish(env, wo, exchange=topology.WORKORDERS, routing_key=wo["department"])
            if wo["id"] in created:
                metrics.WORK_ORDERS.labels(tenant.id, wo["department"], wo["level"], reason).inc()
        if created or again:
            env = ce.new(tenant=tenant.id, department=case["department"], type="case.dispatched",
                         source=f"/{tenant.id}/routing", subject=case["id"],
                         id=f"{case['id']}.dispatched.{'-'.join(sorted(o['id'] for o in orders))}"[:200])
            if case["status"] == "registered":  # what the dispatch script just recorded
                case = {**case, "status": "dispatched", "level": decision.level, "unit": decision.unit,
                        "dispatched_at": at}
            self.bus.publish(env, {**case, "work_orders": orders}, mandatory=False)


def _again(message: Inbound) -> bool:
    return message.redelivered or bool(message.headers.get(ATTEMPT))
