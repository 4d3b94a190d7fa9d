"""scoring: the lifecycle events become the figures a county is judged by.

Grid workers' points with monthly caps and inspectors' adjustments (积分制), each
department's assessment per week and month, the five-colour risk of every grid (a change
of colour is announced as `grid.colour_changed`), and the monthly rankings (每月排序通报).
Queryable over RPC and HTTP; aggregate gauges on /metrics. docs/scoring.md has the rules.
"""
from __future__ import annotations

import json
import uuid

import redis
from marshmallow import ValidationError
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from onegrid import envelope as ce
from onegrid import metrics
from onegrid.adapters.providers import Observable, TenantBus, TenantContext
from onegrid.adapters.reliable import ATTEMPT, Inbound, reliable_consume, rpc
from onegrid.adapters.scores import Scores, current
from onegrid.adapters.store import now_iso
from onegrid.domain import scoring as sc
from onegrid.inputs import MONTH, PERIODS, Adjustment

CASE_EVENTS = {"case.registered", "case.merged", "case.dispatched", "case.supervised", "case.escalated",
               "case.resolved", "case.verified", "case.reopened", "case.closed", "case.rejected"}


class Scoring(TenantContext):
    """The tenant, its `scoring:` configuration (a broken one stops the service) and the
    scoring state in Redis."""

    def setup(self):
        super().setup()
        self.config = sc.parse_config(self.tenant.source, self.tenant)
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    def start(self):
        pool = redis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=10, decode_responses=True)
        self.scores = Scores(redis.Redis(connection_pool=pool), self.tenant.id)
        self.scores.init_grids([g.code for g in self.tenant.grids()], self.config)

    def stop(self):
        self.scores.r.close()


class ScoringService(Observable):
    name = "scoring"
    ctx = Scoring()
    bus = TenantBus()

    @reliable_consume("scoring.case-events")
    def on_case_event(self, message: Inbound):
        self._apply(message)

    @reliable_consume("scoring.work-order-events")
    def on_work_order_event(self, message: Inbound):
        self._apply(message)

    def _apply(self, message: Inbound) -> None:
        event = sc.read_event(message.headers, message.body, message.routing_key)
        tenant = self.ctx.tenant.id
        if event.type not in CASE_EVENTS and not event.type.startswith("work_order."):
            metrics.SCORING_EVENTS.labels(tenant, "ignored").inc()
            return
        case_id = event.data.get("id")
        if not case_id:
            raise ValueError(f"{event.type} {event.id} carries no case id in data.id")
        out, change = self.ctx.scores.apply(event, case_id, self.ctx.config)
        metrics.SCORING_EVENTS.labels(tenant, "duplicate" if out.duplicate else "applied").inc()
        # a redelivery may follow a crash between the store and the announcement: announce again
        if change and (not out.duplicate or message.redelivered or message.headers.get(ATTEMPT)):
            env = ce.new(tenant=tenant, department="governance", type="grid.colour_changed",
                         source=f"/{tenant}/scoring", subject=change["grid"],
                         id=f"{change['grid']}.colour.{change['cause']}")
            self.bus.publish(env, change, mandatory=False)
            if not out.duplicate:
                metrics.COLOUR_CHANGES.labels(tenant, change["to"]).inc()

    # -- RPC -----------------------------------------------------------------------------
    @rpc
    def rankings(self, month: str | None = None, limit: int = 10) -> dict:
        """每月排序通报: grid workers by points, grids and communities by the points their
        cases earned, departments by their assessment score."""
        cfg, tenant, scores = self.ctx.config, self.ctx.tenant, self.ctx.scores
        month = _check_month(month) or current("month", cfg.tz)
        workers = scores.workers(month, cfg)
        grids = scores.grid_points(month, cfg)
        communities: dict[str, int] = {}
        for grid, pts in grids.items():
            if grid in tenant.nodes:
                parent = tenant.ancestor(grid, "community").code
                communities[parent] = communities.get(parent, 0) + pts
        assessed = scores.assessment(f"month:{month}", tenant.departments, cfg)
        names = {code: node.name for code, node in tenant.nodes.items()}
        where = scores.worker_grid()
        limit = max(1, min(int(limit), 1000))
        return {
            "tenant": tenant.id, "month": month,
            "workers": [{**r, "grid": where.get(r["name"], "")} for r in sc.rank(
                {w: v["points"] for w, v in workers.items()}, limit)],
            "grids": [{**r, "grid_name": names.get(r["name"], "")} for r in sc.rank(grids, limit)],
            "communities": [{**r, "community_name": names.get(r["name"], "")} for r in sc.rank(communities, limit)],
            "departments": sc.rank({d: a["score"] for d, a in assessed.items()}, limit)}

    @rpc
    def assessment(self, period: str = "month", key: str | None = None) -> dict:
        if period not in PERIODS:
            raise ValidationError({"period": ["month or week"]})
        if key is not None:
            PERIODS[period](key)  # raises ValidationError when it names no such period
        key = key or current(period, self.ctx.config.tz)
        rows = self.ctx.scores.assessment(f"{period}:{key}", self.ctx.tenant.departments, self.ctx.config)
        return {"tenant": self.ctx.tenant.id, "period": period, "key": key, "departments": rows}

    @rpc
    def risk(self) -> dict:
        grids = self.ctx.scores.colours()
        counts = {c: 0 for c in sc.COLOURS}
        for g in grids.values():
            counts[g["colour"]] += 1
        return {"tenant": self.ctx.tenant.id, "counts": counts, "grids": grids}

    @rpc
    def worker(self, worker: str, month: str | None = None) -> dict:
        month = _check_month(month) or current("month", self.ctx.config.tz)
        row = self.ctx.scores.workers(month, self.ctx.config).get(worker, {"rules": {}, "adjusted": 0, "points": 0})
        return {"worker": worker, "month": month, **row, "adjustments": self.ctx.scores.audit(month, worker)}

    @rpc
    def adjust_points(self, worker: str, points: int, reason: str, inspector: str, month: str | None = None,
                      adjustment_id: str | None = None) -> dict:
        """An inspector adds or deducts points with a reason; recorded in the audit trail.
        Idempotent on `adjustment_id` (a retried request changes nothing)."""
        req = Adjustment().load({"worker": worker, "points": points, "reason": reason, "inspector": inspector,
                                 "month": month, "id": adjustment_id})
        created, entry = self.ctx.scores.adjust(
            req["worker"], req["points"], req["reason"], req["inspector"],
            req["month"] or current("month", self.ctx.config.tz), req["id"] or f"adj-{uuid.uuid4().hex[:16]}",
            now_iso())
        return {"created": created, "adjustment": entry}

    @rpc
    def audit(self, month: str | None = None, worker: str | None = None) -> list[dict]:
        return self.ctx.scores.audit(_check_month(month), worker)

    # -- HTTP ----------------------------------------------------------------------------
    @http("GET", "/scoring/rankings")
    def http_rankings(self, request):
        return _http(lambda: self.rankings(request.args.get("month"), int(request.args.get("limit", 10))))

    @http("GET", "/scoring/assessment")
    def http_assessment(self, request):
        return _http(lambda: self.assessment(request.args.get("period", "month"), request.args.get("key")))

    @http("GET", "/scoring/risk")
    def http_risk(self, request):
        return _http(self.risk)

    @http("GET", "/scoring/workers/<string:worker>")
    def http_worker(self, request, worker):
        return _http(lambda: self.worker(worker, request.args.get("month")))

    @http("GET", "/scoring/adjustments")
    def http_audit(self, request):
        return _http(lambda: self.audit(request.args.get("month"), request.args.get("worker")))

    @http("POST", "/scoring/adjustments")
    def http_adjust(self, request):
        def run():
            try:
                body = json.loads(request.get_data() or b"{}")
            except json.JSONDecodeError as exc:
                raise ValidationError(f"body is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ValidationError("body must be a JSON object")
            return self.adjust_points(body.get("worker"), body.get("points"), body.get("reason"),
                                      body.get("inspector"), body.get("month"), body.get("id"))
        return _http(run, created=201)

    @http("GET", "/metrics")
    def metrics(self, request):
        self._gauges()
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])

    def _gauges(self) -> None:
        tenant, cfg = self.ctx.tenant, self.ctx.config
        for colour, n in self.risk()["counts"].items():
            metrics.GRID_COLOUR.labels(tenant.id, colour).set(n)
        month = f"month:{current('month', cfg.tz)}"
        for dept, row in self.ctx.scores.assessment(month, tenant.departments, cfg).items():
            for gauge, value in ((metrics.DEPARTMENT_CLOSURE_RATE, row["closure_rate"]),
                                 (metrics.DEPARTMENT_ON_TIME_RATE, row["on_time_rate"])):
                if value is not None:
                    gauge.labels(tenant.id, dept).set(value)


def _check_month(month: str | None) -> str | None:
    if month is not None:
        MONTH(month)  # raises ValidationError when it is not YYYY-MM
    return month


def _http(run, created: int = 200) -> Response:
    try:
        payload = run()
        status = created if isinstance(payload, dict) and payload.get("created") else 200
    except (ValidationError, ValueError) as exc:
        status, payload = 400, {"error": "invalid request",
                                "fields": exc.messages if isinstance(exc, ValidationError) else str(exc)}
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status, mimetype="application/json")
