"""routing: a registered case becomes one work order per responsible department, on that
department's durable work queue; a returned work order goes to the next department.

The tenant's routing table decides (first matching rule wins, so the same case always
routes the same way); a case no rule covers goes to the command centre with the reason.
"""
from __future__ import annotations

import json

from onegrid import envelope as ce
from onegrid import metrics
from onegrid.adapters import topology
from onegrid.adapters.providers import Observable, RedisStore, TenantBus, TenantContext
from onegrid.adapters.reliable import ATTEMPT, Inbound, reliable_consume
from onegrid.adapters.store import now_iso
from onegrid.domain.cases import new_work_order
from onegrid.domain.routing import Decision, reroute, route


class RoutingService(Observable):
    name = "routing"
    ctx = TenantContext()
    store = RedisStore()
    bus = TenantBus()

    @reliable_consume("routing.case-registered")
    def on_case_registered(self, message: Inbound):
        case = self._case(message)
        decision = route(self.ctx.tenant, case["category"], case["severity"], case["grid"])
        self._dispatch(case, decision, decision.departments, decision.reason, _again(message))

    @reliable_consume("routing.work-order-returned")
    def on_work_order_returned(self, message: Inbound):
        returned = json.loads(message.body)
        case = self.store.case(returned["case_id"])
        if case is None:
            raise LookupError(f"work order {returned['id']} names unknown case {returned['case_id']}")
        tried = {w["department"] for w in self.store.work_orders_of(case["id"])}
        decision = route(self.ctx.tenant, case["category"], case["severity"], case["grid"])
        department, reason = reroute(self.ctx.tenant, decision, tried)
        if reason == "returned_by_all":
            decision = Decision("county", self.ctx.tenant.root, (department,), (), None, reason)
        self._dispatch(case, decision, (department,), reason, _again(message))

    def _case(self, message: Inbound) -> dict:
        # intake announces a case only after recording it, so the announcement is the case;
        # its status says where it stood then: routing acts only on what it routes anyway
        return json.loads(message.body)

    def _dispatch(self, case: dict, decision: Decision, departments, reason: str, again: bool) -> None:
        at = now_iso()
        orders = [new_work_order(case, d, decision, reason, at) for d in departments]
        created = set(self.store.dispatch(case, decision, orders, at))
        tenant = self.ctx.tenant.id
        for wo in orders:
            # a redelivery may follow a crash between the store and the publish: send again
            if wo["id"] in created or again:
                env = ce.new(tenant=tenant, department=wo["department"], type="work_order.dispatched",
                             source=f"/{tenant}/routing", subject=wo["id"], id=f"{wo['id']}.dispatched")
                self.bus.publish(env, wo, exchange=topology.WORKORDERS, routing_key=wo["department"])
            if wo["id"] in created:
                metrics.WORK_ORDERS.labels(tenant, wo["department"], wo["level"], reason).inc()


def _again(message: Inbound) -> bool:
    return message.redelivered or bool(message.headers.get(ATTEMPT))
