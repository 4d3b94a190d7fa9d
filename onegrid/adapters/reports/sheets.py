"""Tables as CSV and XLSX. A rate is a fraction in the report: a percentage cell (0.00%) in
XLSX, the same two decimals with a % sign in CSV, empty where there was nothing to divide by."""

from __future__ import annotations

import csv as _csv
import io
import re
from datetime import datetime, timedelta, timezone

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from onegrid.domain.reports import Column, MonthlyReport, Table

BOM = "\ufeff"
PERCENT = "0.00%"
NUMBER = "0.00"
HEADER_FILL = PatternFill("solid", fgColor="1F4E79")
HEADER_FONT = Font(bold=True, color="FFFFFF")
TOTAL_FILL = PatternFill("solid", fgColor="DDEBF7")
THIN = Side(style="thin", color="9BAFC4")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
_SHEET_BAD = re.compile(r"[\[\]:*?/\\]")


def cell_text(value, col: Column) -> str:
    """A value as CSV (and the bulletin) writes it."""
    if value is None:
        return ""
    if col.kind == "rate":
        return f"{100 * value:.2f}%"
    if col.kind == "number":
        return f"{value:.2f}"
    return str(value)


def csv(table: Table) -> bytes:
    out = io.StringIO()
    w = _csv.writer(out)
    w.writerow([c.title for c in table.columns])
    for row in table.rows + ([table.total] if table.total else []):
        w.writerow([cell_text(v, c) for v, c in zip(row, table.columns, strict=True)])
    return (BOM + out.getvalue()).encode("utf-8")


def xlsx(tables: list[Table], report: MonthlyReport) -> bytes:
    """A workbook with a sheet per table (header styled and frozen, percentages formatted,
    the total row in bold), then a sheet saying what, where, when and how."""
    wb = Workbook()
    wb.remove(wb.active)
    for table in tables:
        ws = wb.create_sheet(_SHEET_BAD.sub("_", table.title)[:31])
        ws.append([c.title for c in table.columns])
        for cell in ws[1]:
            cell.font, cell.fill, cell.border = HEADER_FONT, HEADER_FILL, BOX
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        rows = table.rows + ([table.total] if table.total else [])
        for row in rows:
            ws.append(list(row))
        for r in range(2, len(rows) + 2):
            for i, col in enumerate(table.columns, 1):
                cell = ws.cell(row=r, column=i)
                cell.border = BOX
                if col.kind == "rate":
                    cell.number_format = PERCENT
                elif col.kind == "number":
                    cell.number_format = NUMBER
        if table.total:
            for cell in ws[len(rows) + 1]:
                cell.font, cell.fill = Font(bold=True), TOTAL_FILL
        for i, col in enumerate(table.columns, 1):
            widest = max([_width(col.title)] + [_width(cell_text(row[i - 1], col)) for row in rows])
            ws.column_dimensions[get_column_letter(i)].width = min(40, widest + 3)
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table.rows) + 1}"  # not the total
        ws.print_title_rows = "1:1"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
    about = wb.create_sheet("说明")
    for line in about_lines(report):
        about.append(line)
    about.column_dimensions["A"].width = 14
    about.column_dimensions["B"].width = 90
    wb.properties.title = f"{report.tenant_name} {report.month} 月度报表"
    wb.properties.creator = "OneGrid"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def about_lines(report: MonthlyReport) -> list[tuple[str, str]]:
    return [
        ("单位", report.tenant_name),
        ("范围", f"{report.scope_name}({report.scope})"),
        ("月份", report.month),
        ("生成时间", f"{local_time(report)}(UTC{report.timezone})"),
        ("统计口径", "按登记月份统计:本月登记的案件,无论何时办结,均计入本月;已解决数随办结持续更新。"),
        ("问题数", "本月登记的案件,不含合并到其他案件的重复上报和不予受理的案件。"),
        ("已解决", "以“已解决”(fixed)结案的案件;“办结未解决”单列,不计入已解决。解决率 = 已解决 ÷ 问题数。"),
        ("部门考核", "按部门首次派单所在月份统计,与部门考核口径一致;全县(区)范围。"),
        ("排名", "网格员、网格、社区按本月积分排序,并列同名次。"),
        ("五色管控", "各网格当前(生成时)的风险颜色。"),
    ]


def local_time(report: MonthlyReport) -> str:
    """The report's generation time in the tenant's zone, to the minute."""
    sign = 1 if report.timezone[0] == "+" else -1
    hours, minutes = (int(x) for x in report.timezone[1:].split(":"))
    tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    at = datetime.fromisoformat(report.generated_at.replace("Z", "+00:00"))
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)  # a Chinese character is two columns wide
