"""supervision: the command centre's service. It holds every case to its deadlines, climbs
the ladder when they slip (督办 and escalation), lets a handling level blow the whistle,
records the grid worker's verification and the citizen's word, closes and rejects cases, and
answers case queries — over RPC and HTTP.

Deadlines are Redis timers (onegrid.adapters.timers) read by a tick four times a second;
a tick costs what is due, not what is open.
"""
from __future__ import annotations

import time

from nameko.timer import timer
from nameko.web.handlers import http

from onegrid import metrics
from onegrid.adapters.announce import announce, sweep
from onegrid.adapters.gauges import OverdueGauge
from onegrid.adapters.httpjson import body_of, respond
from onegrid.adapters.providers import CaseworkProvider, Observable, TenantBus, TenantContext
from onegrid.adapters.reliable import rpc
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.supervision import parse_member
from onegrid.inputs import CASE_ACTIONS, CaseAction, ExtensionDecision, Query, Whistle


class SupervisionService(Observable):
    name = "supervision"
    ctx = TenantContext()
    work = CaseworkProvider()
    bus = TenantBus()
    overdue = OverdueGauge()
    last_sweep = 0.0

    # -- the clock -----------------------------------------------------------------------
    @timer(interval=0.25)
    def tick(self):
        """Fire what is due; each timer is claimed by one process and released once handled."""
        now = time.time()
        for member_, due in self.work.store.timers.claim(now):
            kind, subject = parse_member(member_)
            metrics.TIMER_LAG.labels(kind).observe(max(0.0, now - due))
            self._fire(kind, subject, due)
            self.work.store.timers.done(member_)
        if now - SupervisionService.last_sweep > 2:
            SupervisionService.last_sweep = now
            sweep(self.bus, self.work.store, self._source)

    def _fire(self, kind: str, subject: str, due: float) -> None:
        tenant = self.ctx.tenant.id
        if kind == "feedback":
            case = self.work.store.case(subject)
            if case and case["status"] == "verified":
                self._announce(self.work.case_act(subject, "no_answer", "supervision",
                                                  "no answer within the feedback window"))
            return
        out = self.work.overdue(kind, subject, due)
        if out is None:
            return
        for event, extra in out.events:
            if event == "case.supervised":
                metrics.SUPERVISIONS.labels(tenant, extra["level"] or "none", extra["reason"]).inc()
        self._announce(out)

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def get_case(self, case_id: str) -> dict:
        store = self.work.store
        case = store.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.ctx.tenant.id}")
        return {**case, "work_orders": store.work_orders_of(case_id), "timeline": store.timeline(case_id)}

    @rpc
    def list_cases(self, **filters) -> dict:
        q = Query().load(filters)
        total, cases = self.work.store.query(**q)
        return {"total": total, "offset": q["offset"], "limit": q["limit"], "cases": cases}

    @rpc
    def act(self, case_id: str, action: str, actor: str, note: str = "", evidence_urls=None) -> dict:
        if action not in CASE_ACTIONS:
            raise TransitionRefused(f"unknown case action {action!r}; one of {', '.join(CASE_ACTIONS)}")
        req = CaseAction().load({"actor": actor, "note": note, "evidence_urls": evidence_urls or []})
        if action in ("reject", "close_not_fixed", "verify_failed", "not_satisfied") and not req["note"]:
            raise TransitionRefused(f"{action} needs a reason in `note`")
        out = self.work.case_act(case_id, action, req["actor"], req["note"], req["evidence_urls"])
        if out.case["status"] == "closed":
            metrics.CASES_CLOSED.labels(self.ctx.tenant.id, out.case["department"], out.case["category"],
                                        out.case["outcome"]).inc()
            if out.case.get("on_time"):
                metrics.CASES_CLOSED_ON_TIME.labels(self.ctx.tenant.id, out.case["department"],
                                                    out.case["category"]).inc()
        self._announce(out)
        return {"case": out.case}

    @rpc
    def whistle(self, case_id: str, actor: str, note: str, level: str | None = None,
                departments: list[str] | None = None) -> dict:
        req = Whistle().load({"actor": actor, "note": note, "level": level, "departments": departments or []})
        unknown = [d for d in req["departments"] if d not in self.ctx.tenant.departments]
        if unknown:
            raise LookupError(f"departments not enabled for {self.ctx.tenant.id}: {unknown}")
        if not req["level"] and not req["departments"]:
            raise TransitionRefused("a whistle names a higher level, departments, or both")
        out = self.work.whistle(case_id, req["actor"], req["level"], req["departments"], req["note"])
        self._announce(out)
        return {"case": out.case}

    @rpc
    def decide_extension(self, work_order_id: str, grant: bool, actor: str, note: str = "") -> dict:
        req = ExtensionDecision().load({"actor": actor, "note": note})
        out = self.work.extension(work_order_id, bool(grant), req["actor"], note=req["note"])
        self._announce(out)
        return {"work_order": out.work_order, "case": out.case}

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/cases")
    def http_list(self, request):
        return respond(lambda: self.list_cases(**request.args.to_dict()))

    @http("GET", "/cases/<string:case_id>")
    def http_case(self, request, case_id):
        return respond(lambda: self.get_case(case_id))

    @http("POST", "/cases/<string:case_id>/whistle")
    def http_whistle(self, request, case_id):
        return respond(lambda: self.whistle(case_id, **_only(body_of(request), Whistle)))

    @http("POST", "/cases/<string:case_id>/<string:action>")
    def http_act(self, request, case_id, action):
        return respond(lambda: self.act(case_id, action, **_only(body_of(request), CaseAction)))

    @http("POST", "/work-orders/<string:work_order_id>/extension/<string:decision>")
    def http_extension(self, request, work_order_id, decision):
        def run():
            if decision not in ("grant", "deny"):
                raise LookupError(f"unknown decision {decision!r}; grant or deny")
            return self.decide_extension(work_order_id, decision == "grant", **_only(body_of(request),
                                                                                    ExtensionDecision))
        return respond(run)

    # -- shared --------------------------------------------------------------------------
    @property
    def _source(self) -> str:
        return f"/{self.ctx.tenant.id}/supervision"

    def _announce(self, out) -> None:
        announce(self.bus, self.work.store, out.outbox, self._source)


def _only(body: dict, schema_cls) -> dict:
    """The body's fields that `schema_cls` declares (others are ignored), checked by it: a
    missing or wrong one is a 400, never a call with the wrong arguments."""
    schema = schema_cls()
    return schema.load({k: v for k, v in body.items() if k in schema.fields})
