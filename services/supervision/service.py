"""supervision: the command centre's service. It holds every case to its deadlines, climbs
the ladder when they slip (督办 and escalation), lets a handling level blow the whistle,
records the grid worker's verification and the citizen's word, closes and rejects cases, and
answers case queries — over RPC and HTTP. The use cases are onegrid/app/supervision.py's.

Deadlines are Redis timers (onegrid.adapters.redis.timers) read by a tick four times a second;
a tick costs what is due, not what is open.
"""

from __future__ import annotations

import json
import re
import time

from marshmallow import ValidationError
from nameko.timer import timer
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid.adapters.identity import EmbeddedIssuer
from onegrid.adapters.nameko.gauges import OverdueGauge
from onegrid.adapters.nameko.httpjson import acting_body, respond
from onegrid.adapters.nameko.people import People
from onegrid.adapters.nameko.providers import (
    CaseworkProvider,
    HistoryStreams,
    Observable,
    OutboxAnnouncer,
    TenantBus,
    TenantContext,
)
from onegrid.adapters.nameko.reliable import rpc
from onegrid.adapters.redis.duplicates import DuplicateBook
from onegrid.app.duplicates import DuplicateDesk
from onegrid.app.inputs import (
    DUPLICATE_DECISIONS,
    CaseAction,
    CheckIn,
    DuplicateDecision,
    ExtensionDecision,
    OfficeAction,
    Page,
    Whistle,
)
from onegrid.app.supervision import Supervision
from onegrid.domain import ladder as ld
from onegrid.domain.access import SCOPE_LEVEL, Resource, case_resource, check_case_id, check_work_order_id, within
from onegrid.kernel import settings

AUDIT_ID = re.compile(r"^(-|[0-9]{1,19}-[0-9]{1,19})$")
ARCHIVE_EVERY = 60.0  # seconds between folds of the closed cases due for the archive
SWEEP_EVERY = 2.0  # seconds between looks for events an announcer that died left in the outbox


class SupervisionService(Observable):
    name = "supervision"
    ctx = TenantContext()
    work = CaseworkProvider()
    bus = TenantBus()
    overdue = OverdueGauge()
    people = People()
    history = HistoryStreams()  # the heads the bus carried, for a timeline's verify
    last_sweep = 0.0  # on the class: a worker is a fresh instance each time

    @property
    def centre(self) -> Supervision:
        """The use cases over this worker's ports."""
        store = self.work.store
        announcer = OutboxAnnouncer(self.bus, store, f"/{self.ctx.tenant.id}/supervision")
        return Supervision(self.ctx.tenant, self.work, store, store.timers, announcer, history=self.history)

    @property
    def desk(self) -> DuplicateDesk:
        """The duplicates desk over this worker's ports."""
        store = self.work.store
        announcer = OutboxAnnouncer(self.bus, store, f"/{self.ctx.tenant.id}/supervision")
        return DuplicateDesk(self.ctx.tenant, self.work, store, DuplicateBook(store), announcer)

    # -- the clock -----------------------------------------------------------------------
    @timer(interval=0.25)
    def tick(self):
        now = time.time()
        centre = self.centre
        centre.tick()
        if now - SupervisionService.last_sweep > SWEEP_EVERY:
            SupervisionService.last_sweep = now
            centre.sweep()

    @timer(interval=ARCHIVE_EVERY)
    def archive(self):
        """Closed cases past settings.archive_after_s folded into their compact form, a page
        a minute (onegrid.adapters.redis.archive)."""
        self.work.store.archive_due(time.time() - settings.archive_after_s())

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def get_case(self, case_id: str) -> dict:
        return self.centre.get_case(case_id)

    @rpc
    def verify_timeline(self, case_id: str, heads: list[str] | None = None) -> dict:
        return self.centre.verify_timeline(case_id, heads)

    @rpc
    def list_cases(self, **filters) -> dict:
        return self.centre.list_cases(filters)

    @rpc
    def act(self, case_id: str, action: str, actor: str, note: str = "", evidence_urls=None) -> dict:
        return self.centre.act(case_id, action, actor, note, evidence_urls)

    @rpc
    def whistle(
        self, case_id: str, actor: str, note: str, level: str | None = None, departments: list[str] | None = None
    ) -> dict:
        return self.centre.whistle(case_id, actor, note, level, departments)

    @rpc
    def list_duplicates(self, offset: int = 0, limit: int = 50) -> dict:
        """The open duplicate suggestions (the command centre's inbox) and the counts."""
        return self.desk.suggestions(offset, limit)

    @rpc
    def confirm_duplicate(self, case_id: str, actor: str, note: str = "") -> dict:
        return self.desk.confirm(case_id, actor, note)

    @rpc
    def dismiss_duplicate(self, case_id: str, actor: str, note: str = "") -> dict:
        return self.desk.dismiss(case_id, actor, note)

    @rpc
    def unmerge(self, case_id: str, actor: str, note: str = "") -> dict:
        return self.desk.unmerge(case_id, actor, note)

    @rpc
    def decide_extension(self, work_order_id: str, grant: bool, actor: str, note: str = "") -> dict:
        return self.centre.decide_extension(work_order_id, grant, actor, note)

    @rpc
    def check_in(self, case_id: str, actor: str, **body) -> dict:
        return self.centre.check_in(case_id, actor, **body)

    @rpc
    def office_items(self, unit: str, offset: int = 0, limit: int = 50) -> dict:
        return self.centre.office_items(unit, offset, limit)

    @rpc
    def office_decide(self, item_id: str, decision: str, actor: str, **body) -> dict:
        return self.centre.office_decide(item_id, decision, actor, **body)

    @rpc
    def attach_evidence(self, case_id: str, actor: str, evidence: dict, note: str = "") -> dict:
        return self.centre.attach_evidence(case_id, actor, evidence, note)

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/cases")
    def http_list(self, request):
        def run():
            who = self.people.who(request, "cases.list", "cases")
            scoped = who.role in SCOPE_LEVEL  # an officer or grid worker sees their subtree's cases
            self.people.allow(who, "cases.list", "cases", Resource(grid=who.scope) if scoped else Resource())
            page = self.list_cases(**request.args.to_dict())
            if scoped:
                page["cases"] = [c for c in page["cases"] if within(self.ctx.tenant, str(c.get("grid", "")), who.scope)]
            page["cases"] = self.people.show_page(who, "cases.list", page["cases"])
            return page

        return respond(run)

    @http("GET", "/cases/<string:case_id>")
    def http_case(self, request, case_id):
        return respond(lambda: self.people.read_case(request, case_id, self.get_case))

    @http("GET", "/cases/<string:case_id>/timeline/verify")
    def http_verify_timeline(self, request, case_id):
        """The timeline's hash chain checked against the head on the record and every head the
        bus carried for the case (`ce-chainhead`, read from the county's history.lifecycle
        stream); `head` (repeatable) adds heads given by hand."""

        def run():
            self.people.authorize(request, "timeline.verify", case_id)
            return self.verify_timeline(check_case_id(case_id), request.args.getlist("head"))

        return respond(run)

    @http("POST", "/cases/<string:case_id>/whistle")
    def http_whistle(self, request, case_id):
        def run():
            body = self._as_actor(request, "case.whistle", case_id)
            return self.whistle(case_id, **_only(body, Whistle))

        return respond(run)

    @http("POST", "/cases/<string:case_id>/check-in")
    def http_check_in(self, request, case_id):
        """The grid worker of the case's grid is on site: `lat`, `lon` (WGS84), `note`."""

        def run():
            body = self._as_actor(request, "case.check_in", case_id)
            return self.check_in(case_id, **_only(body, CheckIn))

        return respond(run)

    @http("GET", "/duplicates")
    def http_duplicates(self, request):
        def run():
            self.people.authorize(request, "duplicates.list", "duplicates")
            page = Page().load({k: request.args[k] for k in ("offset", "limit") if k in request.args})
            return self.list_duplicates(**page)

        return respond(run)

    @http("POST", "/cases/<string:case_id>/duplicate/<string:decision>")
    def http_duplicate(self, request, case_id, decision):
        """confirm or dismiss the case's duplicate suggestion, or unmerge a merged case."""

        def run():
            body = self._as_actor(request, "case.duplicate", case_id)  # who may ask, before what is asked
            if decision not in DUPLICATE_DECISIONS:
                raise LookupError(f"unknown decision {decision!r}; one of {', '.join(DUPLICATE_DECISIONS)}")
            body = _only(body, DuplicateDecision)
            act = {"confirm": self.confirm_duplicate, "dismiss": self.dismiss_duplicate, "unmerge": self.unmerge}
            return act[decision](case_id, **body)

        return respond(run)

    @http("POST", "/cases/<string:case_id>/<string:action>")
    def http_act(self, request, case_id, action):
        def run():
            body = self._as_actor(request, "case.act", case_id)
            return self.act(case_id, action, **_only(body, CaseAction))

        return respond(run)

    @http("POST", "/work-orders/<string:work_order_id>/extension/<string:decision>")
    def http_extension(self, request, work_order_id, decision):
        def run():
            who = self.people.authorize(request, "extension.decide", work_order_id)
            check_work_order_id(work_order_id)
            if decision not in ("grant", "deny"):
                raise LookupError(f"unknown decision {decision!r}; grant or deny")
            body = acting_body(request, who.subject if who.person else None)
            return self.decide_extension(work_order_id, decision == "grant", **_only(body, ExtensionDecision))

        return respond(run)

    @http("GET", "/escalations")
    def http_escalations(self, request):
        """An office's escalation items still owed, oldest first: `unit` (a node of the tree;
        a street or community officer's own by default, the root for the command centre)."""

        def run():
            who = self.people.who(request, "escalations.list", "escalations")
            tenant = self.ctx.tenant
            unit = request.args.get("unit") or (who.scope if who.role in SCOPE_LEVEL else tenant.root)
            self.people.allow(who, "escalations.list", unit, Resource(grid=unit))
            page = Page().load({k: request.args[k] for k in ("offset", "limit") if k in request.args})
            return self.office_items(unit, **page)

        return respond(run)

    @http("POST", "/escalations/<string:item_id>/<string:decision>")
    def http_escalation(self, request, item_id, decision):
        """The office acknowledges its item, or acts on it: take_over, whistle (departments),
        extend (grant a work order's requested extension), close_not_fixed (note)."""

        def run():
            who = self.people.who(request, "escalation.act", item_id)
            case = self.centre.cases.case(ld.case_of(item_id))
            if case is None:
                raise LookupError(f"no escalation item {item_id[:80]} in {self.ctx.tenant.id}")
            unit = ld.office_unit(self.ctx.tenant, item_id, case["grid"])
            self.people.allow(who, "escalation.act", item_id, Resource(grid=unit))
            body = _only(acting_body(request, who.subject if who.person else None), OfficeAction)
            return self.office_decide(item_id, decision, **body)

        return respond(run)

    @http("GET", "/audit")
    def http_audit(self, request):
        """The county's audit trail, for the auditor."""

        def run():
            self.people.authorize(request, "audit.read", "audit")
            args = request.args
            page = Page().load({"limit": args.get("limit", "100")})
            if not AUDIT_ID.match(args.get("after", "-")):
                raise ValidationError({"after": ["an entry id from an earlier page (digits-digits)"]})
            entries = self.people.audit.read(
                args.get("after", "-"), page["limit"], args.get("subject"), args.get("outcome")
            )
            return {"entries": entries}

        return respond(run)

    # -- the embedded issuer's discovery (a county with its own provider publishes its own)
    @http("GET", "/.well-known/openid-configuration")
    def http_openid(self, request):
        issuer = self.people.issuer
        if not isinstance(issuer, EmbeddedIssuer):
            return _json(404, {"error": "this county's people sign in with its own identity provider"})
        return _json(200, issuer.openid_configuration(request.host_url))

    @http("GET", "/.well-known/jwks.json")
    def http_jwks(self, request):
        issuer = self.people.issuer
        if not isinstance(issuer, EmbeddedIssuer):
            return _json(404, {"error": "this county's people sign in with its own identity provider"})
        return _json(200, issuer.jwks())

    def _as_actor(self, request, action: str, case_id: str) -> dict:
        """The body of a case action by someone allowed to act on this case; a person acts as
        themselves (the body's `actor` is ignored)."""
        who = self.people.who(request, action, case_id)
        check_case_id(case_id)
        case = self.centre.cases.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.ctx.tenant.id}")
        resource = case_resource({**case, "work_orders": self.centre.cases.work_orders_of(case_id)})
        self.people.allow(who, action, case_id, resource)
        return acting_body(request, who.subject if who.person else None)


def _json(status: int, payload: dict) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def _only(body: dict, schema_cls) -> dict:
    """The body's fields that `schema_cls` declares (others are ignored), checked by it: a
    missing or wrong one is a 400, never a call with the wrong arguments."""
    schema = schema_cls()
    return schema.load({k: v for k, v in body.items() if k in schema.fields})
