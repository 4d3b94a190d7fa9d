"""The monthly report's use case: for a tenant, a month and a scope (a node of the grid tree: a
street or community officer's part of it, the whole county by default), the cases registered in
the month (RegisteredCases) and scoring's figures for it (ScoreStore) become one
onegrid.domain.reports.MonthlyReport. Served by scoring (HTTP, RPC) and the `onegrid report` CLI;
the renderers (onegrid/adapters/reports) make CSV, XLSX and the bulletin of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from marshmallow import ValidationError

from onegrid.app.inputs import REPORT_MONTH
from onegrid.app.ports import Clock, RegisteredCases, ScoreStore
from onegrid.domain import reports as rp
from onegrid.domain import scoring as sc
from onegrid.kernel.clock import SystemClock
from onegrid.kernel.tenant import Tenant


def names_of(registry, tenant: Tenant) -> rp.Names:
    """The Chinese names of the categories (in the registry's order) and the tenant's departments."""
    return rp.Names(
        categories={cid: str(c.get("name_zh") or cid) for cid, c in registry.categories.items()},
        departments={d: str((registry.departments.get(d) or {}).get("name_zh") or d) for d in tenant.departments},
    )


@dataclass
class Reports:
    tenant: Tenant
    config: sc.Config
    cases: RegisteredCases
    scores: ScoreStore
    names: rp.Names
    clock: Clock = field(default_factory=SystemClock)

    def monthly(self, month: str | None = None, scope: str | None = None) -> rp.MonthlyReport:
        """The month's report (default: this month) for `scope` (default: the whole county).
        ValidationError names a bad month or an unknown scope."""
        month = self.check_month(month) or sc.month_of(self.clock.now(), self.config.tz)
        scope = self.check_scope(scope)
        start, end = rp.month_bounds(month, self.config.tz)
        cases = [rp.CaseFacts.of(c) for c in self.cases.registered(start, end, rp.CaseFacts.FIELDS)]
        scores = rp.Scores(
            assessment=self.scores.assessment(f"month:{month}", self.tenant.departments, self.config),
            worker_points={w: v["points"] for w, v in self.scores.workers(month, self.config).items()},
            home_grids=self.scores.worker_grid(),
            grid_points=self.scores.grid_points(month, self.config),
            colours=self.scores.colours(),
        )
        return rp.build(self.tenant, month, scope, self.config.tz, self.clock.now_iso(), cases, scores, self.names)

    @staticmethod
    def check_month(month: str | None) -> str | None:
        if month is not None:
            try:
                REPORT_MONTH(month)
            except ValidationError as exc:
                raise ValidationError({"month": exc.messages}) from None
        return month

    def check_scope(self, scope: str | None) -> str:
        """A node of the grid tree (the root when none is given)."""
        if scope is None:
            return self.tenant.root
        if scope not in self.tenant.nodes:
            raise ValidationError({"scope": [f"not a node of {self.tenant.id}'s grid tree"]})
        return str(scope)
