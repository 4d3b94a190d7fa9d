"""departments: what a department system uses to work its queue, over RPC and HTTP.

List its work orders, accept one ("report for duty"), return one as not its business
(routing re-routes it), ask for more time, resolve one with a note and evidence. A department
acts only on its own work orders, and over HTTP only with its own token (a tenant whose
manifest trusts unauthenticated HTTP — the demo counties — accepts none); every action is a
line in the case's append-only timeline. RPC is for OneGrid's own services and operators:
department broker users have no permission on the RPC exchange.
"""
from __future__ import annotations

from marshmallow import ValidationError
from nameko.web.handlers import http

from onegrid import metrics
from onegrid.adapters.announce import announce
from onegrid.adapters.auth import authenticate, speak_as
from onegrid.adapters.gate import Gate
from onegrid.adapters.httpjson import body_of, respond
from onegrid.adapters.providers import CaseworkProvider, Observable, RedisStore, TenantBus, TenantContext
from onegrid.adapters.reliable import rpc
from onegrid.domain.lifecycle import DEPARTMENT_ACTIONS, TransitionRefused
from onegrid.inputs import MAX_OFFSET, WORK_ORDER_ACTIONS, ActionRequest, Page
from onegrid.tenant import parse_duration


class UnknownDepartment(LookupError):
    pass


class DepartmentsService(Observable):
    name = "departments"
    ctx = TenantContext()
    store = RedisStore()
    work = CaseworkProvider()
    bus = TenantBus()
    gate = Gate()

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def list_work_orders(self, department: str, offset: int = 0, limit: int = 50) -> dict:
        self._known(department)
        offset = min(max(0, int(offset)), MAX_OFFSET)
        total, orders = self.store.department_queue(department, offset, min(max(1, int(limit)), 500))
        return {"department": department, "total": total, "offset": offset, "work_orders": orders}

    @rpc
    def get_case(self, case_id: str) -> dict:
        case = self.store.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.ctx.tenant.id}")
        return {**case, "work_orders": self.store.work_orders_of(case_id), "timeline": self.store.timeline(case_id)}

    @rpc
    def accept(self, department: str, work_order_id: str, actor: str) -> dict:
        return self._act(department, work_order_id, "accept", {"actor": actor})

    @rpc
    def return_work_order(self, department: str, work_order_id: str, actor: str, note: str) -> dict:
        return self._act(department, work_order_id, "return", {"actor": actor, "note": note})

    @rpc
    def request_extension(self, department: str, work_order_id: str, actor: str, extension: str, note: str) -> dict:
        return self._act(department, work_order_id, "request_extension",
                         {"actor": actor, "extension": extension, "note": note})

    @rpc
    def resolve(self, department: str, work_order_id: str, actor: str, note: str,
                evidence_urls: list[str] | None = None) -> dict:
        return self._act(department, work_order_id, "resolve",
                         {"actor": actor, "note": note, "evidence_urls": evidence_urls or []})

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/departments/<string:department>/work-orders")
    def http_list(self, request, department):
        def run():
            self._as(request, department)
            page = Page().load(request.args.to_dict())
            return self.list_work_orders(department, page["offset"], page["limit"])
        return respond(run)

    @http("GET", "/cases/<string:case_id>")
    def http_case(self, request, case_id):
        return respond(lambda: self.get_case(case_id))

    @http("POST", "/departments/<string:department>/work-orders/<string:work_order_id>/<string:action>")
    def http_act(self, request, department, work_order_id, action):
        def run():
            self._as(request, department)
            if action not in WORK_ORDER_ACTIONS:
                raise LookupError(f"unknown action {action!r}; one of {', '.join(WORK_ORDER_ACTIONS)}")
            return self._act(department, work_order_id, WORK_ORDER_ACTIONS[action], body_of(request))
        return respond(run)

    # -- shared --------------------------------------------------------------------------
    def _as(self, request, department: str) -> None:
        """Over HTTP a department speaks with its token, and only as itself."""
        who = authenticate(self.gate.tokens, request.headers.get("Authorization"),
                           self.ctx.tenant.trust_unauthenticated_http, "a department's work-order API")
        speak_as(who, department)

    def _known(self, department: str) -> None:
        if department not in self.ctx.tenant.departments:
            raise UnknownDepartment(f"department {department!r} is not enabled for {self.ctx.tenant.id}")

    def _act(self, department: str, work_order_id: str, action: str, body) -> dict:
        assert action in DEPARTMENT_ACTIONS
        self._known(department)
        req = ActionRequest().load(body if isinstance(body, dict) else {})
        if action in ("return", "resolve", "request_extension") and not req["note"]:
            raise ValidationError({"note": [f"a note is required to {action.replace('_', ' ')}"]})
        if action == "request_extension" and not req["extension"]:
            raise ValidationError({"extension": ["how much more time, e.g. 2h"]})
        tenant = self.ctx.tenant.id
        try:
            out = self.work.department_act(work_order_id, department, action, req["actor"], req["note"],
                                           req["evidence_urls"], parse_duration(req["extension"]))
        except (TransitionRefused, LookupError):
            metrics.WORK_ORDER_ACTIONS.labels(tenant, department, action, "refused").inc()
            raise
        metrics.WORK_ORDER_ACTIONS.labels(tenant, department, action, "ok").inc()
        announce(self.bus, self.work.store, out.outbox, f"/{tenant}/departments")
        return {"work_order": out.work_order, "case_status": out.case["status"]}
