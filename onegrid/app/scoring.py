"""scoring's use cases: a lifecycle event applied once to the figures (a grid's change of colour
announced as `grid.colour_changed`), the queries a county is judged by (rankings, assessment,
risk, a worker's points), inspectors' adjustments and the aggregate gauges. The rules are
onegrid/domain/scoring.py's; the ScoreStore keeps the state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from marshmallow import ValidationError

from onegrid.app.inputs import MONTH, PERIODS, Adjustment
from onegrid.app.ports import Clock, Publisher, ScoreStore
from onegrid.domain import scoring as sc
from onegrid.kernel import envelope as ce
from onegrid.kernel import metrics
from onegrid.kernel.clock import SystemClock
from onegrid.kernel.tenant import COMMAND_CENTRE, Tenant

CASE_EVENTS = {
    "case.registered",
    "case.merged",
    "case.dispatched",
    "case.supervised",
    "case.escalated",
    "case.resolved",
    "case.verified",
    "case.reopened",
    "case.closed",
    "case.rejected",
}


@dataclass
class Scoring:
    tenant: Tenant
    config: sc.Config
    scores: ScoreStore
    publisher: Publisher
    clock: Clock = field(default_factory=SystemClock)

    # -- events ------------------------------------------------------------------------------
    def apply(self, event: sc.Event, again: bool = False) -> str:
        """Apply one lifecycle event: 'ignored', 'applied' or 'duplicate'. `again`: the message
        was delivered before, so a change it caused is announced again (a crash may have come
        between the store and the announcement); consumers deduplicate on the ce-id."""
        tenant = self.tenant.id
        if event.type not in CASE_EVENTS and not event.type.startswith("work_order."):
            metrics.SCORING_EVENTS.labels(tenant, "ignored").inc()
            return "ignored"
        case_id = event.data.get("id")
        if not case_id:
            raise ValueError(f"{event.type} {event.id} carries no case id in data.id")
        out, change = self.scores.apply(event, case_id, self.config)
        result = "duplicate" if out.duplicate else "applied"
        metrics.SCORING_EVENTS.labels(tenant, result).inc()
        if change and (not out.duplicate or again):
            env = ce.new(
                tenant=tenant,
                department=COMMAND_CENTRE,
                type="grid.colour_changed",
                source=f"/{tenant}/scoring",
                subject=change["grid"],
                id=f"{change['grid']}.colour.{change['cause']}",
            )
            self.publisher.publish(env, change, mandatory=False)
            if not out.duplicate:
                metrics.COLOUR_CHANGES.labels(tenant, change["to"]).inc()
        return result

    # -- queries -----------------------------------------------------------------------------
    def rankings(self, month: str | None = None, limit: int = 10) -> dict:
        """每月排序通报: grid workers by points, grids and communities by the points their
        cases earned, departments by their assessment score."""
        cfg, tenant, scores = self.config, self.tenant, self.scores
        month = _check_month(month) or self._current("month")
        workers = scores.workers(month, cfg)
        grids = scores.grid_points(month, cfg)
        communities: dict[str, int] = {}
        for grid, pts in grids.items():
            above = tenant.ancestor_or_none(grid, "community") if grid in tenant.nodes else None
            if above is not None:  # a dedicated grid under a street has no community
                parent = above.code
                communities[parent] = communities.get(parent, 0) + pts
        assessed = scores.assessment(f"month:{month}", tenant.departments, cfg)
        names = {code: node.name for code, node in tenant.nodes.items()}
        where = scores.worker_grid()
        limit = max(1, min(int(limit), 1000))
        return {
            "tenant": tenant.id,
            "month": month,
            "workers": [
                {**r, "grid": where.get(r["name"], "")}
                for r in sc.rank({w: v["points"] for w, v in workers.items()}, limit)
            ],
            "grids": [{**r, "grid_name": names.get(r["name"], "")} for r in sc.rank(grids, limit)],
            "communities": [{**r, "community_name": names.get(r["name"], "")} for r in sc.rank(communities, limit)],
            "departments": sc.rank({d: a["score"] for d, a in assessed.items()}, limit),
        }

    def assessment(self, period: str = "month", key: str | None = None) -> dict:
        if period not in PERIODS:
            raise ValidationError({"period": ["month or week"]})
        if key is not None:
            PERIODS[period](key)  # raises ValidationError when it names no such period
        key = key or self._current(period)
        rows = self.scores.assessment(f"{period}:{key}", self.tenant.departments, self.config)
        return {"tenant": self.tenant.id, "period": period, "key": key, "departments": rows}

    def risk(self) -> dict:
        grids = self.scores.colours()
        counts = {c: 0 for c in sc.COLOURS}
        for g in grids.values():
            counts[g["colour"]] += 1
        return {"tenant": self.tenant.id, "counts": counts, "grids": grids}

    def worker(self, worker: str, month: str | None = None) -> dict:
        month = _check_month(month) or self._current("month")
        row = self.scores.workers(month, self.config).get(worker, {"rules": {}, "adjusted": 0, "points": 0})
        return {"worker": worker, "month": month, **row, "adjustments": self.scores.audit(month, worker)}

    def audit(self, month: str | None = None, worker: str | None = None) -> list[dict]:
        return self.scores.audit(_check_month(month), worker)

    # -- inspectors --------------------------------------------------------------------------
    def adjust_points(
        self,
        worker: str,
        points: int,
        reason: str,
        inspector: str,
        month: str | None = None,
        adjustment_id: str | None = None,
    ) -> dict:
        """An inspector adds or deducts points with a reason; recorded in the audit trail.
        Idempotent on `adjustment_id` (a retried request changes nothing)."""
        req = Adjustment().load(
            {
                "worker": worker,
                "points": points,
                "reason": reason,
                "inspector": inspector,
                "month": month,
                "id": adjustment_id,
            }
        )
        created, entry = self.scores.adjust(
            req["worker"],
            req["points"],
            req["reason"],
            req["inspector"],
            req["month"] or self._current("month"),
            req["id"] or f"adj-{uuid.uuid4().hex[:16]}",
            self.clock.now_iso(),
        )
        return {"created": created, "adjustment": entry}

    # -- gauges ------------------------------------------------------------------------------
    def gauges(self) -> None:
        """The aggregate gauges, set from the store when Prometheus scrapes."""
        tenant, cfg = self.tenant, self.config
        for colour, n in self.risk()["counts"].items():
            metrics.GRID_COLOUR.labels(tenant.id, colour).set(n)
        month = f"month:{self._current('month')}"
        for dept, row in self.scores.assessment(month, tenant.departments, cfg).items():
            for gauge, value in (
                (metrics.DEPARTMENT_CLOSURE_RATE, row["closure_rate"]),
                (metrics.DEPARTMENT_ON_TIME_RATE, row["on_time_rate"]),
            ):
                if value is not None:
                    gauge.labels(tenant.id, dept).set(value)

    def _current(self, kind: str) -> str:
        """The period now: 'YYYY-MM' for month, 'YYYY-Www' for week, in the tenant's zone."""
        now = self.clock.now()
        return sc.month_of(now, self.config.tz) if kind == "month" else sc.week_of(now, self.config.tz)


def _check_month(month: str | None) -> str | None:
    if month is not None:
        MONTH(month)  # raises ValidationError when it is not YYYY-MM
    return month
