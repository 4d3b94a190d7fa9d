"""scoring: the lifecycle events become the figures a county is judged by.

Grid workers' points with monthly caps and inspectors' adjustments (积分制), each
department's assessment per week and month, the five-colour risk of every grid (a change
of colour is announced as `grid.colour_changed`), and the monthly rankings (每月排序通报).
Queryable over RPC and HTTP; aggregate gauges on /metrics. docs/scoring.md has the rules;
the use cases are onegrid/app/scoring.py's. It also serves the monthly report (月度通报: the
closure table by category, the assessment, the rankings, the five colours) as JSON, CSV, XLSX
and a printable bulletin (onegrid/app/reports.py, docs/reports.md).
"""

from __future__ import annotations

import base64
import json

from marshmallow import ValidationError
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from onegrid.adapters import reports as files
from onegrid.adapters.nameko.contexts import ScoringContext
from onegrid.adapters.nameko.httpjson import Failure, failure_of, json_response, respond
from onegrid.adapters.nameko.people import People
from onegrid.adapters.nameko.providers import Observable, RedisStore, TenantBus
from onegrid.adapters.nameko.reliable import ATTEMPT, Inbound, reliable_consume, rpc
from onegrid.adapters.redis.auth import Forbidden, Unauthorized
from onegrid.app.reports import Reports, names_of
from onegrid.app.scoring import Scoring
from onegrid.domain.access import SCOPE_LEVEL, Resource
from onegrid.domain.scoring import read_event


class ScoringService(Observable):
    name = "scoring"
    ctx = ScoringContext()
    bus = TenantBus()
    people = People()
    store = RedisStore()  # the cases, read for the monthly report

    @property
    def scoring(self) -> Scoring:
        """The use cases over this worker's ports."""
        return Scoring(self.ctx.tenant, self.ctx.config, self.ctx.scores, self.bus)

    @property
    def reports(self) -> Reports:
        ctx = self.ctx
        return Reports(ctx.tenant, ctx.config, self.store, ctx.scores, names_of(ctx.registry, ctx.tenant))

    @reliable_consume("scoring.case-events")
    def on_case_event(self, message: Inbound):
        self._apply(message)

    @reliable_consume("scoring.work-order-events")
    def on_work_order_event(self, message: Inbound):
        self._apply(message)

    def _apply(self, message: Inbound) -> None:
        event = read_event(message.headers, message.body, message.routing_key)
        self.scoring.apply(event, again=bool(message.redelivered or message.headers.get(ATTEMPT)))

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def rankings(self, month: str | None = None, limit: int = 10) -> dict:
        return self.scoring.rankings(month, limit)

    @rpc
    def assessment(self, period: str = "month", key: str | None = None) -> dict:
        return self.scoring.assessment(period, key)

    @rpc
    def risk(self) -> dict:
        return self.scoring.risk()

    @rpc
    def worker(self, worker: str, month: str | None = None) -> dict:
        return self.scoring.worker(worker, month)

    @rpc
    def adjust_points(
        self,
        worker: str,
        points: int,
        reason: str,
        inspector: str,
        month: str | None = None,
        adjustment_id: str | None = None,
    ) -> dict:
        return self.scoring.adjust_points(worker, points, reason, inspector, month, adjustment_id)

    @rpc
    def audit(self, month: str | None = None, worker: str | None = None) -> list[dict]:
        return self.scoring.audit(month, worker)

    @rpc
    def report(self, month: str | None = None, scope: str | None = None) -> dict:
        """The month's report (default: this month) for a node of the grid tree (default: the
        county). RPC callers are services, trusted: the console checks its person's scope."""
        return self.reports.monthly(month, scope).as_dict()

    @rpc
    def report_file(self, month: str, file: str, scope: str | None = None) -> dict:
        """One of the report's files (onegrid.adapters.reports.FILES), base64 in JSON."""
        d = files.render(self.reports.monthly(month, scope), file)
        return {
            "filename": d.filename,
            "filename_zh": d.filename_zh,
            "content_type": d.content_type,
            "content_disposition": d.disposition,
            "body_base64": base64.b64encode(d.body).decode("ascii"),
        }

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/reports/<string:month>")
    def http_report(self, request, month):
        return respond(lambda: self.reports.monthly(month, self._report_scope(request, month)).as_dict())

    @http("GET", "/reports/<string:month>/<string:file>")
    def http_report_file(self, request, month, file):
        def run():
            scope = self._report_scope(request, f"{month}/{file}")
            if file not in files.FILES:
                raise LookupError(f"no report file {file[:80]!r}; one of {', '.join(files.FILES)}")
            d = files.render(self.reports.monthly(month, scope), file)
            headers = {
                "Content-Disposition": d.disposition,
                "Cache-Control": "private, no-store",  # a signed-in person's figures, fresh each time
                "X-Content-Type-Options": "nosniff",
            }
            return Response(d.body, content_type=d.content_type, headers=headers)

        return respond(run)

    def _report_scope(self, request, target: str) -> str | None:
        """The part of the tree asked for (`?scope=`; a street or community officer's own by
        default), once the person may read it: 401, 400 (no such node) or 403 (not theirs)."""
        who = self.people.who(request, "reports.read", target)
        scope = request.args.get("scope", who.scope if who.role in SCOPE_LEVEL else None)
        scope = self.reports.check_scope(scope)
        self.people.allow(who, "reports.read", target, Resource(grid=scope))
        return scope

    @http("GET", "/scoring/rankings")
    def http_rankings(self, request):
        def run():
            self.people.authorize(request, "scoring.read", "rankings")
            return self.rankings(request.args.get("month"), int(request.args.get("limit", 10)))

        return _http(run)

    @http("GET", "/scoring/assessment")
    def http_assessment(self, request):
        def run():
            self.people.authorize(request, "scoring.read", "assessment")
            return self.assessment(request.args.get("period", "month"), request.args.get("key"))

        return _http(run)

    @http("GET", "/scoring/risk")
    def http_risk(self, request):
        def run():
            self.people.authorize(request, "scoring.read", "risk")
            return self.risk()

        return _http(run)

    @http("GET", "/scoring/workers/<string:worker>")
    def http_worker(self, request, worker):
        def run():
            self.people.authorize(request, "scoring.worker", worker, Resource(worker=worker))
            return self.worker(worker, request.args.get("month"))

        return _http(run)

    @http("GET", "/scoring/adjustments")
    def http_audit(self, request):
        def run():
            self.people.authorize(request, "scoring.adjustments", "adjustments")
            return self.audit(request.args.get("month"), request.args.get("worker"))

        return _http(run)

    @http("POST", "/scoring/adjustments")
    def http_adjust(self, request):
        def run():
            who = self.people.authorize(request, "scoring.adjust", "adjustments")
            try:
                body = json.loads(request.get_data() or b"{}")
            except json.JSONDecodeError as exc:
                raise ValidationError(f"body is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ValidationError("body must be a JSON object")
            # refused, not silently replaced (null too: the document says a string)
            if who.person and "inspector" in body and body["inspector"] != who.subject:
                raise ValidationError({"inspector": ["the signed-in person is the inspector: leave it out"]})
            return self.adjust_points(
                body.get("worker"),
                body.get("points"),
                body.get("reason"),
                who.subject if who.person else body.get("inspector"),  # a person adjusts as themselves
                body.get("month"),
                body.get("id"),
            )

        return _http(run, created=201)

    @http("GET", "/metrics")
    def metrics(self, request):
        self.scoring.gauges()
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])


def _http(run, created: int = 200) -> Response:
    """httpjson's mapping for what scoring's reads and adjustments answer for (a ValueError, a
    bad month, is a 400 too); `created` when the adjustment is new."""
    try:
        payload = run()
    except (Unauthorized, Forbidden, ValidationError) as exc:
        failure = failure_of(exc)
    except ValueError as exc:
        failure = Failure(400, {"error": "invalid request", "fields": str(exc)})
    else:
        return json_response(created if isinstance(payload, dict) and payload.get("created") else 200, payload)
    return json_response(failure.status, failure.body, failure.headers)
