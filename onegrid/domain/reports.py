"""The monthly report (月度通报): the closure table by category in the shape the streets publish
(Qinling Rd: 805 problems, 790 solved, 98.14%), the department assessment, the rankings of grid
workers, grids and communities, and the grids per five-colour risk. Pure: typed records made
from typed inputs; onegrid/app/reports.py gathers the inputs, the renderers only format.

The rules (docs/reports.md states them for people):
- A case belongs to the month it was **registered** in (its `at`, in the tenant's time zone),
  whenever it closes: a case opened in November and closed in December counts in November's
  report, as solved once it is closed fixed. A month's figures fill in as its cases close, so
  every report says when it was made. This is the cohort rule of the department assessment
  (docs/scoring.md), for the same reason: every rate stays between 0 and 1.
- **Problems** (问题数) are the month's registered cases less those merged into another (a
  duplicate is the same problem, counted once, in its primary) and those rejected (not a matter
  for the platform).
- **Solved** (已解决) is a case closed with outcome `fixed`: the same `fixed` that
  onegrid_cases_closed_total{outcome="fixed"} and the assessment's `closure_rate` count. A case
  closed `not_fixed` is closed (办结) but not solved, and is shown apart.
- **On site** (其中现场解决) is the part of solved that a grid worker settled on the spot and
  reported as such (`resolution: on_site`, onegrid.domain.onsite): no work order, counted as a
  problem and as solved, like any case closed fixed. One sampled and found not fixed is
  reopened and dispatched: it is no longer on site, and counts as solved only when it closes fixed.
- Every rate is made once, here, with onegrid.domain.scoring.rate (4 digits, None with nothing
  to divide by); renderers format it and never recompute it.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from onegrid.domain.access import within
from onegrid.domain.onsite import settled_on_site
from onegrid.domain.scoring import COLOURS, rank, rate
from onegrid.kernel.tenant import Tenant

TABLES = ("closure", "departments", "workers", "grids", "communities", "colours")
COLOUR_ZH = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝", "green": "绿"}
WATCHED = ("red", "orange")  # grids the bulletin names


# -- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseFacts:
    """What the closure table reads of one case record."""

    id: str
    category: str
    grid: str
    status: str
    registered: float  # epoch seconds: the case's `at`
    outcome: str | None = None  # fixed | not_fixed, once closed
    on_time: bool = False  # closed fixed with every deadline met
    on_site: bool = False  # settled in the grid by the worker who reported it (onegrid.domain.onsite)

    FIELDS: ClassVar[tuple[str, ...]] = (
        *("id", "category", "grid", "status", "at", "outcome", "on_time", "resolution"),
    )  # read

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> CaseFacts:
        return cls(
            id=str(record["id"]),
            category=str(record.get("category") or "other"),
            grid=str(record.get("grid") or ""),
            status=str(record.get("status") or ""),
            registered=float(record["at"]),
            outcome=record.get("outcome") or None,
            on_time=bool(record.get("on_time")),
            on_site=settled_on_site(record),
        )


@dataclass(frozen=True)
class Scores:
    """scoring's figures for the month (onegrid/app/scoring.py reads the same ones)."""

    assessment: Mapping[str, Mapping[str, Any]]  # department -> onegrid.domain.scoring.assessment row
    worker_points: Mapping[str, int]  # worker -> points this month
    home_grids: Mapping[str, str]  # worker -> the grid where most of their points were earned
    grid_points: Mapping[str, int]  # grid -> points its cases earned this month
    colours: Mapping[str, Mapping[str, Any]]  # grid -> {colour, score}: now, not at the month's end


@dataclass(frozen=True)
class Names:
    categories: Mapping[str, str]  # id -> 中文名
    departments: Mapping[str, str]


# -- the tables' rows -----------------------------------------------------------------------
@dataclass(frozen=True)
class ClosureRow:
    category: str  # "" on the total row
    name: str
    reported: int  # registered in the month
    merged: int  # duplicates merged into another case
    rejected: int  # not a matter for the platform
    problems: int  # reported - merged - rejected
    solved: int  # closed fixed
    not_fixed: int  # closed not fixed
    open: int  # problems still being worked
    on_time: int  # solved with every deadline met
    on_site: int  # solved on site by the grid worker (a part of solved)
    closure_rate: float | None  # solved / problems
    on_time_rate: float | None  # on_time / solved


@dataclass(frozen=True)
class DepartmentRow:
    rank: int | None  # by score; None without one
    department: str
    name: str
    received: int
    returned: int
    closed_fixed: int
    closed_not_fixed: int
    closure_rate: float | None
    on_time_rate: float | None
    satisfaction_rate: float | None
    return_rate: float | None
    avg_resolve_hours: float | None
    score: float | None


@dataclass(frozen=True)
class RankRow:
    rank: int
    code: str  # the worker id, the grid's or the community's code
    name: str  # the grid's or community's name; a worker's home grid's name
    where: str  # a worker's home grid; a grid's community
    points: int


@dataclass(frozen=True)
class ColourRow:
    colour: str
    name: str
    grids: int
    share: float | None


@dataclass(frozen=True)
class WatchedGrid:
    grid: str
    name: str
    community: str
    colour: str
    score: float


@dataclass(frozen=True)
class Column:
    key: str
    title: str  # 中文 header
    kind: str = "text"  # text | int | rate | number


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple]
    total: tuple | None = None  # the closure table's 合计 row


@dataclass
class MonthlyReport:
    tenant: str
    tenant_name: str
    month: str
    scope: str  # a grid-tree node; the county's root for the whole county
    scope_name: str
    scope_level: str
    generated_at: str  # UTC ISO: a month's figures fill in as its cases close
    timezone: str
    closure: list[ClosureRow]
    closure_total: ClosureRow
    departments: list[DepartmentRow]
    workers: list[RankRow]
    grids: list[RankRow]
    communities: list[RankRow]
    colours: list[ColourRow]
    watched: list[WatchedGrid] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def table(self, name: str) -> Table:
        return TABLE_OF[name](self)

    def tables(self) -> list[Table]:
        return [self.table(n) for n in TABLES]


# -- periods --------------------------------------------------------------------------------
def month_bounds(month: str, tz: timezone) -> tuple[float, float]:
    """[start, end) of a YYYY-MM month in the tenant's zone, as epoch seconds."""
    year, mon = (int(x) for x in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=tz).timestamp()
    return start, start + monthrange(year, mon)[1] * 86400  # a fixed offset: every day is 86,400 s


# -- building -------------------------------------------------------------------------------
_COUNTED = ("reported", "merged", "rejected", "solved", "nf", "ot", "os")


def closure(cases: Iterable[CaseFacts], names: Mapping[str, str]) -> tuple[list[ClosureRow], ClosureRow]:
    """One row per category with a case, most problems first, and the total (合计)."""
    counts: dict[str, dict[str, int]] = {}
    for c in cases:
        n = counts.setdefault(c.category, dict.fromkeys(_COUNTED, 0))
        n["reported"] += 1
        if c.status == "merged":
            n["merged"] += 1
        elif c.status == "rejected":
            n["rejected"] += 1
        elif c.status == "closed" and c.outcome == "fixed":
            n["solved"] += 1
            n["ot"] += int(c.on_time)
            n["os"] += int(c.on_site)
        elif c.status == "closed":
            n["nf"] += 1
    order = list(names)
    rows = [_closure_row(cat, names.get(cat, cat), n) for cat, n in counts.items()]
    rows.sort(key=lambda r: (-r.problems, order.index(r.category) if r.category in order else len(order), r.category))
    total = {k: sum(n[k] for n in counts.values()) for k in _COUNTED}
    return rows, _closure_row("", "合计", total)


def _closure_row(category: str, name: str, n: Mapping[str, int]) -> ClosureRow:
    problems = n["reported"] - n["merged"] - n["rejected"]
    return ClosureRow(
        category=category,
        name=name,
        reported=n["reported"],
        merged=n["merged"],
        rejected=n["rejected"],
        problems=problems,
        solved=n["solved"],
        not_fixed=n["nf"],
        open=problems - n["solved"] - n["nf"],
        on_time=n["ot"],
        on_site=n["os"],
        closure_rate=rate(n["solved"], problems),
        on_time_rate=rate(n["ot"], n["solved"]),
    )


def departments(assessed: Mapping[str, Mapping[str, Any]], names: Mapping[str, str]) -> list[DepartmentRow]:
    """The departments that received work this month, by their assessment score (ties share a
    place; those with no score last). The rates are scoring's, not recomputed."""
    busy = {d: a for d, a in assessed.items() if int(a.get("received") or 0) > 0}
    places = {r["name"]: r["rank"] for r in rank({d: a.get("score") for d, a in busy.items()})}
    rows = [
        DepartmentRow(
            rank=places.get(d),
            department=d,
            name=names.get(d, d),
            received=int(a["received"]),
            returned=int(a.get("returned") or 0),
            closed_fixed=int(a.get("closed_fixed") or 0),
            closed_not_fixed=int(a.get("closed_not_fixed") or 0),
            closure_rate=a.get("closure_rate"),
            on_time_rate=a.get("on_time_rate"),
            satisfaction_rate=a.get("satisfaction_rate"),
            return_rate=a.get("return_rate"),
            avg_resolve_hours=None
            if a.get("avg_resolve_seconds") is None
            else round(float(a["avg_resolve_seconds"]) / 3600, 2),
            score=a.get("score"),
        )
        for d, a in busy.items()
    ]
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.department))
    return rows


def build(
    tenant: Tenant,
    month: str,
    scope: str,
    tz: timezone,
    generated_at: str,
    cases: Iterable[CaseFacts],
    scores: Scores,
    names: Names,
) -> MonthlyReport:
    """The month's report for `scope` (a node of the grid tree; the root: the whole county).
    `cases` are the cases registered in the month, any scope: those outside are left out here."""
    node = tenant.nodes[scope]
    inside = lambda grid: grid in tenant.nodes and within(tenant, grid, scope)  # noqa: E731
    start, end = month_bounds(month, tz)
    mine = [c for c in cases if start <= c.registered < end and inside(c.grid)]
    rows, total = closure(mine, names.categories)

    name_of = {code: n.name for code, n in tenant.nodes.items()}
    # a dedicated grid beside the tree counts under the unit it hangs from
    community_of = {
        g.code: (tenant.ancestor_or_none(g.code, "community") or tenant.nodes[g.parent or g.code]).code
        for g in tenant.grids()
    }
    grid_pts = {g: int(p) for g, p in scores.grid_points.items() if inside(g)}
    community_pts: dict[str, int] = {}
    for grid, pts in grid_pts.items():
        community_pts[community_of[grid]] = community_pts.get(community_of[grid], 0) + pts
    worker_pts = {w: int(p) for w, p in scores.worker_points.items() if inside(scores.home_grids.get(w, ""))}

    def ranked(points: Mapping[str, int], name, where) -> list[RankRow]:
        return [
            RankRow(r["rank"], r["name"], name(r["name"]), where(r["name"]), int(r["score"]))
            for r in rank(dict(points))
        ]

    grids_now = {g: v for g, v in scores.colours.items() if inside(g)}
    counts = {c: 0 for c in COLOURS}
    for v in grids_now.values():
        counts[v["colour"]] += 1
    colours = [ColourRow(c, COLOUR_ZH[c], counts[c], rate(counts[c], len(grids_now))) for c in COLOURS]
    watched = sorted(
        (
            WatchedGrid(g, name_of.get(g, ""), name_of.get(community_of.get(g, ""), ""), v["colour"], float(v["score"]))
            for g, v in grids_now.items()
            if v["colour"] in WATCHED
        ),
        key=lambda w: (COLOURS.index(w.colour), -w.score, w.grid),
    )
    return MonthlyReport(
        tenant=tenant.id,
        tenant_name=tenant.name_zh,
        month=month,
        scope=scope,
        scope_name=node.name,
        scope_level=node.level,
        generated_at=generated_at,
        timezone=_offset(tz),
        closure=rows,
        closure_total=total,
        departments=departments(scores.assessment, names.departments),
        workers=ranked(
            worker_pts,
            lambda w: name_of.get(scores.home_grids.get(w, ""), ""),
            lambda w: scores.home_grids.get(w, ""),
        ),
        grids=ranked(grid_pts, lambda g: name_of.get(g, ""), lambda g: name_of.get(community_of.get(g, ""), "")),
        communities=ranked(
            community_pts, lambda c: name_of.get(c, ""), lambda c: name_of.get(tenant.nodes[c].parent or "", "")
        ),
        colours=colours,
        watched=watched,
    )


def _offset(tz: timezone) -> str:
    offset = tz.utcoffset(None)
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


# -- the tables as rows and columns, for the renderers ----------------------------------------
def _closure_table(r: MonthlyReport) -> Table:
    cols = (
        Column("name", "类别"),
        Column("reported", "上报", "int"),
        Column("merged", "重复合并", "int"),
        Column("rejected", "不予受理", "int"),
        Column("problems", "问题数", "int"),
        Column("solved", "已解决", "int"),
        Column("not_fixed", "办结未解决", "int"),
        Column("open", "办理中", "int"),
        Column("closure_rate", "解决率", "rate"),
        Column("on_time_rate", "按时率", "rate"),
        Column("on_site", "其中现场解决", "int"),  # a part of 已解决
    )
    return Table("closure", "分类办结情况", cols, [_row(x, cols) for x in r.closure], _row(r.closure_total, cols))


def _departments_table(r: MonthlyReport) -> Table:
    cols = (
        Column("rank", "名次", "int"),
        Column("name", "部门"),
        Column("received", "受理", "int"),
        Column("returned", "退回", "int"),
        Column("closed_fixed", "已解决", "int"),
        Column("closed_not_fixed", "办结未解决", "int"),
        Column("closure_rate", "解决率", "rate"),
        Column("on_time_rate", "按时办结率", "rate"),
        Column("satisfaction_rate", "满意率", "rate"),
        Column("return_rate", "退回率", "rate"),
        Column("avg_resolve_hours", "平均办理时长(小时)", "number"),
        Column("score", "考核得分", "number"),
    )
    return Table("departments", "部门考核", cols, [_row(x, cols) for x in r.departments])


def _ranking(name: str, title: str, who: str, place: str, where: str) -> Any:
    cols = (
        Column("rank", "名次", "int"),
        Column("code", who),
        Column("name", place),
        Column("where", where),
        Column("points", "积分", "int"),
    )
    return lambda r: Table(name, title, cols, [_row(x, cols) for x in getattr(r, name)])


def _colours_table(r: MonthlyReport) -> Table:
    cols = (Column("name", "风险等级"), Column("grids", "网格数", "int"), Column("share", "占比", "rate"))
    return Table("colours", "五色管控网格数", cols, [_row(x, cols) for x in r.colours])


def _row(record: Any, cols: tuple[Column, ...]) -> tuple:
    return tuple(getattr(record, c.key) for c in cols)


TABLE_OF = {
    "closure": _closure_table,
    "departments": _departments_table,
    "workers": _ranking("workers", "网格员积分排名", "网格员", "所在网格", "网格编码"),
    "grids": _ranking("grids", "网格积分排名", "网格编码", "网格", "所属社区"),
    "communities": _ranking("communities", "社区积分排名", "社区编码", "社区", "所属街道"),
    "colours": _colours_table,
}
