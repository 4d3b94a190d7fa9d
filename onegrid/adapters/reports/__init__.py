"""The monthly report as files: each table as CSV (UTF-8 with a BOM, so Excel opens the Chinese
right) and XLSX, the whole report as one workbook (a sheet per table), and the month's bulletin
(通报) as a printable HTML page. Formatting only: every figure and rate is the report's
(onegrid.domain.reports), never recomputed. The scoring service serves these at
`GET /reports/<month>/<file>`; `onegrid report` writes them; the console may call `render`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from onegrid.domain.reports import TABLES, MonthlyReport

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HTML = "text/html; charset=utf-8"
WORKBOOK = "report"  # report.xlsx: every table, a sheet each
BULLETIN = "bulletin"  # bulletin.html
# every file a month's report offers, by name
FILES = (
    *(f"{t}.csv" for t in TABLES),
    *(f"{t}.xlsx" for t in TABLES),
    f"{WORKBOOK}.xlsx",
    f"{BULLETIN}.html",
)
CONTENT_TYPES = {"csv": CSV, "xlsx": XLSX, "html": HTML}


@dataclass(frozen=True)
class Download:
    filename: str  # ASCII: tenant-month[-scope]-name.ext
    filename_zh: str  # what a person sees: 县区名[范围]-月份-表名.ext
    content_type: str
    body: bytes
    inline: bool = False  # the bulletin opens in the browser; the tables download

    @property
    def disposition(self) -> str:
        """Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 6266, RFC 5987)."""
        kind = "inline" if self.inline else "attachment"
        return f"{kind}; filename=\"{self.filename}\"; filename*=UTF-8''{quote(self.filename_zh, safe='')}"


def render(report: MonthlyReport, file: str) -> Download:
    """One of FILES; LookupError (a 404) for any other name."""
    if file not in FILES:
        raise LookupError(f"no report file {file[:80]!r}; one of {', '.join(FILES)}")
    from onegrid.adapters.reports import bulletin, sheets  # openpyxl and Jinja2 load on first use

    name, _, ext = file.rpartition(".")
    if file == f"{BULLETIN}.html":
        body, title = bulletin.html(report), "工作通报"
    elif name == WORKBOOK:
        body, title = sheets.xlsx(report.tables(), report), "月度报表"
    else:
        table = report.table(name)
        body = sheets.csv(table) if ext == "csv" else sheets.xlsx([table], report)
        title = table.title
    scoped = report.scope_level != "county"  # a part of the tree: its code and name in the file's
    ascii_name = "-".join([report.tenant, report.month, *([report.scope] if scoped else []), name]) + f".{ext}"
    zh_name = "-".join([report.tenant_name + (report.scope_name if scoped else ""), report.month, title]) + f".{ext}"
    return Download(ascii_name, zh_name, CONTENT_TYPES[ext], body, inline=ext == "html")
