"""`onegrid report <tenant> <month>`: the monthly report (docs/reports.md) read straight from the
county's Redis as the operator, printed as tables or written as CSV, XLSX or the bulletin."""

from __future__ import annotations

import sys
from pathlib import Path

from onegrid.cli.ui import console
from onegrid.cli.ui import table as _table

FORMATS = ("table", "csv", "xlsx", "html")


def add_parser(sub) -> None:
    from onegrid.domain.reports import TABLES

    p = sub.add_parser("report", help="the monthly report: closure by category, assessment, rankings, five colours")
    p.add_argument("tenant")
    p.add_argument("month", help="YYYY-MM: the cases registered in that month (the tenant's time zone)")
    p.add_argument("--format", choices=FORMATS, default="table", help="html: the printable bulletin (通报)")
    p.add_argument("--table", choices=TABLES, help="one table (csv: default closure; table, xlsx: default all)")
    p.add_argument("--scope", help="a node of the grid tree (default: the whole county)")
    p.add_argument("--out", help="the file to write (xlsx needs one; else standard output)")
    p.set_defaults(func=run)


def build(tenant_id: str, month: str, scope: str | None):
    """The report as scoring's HTTP route makes it, from the same store and figures."""
    from onegrid.adapters.redis import connect
    from onegrid.adapters.redis.scores import Scores
    from onegrid.app.registry import load_strict
    from onegrid.app.reports import Reports, names_of
    from onegrid.domain import scoring
    from onegrid.kernel import settings
    from onegrid.operator import ops

    registry = load_strict(settings.contracts_dir())
    if tenant_id not in registry.tenants:
        raise LookupError(f"no tenant {tenant_id!r}; known: {', '.join(sorted(registry.tenants))}")
    tenant = registry.tenants[tenant_id]
    config = scoring.parse_config(tenant.source, tenant)
    scores = Scores(connect.client(settings.redis_url(), decode_responses=True), tenant.id)
    return Reports(tenant, config, ops.store(tenant.id), scores, names_of(registry, tenant)).monthly(month, scope)


def run(args) -> int:
    from marshmallow import ValidationError

    from onegrid.adapters import reports as files
    from onegrid.adapters.reports.sheets import cell_text, local_time

    try:
        report = build(args.tenant, args.month, args.scope)
    except (LookupError, ValidationError) as exc:
        said = getattr(exc, "messages", None)
        if isinstance(said, dict):
            said = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in said.items())
        print(said or str(exc).strip("'\""), file=sys.stderr)
        return 2
    if args.format == "table":
        for t in [report.table(args.table)] if args.table else report.tables():
            rows = [[cell_text(v, c) or "—" for v, c in zip(r, t.columns, strict=True)] for r in t.rows]
            if t.total:
                rows.append([cell_text(v, c) or "—" for v, c in zip(t.total, t.columns, strict=True)])
            console.print(_table(f"{report.scope_name} {report.month} {t.title}", [c.title for c in t.columns], rows))
        console.print(f"generated {local_time(report)} (UTC{report.timezone}); docs/reports.md says how")
        return 0
    name = {"csv": args.table or "closure", "xlsx": args.table or files.WORKBOOK, "html": files.BULLETIN}[args.format]
    download = files.render(report, f"{name}.{args.format}")
    if args.out:
        Path(args.out).write_bytes(download.body)
        print(f"wrote {args.out} ({len(download.body):,} bytes)")
    elif args.format == "xlsx":
        print("an XLSX workbook needs --out FILE", file=sys.stderr)
        return 2
    else:
        sys.stdout.buffer.write(download.body)
    return 0
