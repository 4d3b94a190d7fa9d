"""How long the monthly report takes at Taiyuan's monthly volume (67,657 reports a year: 5,638 a
month): that many case records written straight into a throwaway county's Redis (no bus), then
the report made five times as the record, as report.xlsx, as closure.csv and as the bulletin;
the medians printed. `.venv/bin/python -m bench.reports` (not part of `make bench`)."""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from pathlib import Path

from onegrid.adapters.redis import connect
from onegrid.adapters.redis.scores import Scores
from onegrid.adapters.redis.store import encode
from onegrid.adapters.reports import render
from onegrid.app.registry import load_strict
from onegrid.app.reports import Reports, names_of
from onegrid.cli.ui import console, table
from onegrid.domain import reports as rp
from onegrid.domain import scoring as sc
from onegrid.kernel import settings
from onegrid.operator import ops

ROOT = Path(__file__).resolve().parent.parent
CASES = 5638  # Taiyuan's 67,657 a year, a month of them
MONTH = "2026-11"
RUNS = 5


def seed(store, tenant, registry, cfg) -> None:
    start, end = rp.month_bounds(MONTH, cfg.tz)
    grids, categories = [g.code for g in tenant.grids()], list(registry.categories)
    rnd = random.Random(7)
    pipe = store.r.pipeline(transaction=False)
    for _ in range(CASES):
        cid, at = f"c-{uuid.uuid4().hex[:16]}", start + rnd.random() * (end - start)
        status = rnd.choice(["closed"] * 8 + ["in_progress", "merged", "rejected"])
        record = {
            "id": cid,
            "category": rnd.choice(categories),
            "grid": rnd.choice(grids),
            "status": status,
            "at": at,
            "outcome": ("fixed" if rnd.random() < 0.97 else "not_fixed") if status == "closed" else "",
            "on_time": rnd.random() < 0.8,
            "summary": "井盖缺失,影响通行" * 4,
            "reporter": {"kind": "grid_worker", "id": "GW-0001"},
        }
        pipe.hset(store.key("case", cid), mapping=encode(record))
        pipe.zadd(store.key("cases"), {cid: at})
    pipe.execute()


def main() -> int:
    tenant_id = f"reports-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        contracts = ops.clone_tenant(ROOT / "contracts", "zhongyuan-qinling", tenant_id, Path(tmp) / "contracts")
        registry = load_strict(contracts)
        tenant = registry.tenants[tenant_id]
        cfg = sc.parse_config(tenant.source, tenant)
        store = ops.store(tenant_id)
        try:
            seed(store, tenant, registry, cfg)
            scores = Scores(connect.client(settings.redis_url(), decode_responses=True), tenant_id)
            reports = Reports(tenant, cfg, store, scores, names_of(registry, tenant))
            rows = []
            for what in ("the record", "report.xlsx", "closure.csv", "bulletin.html"):
                times = []
                for _ in range(RUNS):
                    started = time.perf_counter()
                    report = reports.monthly(MONTH)
                    if what != "the record":
                        render(report, what)
                    times.append(time.perf_counter() - started)
                rows.append((what, f"{sorted(times)[RUNS // 2] * 1000:,.0f} ms"))
            console.print(table(f"The monthly report of {CASES:,} cases, median of {RUNS}", ["made", "time"], rows))
        finally:
            ops.offboard(tenant_id, delete_data=True, force=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
