"""The month's bulletin (月度通报) as one printable HTML page: A4, Chinese, print CSS, nothing fetched
(it prints offline; one inline button calls window.print). The template is templates/bulletin.html (Jinja2,
autoescaped); the figures are the report's."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from onegrid.adapters.reports.sheets import about_lines, cell_text, local_time
from onegrid.domain.reports import COLOUR_ZH, MonthlyReport

TOP = 10  # rows of each ranking the bulletin prints (the files have them all)
_ENV = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a misspelt name is an error, not a blank in a published bulletin
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["pct"] = lambda v: "—" if v is None else f"{100 * v:.2f}%"
_ENV.filters["num"] = lambda v: "—" if v is None else f"{v:.2f}"


def html(report: MonthlyReport) -> bytes:
    year, month = report.month.split("-")
    tables = {t.name: t for t in report.tables()}
    page = _ENV.get_template("bulletin.html").render(
        r=report,
        year=year,
        month=int(month),
        t=tables,
        cell=cell_text,
        top=TOP,
        colour_zh=COLOUR_ZH,
        generated=local_time(report),
        about=about_lines(report),
    )
    return page.encode("utf-8")
