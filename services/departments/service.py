"""departments: what a department system uses to work its queue, over RPC and HTTP.

List its work orders, accept one ("report for duty"), return one as not its business
(routing re-routes it), ask for more time, resolve one with a note and evidence. A department
acts only on its own work orders, and over HTTP only with its own token (a tenant whose
manifest trusts unauthenticated HTTP — the demo counties — accepts none); every action is a
line in the case's append-only timeline. RPC is for OneGrid's own services and operators:
department broker users have no permission on the RPC exchange.

Entrypoints only: this authenticates an HTTP caller as the department it names, onegrid.app.departments
checks the request and acts, and what was done or refused is counted.
"""

from __future__ import annotations

from nameko.web.handlers import http

from onegrid.adapters.nameko.httpjson import acting_body, respond
from onegrid.adapters.nameko.people import People
from onegrid.adapters.nameko.providers import (
    CaseworkProvider,
    Observable,
    OutboxAnnouncer,
    RedisStore,
    TenantBus,
    TenantContext,
)
from onegrid.adapters.nameko.reliable import rpc
from onegrid.app.departments import Departments
from onegrid.app.inputs import WORK_ORDER_ACTIONS, Page
from onegrid.domain.access import Resource, check_work_order_id
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.kernel import metrics


class DepartmentsService(Observable):
    name = "departments"
    ctx = TenantContext()
    store = RedisStore()
    work = CaseworkProvider()
    bus = TenantBus()
    people = People()

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def list_work_orders(self, department: str, offset: int = 0, limit: int = 50) -> dict:
        return self._departments().list_work_orders(department, offset, limit)

    @rpc
    def get_case(self, case_id: str) -> dict:
        return self._departments().get_case(case_id)

    @rpc
    def accept(self, department: str, work_order_id: str, actor: str) -> dict:
        return self._act(department, work_order_id, "accept", {"actor": actor})

    @rpc
    def return_work_order(self, department: str, work_order_id: str, actor: str, note: str) -> dict:
        return self._act(department, work_order_id, "return", {"actor": actor, "note": note})

    @rpc
    def request_extension(self, department: str, work_order_id: str, actor: str, extension: str, note: str) -> dict:
        return self._act(
            department, work_order_id, "request_extension", {"actor": actor, "extension": extension, "note": note}
        )

    @rpc
    def resolve(
        self, department: str, work_order_id: str, actor: str, note: str, evidence_urls: list[str] | None = None
    ) -> dict:
        return self._act(
            department, work_order_id, "resolve", {"actor": actor, "note": note, "evidence_urls": evidence_urls or []}
        )

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/departments/<string:department>/work-orders")
    def http_list(self, request, department):
        def run():
            self.people.authorize(request, "work_orders.list", department, Resource(departments=(department,)))
            page = Page().load(request.args.to_dict())
            return self.list_work_orders(department, page["offset"], page["limit"])

        return respond(run)

    @http("GET", "/cases/<string:case_id>")
    def http_case(self, request, case_id):
        return respond(lambda: self.people.read_case(request, case_id, self.get_case))

    @http("POST", "/departments/<string:department>/work-orders/<string:work_order_id>/<string:action>")
    def http_act(self, request, department, work_order_id, action):
        def run():
            who = self.people.authorize(request, "work_order.act", work_order_id, Resource(departments=(department,)))
            check_work_order_id(work_order_id)
            if action not in WORK_ORDER_ACTIONS:
                raise LookupError(f"unknown action {action!r}; one of {', '.join(WORK_ORDER_ACTIONS)}")
            body = acting_body(request, who.subject if who.person else None)  # a person acts as themselves
            return self._act(department, work_order_id, WORK_ORDER_ACTIONS[action], body)

        return respond(run)

    # -- shared --------------------------------------------------------------------------
    def _departments(self) -> Departments:
        return Departments(
            self.ctx.tenant,
            self.store,
            self.work,
            OutboxAnnouncer(self.bus, self.store, f"/{self.ctx.tenant.id}/departments"),
        )

    def _act(self, department: str, work_order_id: str, action: str, body) -> dict:
        departments = self._departments()
        req = departments.request(department, action, body)  # an invalid request is not counted
        try:
            done = departments.act(department, work_order_id, req)
        except (TransitionRefused, LookupError):
            metrics.WORK_ORDER_ACTIONS.labels(self.ctx.tenant.id, department, action, "refused").inc()
            raise
        metrics.WORK_ORDER_ACTIONS.labels(self.ctx.tenant.id, department, action, "ok").inc()
        return done
