"""departments: what a department system uses to work its queue, over RPC and HTTP.

List its work orders, accept one ("report for duty"), return one as not its business
(routing re-routes it), resolve one with a note and evidence. A department acts only on
its own work orders; every action is a line in the case's append-only timeline.
"""
from __future__ import annotations

import json

from marshmallow import Schema, ValidationError, fields, validate
from nameko.rpc import rpc
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid import envelope as ce
from onegrid import metrics
from onegrid.adapters.providers import Observable, RedisStore, TenantBus, TenantContext
from onegrid.domain.cases import TransitionRefused

ACTIONS = {"accept": "accepted", "return": "returned", "resolve": "resolved"}


class ActionRequest(Schema):
    actor = fields.String(required=True, validate=validate.Length(1, 64))
    note = fields.String(load_default="", validate=validate.Length(max=2000))
    evidence_urls = fields.List(fields.Url(schemes={"http", "https"}), load_default=list,
                                validate=validate.Length(max=9))


class UnknownDepartment(LookupError):
    pass


class DepartmentsService(Observable):
    name = "departments"
    ctx = TenantContext()
    store = RedisStore()
    bus = TenantBus()

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def list_work_orders(self, department: str, offset: int = 0, limit: int = 50) -> dict:
        self._known(department)
        total, orders = self.store.department_queue(department, max(0, int(offset)), min(max(1, int(limit)), 500))
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
    def resolve(self, department: str, work_order_id: str, actor: str, note: str,
                evidence_urls: list[str] | None = None) -> dict:
        return self._act(department, work_order_id, "resolve",
                         {"actor": actor, "note": note, "evidence_urls": evidence_urls or []})

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/departments/<string:department>/work-orders")
    def http_list(self, request, department):
        args = request.args
        return self._http(lambda: self.list_work_orders(department, int(args.get("offset", 0)),
                                                        int(args.get("limit", 50))))

    @http("GET", "/cases/<string:case_id>")
    def http_case(self, request, case_id):
        return self._http(lambda: self.get_case(case_id))

    @http("POST", "/departments/<string:department>/work-orders/<string:work_order_id>/<string:action>")
    def http_act(self, request, department, work_order_id, action):
        def run():
            if action not in ACTIONS:
                raise LookupError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
            try:
                body = json.loads(request.get_data() or b"{}")
            except json.JSONDecodeError as exc:
                raise ValidationError(f"body is not JSON: {exc}") from None
            return self._act(department, work_order_id, action, body)
        return self._http(run)

    # -- shared --------------------------------------------------------------------------
    def _known(self, department: str) -> None:
        if department not in self.ctx.tenant.departments:
            raise UnknownDepartment(f"department {department!r} is not enabled for {self.ctx.tenant.id}")

    def _act(self, department: str, work_order_id: str, action: str, body) -> dict:
        self._known(department)
        req = ActionRequest().load(body if isinstance(body, dict) else {})
        if action in ("return", "resolve") and not req["note"]:
            raise ValidationError({"note": [f"a note is required to {action} a work order"]})
        tenant = self.ctx.tenant.id
        try:
            wo, case = self.store.act(work_order_id, department, action, req["actor"], req["note"],
                                      req["evidence_urls"])
        except (TransitionRefused, LookupError):
            metrics.WORK_ORDER_ACTIONS.labels(tenant, department, action, "refused").inc()
            raise
        metrics.WORK_ORDER_ACTIONS.labels(tenant, department, action, "ok").inc()
        env = ce.new(tenant=tenant, department=department, type=f"work_order.{ACTIONS[action]}",
                     source=f"/{tenant}/departments", subject=wo["id"])
        # a return must reach routing (mandatory); the rest are announcements, the store is the record
        self.bus.publish(env, wo, mandatory=action == "return")
        return {"work_order": wo, "case_status": case["status"]}

    def _http(self, run) -> Response:
        try:
            status, payload = 200, run()
        except ValidationError as exc:
            status, payload = 400, {"error": "invalid request", "fields": exc.messages}
        except TransitionRefused as exc:
            status, payload = 409, {"error": str(exc)}
        except LookupError as exc:
            status, payload = 404, {"error": str(exc).strip("'\"")}
        return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status,
                        mimetype="application/json")
