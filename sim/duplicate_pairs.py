"""A labelled set of report pairs for measuring duplicate detection (onegrid.domain.duplicates),
built from the demo's simulator: its categories in the Qinling mix, its grids and its spacing in
time, with summaries and locations the way people write and phones report them.

- twins: one incident reported twice (a grid worker and a citizen, or two citizens): the same
  shop, road and problem, said in other words (a paraphrase, a prefix like 居民反映, the door
  number left out), a position with phone noise (0-25 m; up to 60 m for one reported from
  home), 1-20 minutes apart.
- neighbours: two incidents of the same category close by within the window: a sweep of
  shops on one road (same problem, another shop and number, 20-200 m), another problem in the
  same grid, the same kind of problem on another road (50-400 m).

A report lacks a location one time in four (hotline reports have none). Deterministic for a
seed. `python -m sim.duplicate_pairs` prints the table docs/duplicates.md carries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime

from onegrid.domain.duplicates import Match, Thresholds, score
from onegrid.kernel.tenant import Tenant

ROADS = ("秦岭路", "建设路", "中原路", "桐柏路", "伏牛路", "淮河路", "华山路", "嵩山路", "棉纺路", "陇海路")
ESTATES = ("锦艺城", "绿都城", "百花苑", "棉纺小区", "桐柏小区", "帝湖花园", "汇港新城")
SHOPS = ("烧烤店", "水果店", "五金店", "餐馆", "超市", "洗车店", "理发店", "快递点", "小吃店", "废品站")
PREFIXES = ("", "居民反映：", "网格员巡查发现", "群众来电：", "有人反映", "市民投诉")
SUFFIXES = ("", "，影响通行", "，请尽快处理", "，多次反映未解决", "，存在安全隐患", "，周边居民意见很大")
# per category, problems; each problem in the ways people say it
PROBLEMS = {
    "illegal_business": (
        ("占道经营", "门前摆摊占道经营", "把货架摆到人行道上经营"),
        ("无证经营", "没有营业执照在经营", "无照经营"),
        ("夜间露天烧烤", "晚上在路边搞露天烧烤", "露天烧烤油烟扰民"),
    ),
    "illegal_construction": (
        ("私搭乱建", "违规搭建彩钢房", "在门口私自搭棚子"),
        ("楼顶私自加盖", "房顶违规加盖一层"),
        ("破墙开门", "擅自拆墙开门面"),
    ),
    "work_safety": (
        ("消防通道堵塞", "消防通道被杂物堵住", "堆放杂物堵塞消防通道"),
        ("电动车楼道充电", "电瓶车在楼道里充电", "飞线给电动车充电"),
        ("液化气罐违规存放", "店里放着好几个液化气罐"),
    ),
    "illegal_production": (
        ("小作坊违法生产", "无证小作坊在加工", "有个地下加工点"),
        ("违规生产散装白酒", "私自灌装散装酒"),
    ),
    "petition_stability": (
        ("工人聚集讨要工资", "多人聚集讨薪", "一群工人在门口要工钱"),
        ("邻里纠纷争吵", "邻居吵架发生纠纷", "两家人因噪音吵起来"),
    ),
}
GENERIC = (
    ("垃圾堆放未清运", "垃圾堆了好几天没人清", "生活垃圾乱堆"),
    ("井盖缺失", "窨井盖丢了", "路上井盖没了很危险"),
    ("路灯不亮", "路灯坏了晚上很黑", "一排路灯都不亮"),
)
CENTRE = (34.7466, 113.6253)  # Zhongyuan district, Zhengzhou
M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class Pair:
    earlier: dict  # the two as routing sees them: id, at, occurred, category, grid, summary, location, status
    later: dict
    twin: bool  # the same incident
    kind: str  # twin | sweep | other_problem | other_road


@dataclass(frozen=True)
class Incident:
    category: str
    grid: str
    road: str
    number: int
    shop: str
    problem: int
    point: tuple[float, float]
    occurred: float


def _grid_centre(code: str) -> tuple[float, float]:
    """A stable point per grid, grids ~300 m apart (the manifests carry no coordinates)."""
    h = int(hashlib.sha256(code.encode()).hexdigest()[:8], 16)
    return _moved(CENTRE, (h % 20) * 300.0, (h // 20 % 20) * 300.0)


def _moved(p: tuple[float, float], north_m: float, east_m: float) -> tuple[float, float]:
    lat = p[0] + north_m / M_PER_DEG_LAT
    return lat, p[1] + east_m / (M_PER_DEG_LAT * math.cos(math.radians(p[0])))


def _towards(rng: random.Random, p: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    d, a = rng.uniform(lo, hi), rng.uniform(0, 2 * math.pi)
    return _moved(p, d * math.cos(a), d * math.sin(a))


class PairMaker:
    def __init__(self, tenant: Tenant, seed: int = 14):
        from sim.simulator import Simulator  # the demo's: its category mix, grids and spacing

        # without boundaries: every planned report names its grid (the pairs place themselves
        # around the grid's centre), and the seed's reports are those the set was measured on
        plain = dataclasses.replace(tenant, geography=None)
        self.sim = Simulator(plain, "memory://", seed=seed, run_id="pairs", epoch=1_700_000_000.0)
        self.rng = random.Random(seed)
        self.n = 0

    def incident(self) -> Incident:
        planned = self.sim.good()
        data = json.loads(planned.body)
        category, grid = str(planned.category), data["grid"]
        occurred = datetime.fromisoformat(data["occurred_at"]).timestamp()
        problems = PROBLEMS.get(category, GENERIC)
        r = self.rng
        point = _towards(r, _grid_centre(grid), 0, 150)
        return Incident(
            category,
            grid,
            r.choice(ROADS),
            r.randint(1, 200),
            r.choice(SHOPS),
            r.randrange(len(problems)),
            point,
            occurred,
        )

    def say(self, inc: Incident, variant: int | None = None, vague: bool = False) -> str:
        r = self.rng
        ways = PROBLEMS.get(inc.category, GENERIC)[inc.problem]
        way = ways[variant % len(ways)] if variant is not None else r.choice(ways)
        where = f"{inc.road}上一家{inc.shop}" if vague else f"{inc.road}{inc.number}号{inc.shop}"
        if r.random() < 0.3:
            where = f"{r.choice(ESTATES)}附近{where}"
        return f"{r.choice(PREFIXES)}{where}{way}{r.choice(SUFFIXES)}"

    def report(self, inc: Incident, summary: str, at: float, noise: float) -> dict:
        self.n += 1
        located = self.rng.random() >= 0.25
        lat, lon = _towards(self.rng, inc.point, 0, noise)
        return {
            "id": f"c-{self.n:016x}",
            "at": at,
            "occurred": at,
            "category": inc.category,
            "grid": inc.grid,
            "summary": summary,
            "location": {"lat": round(lat, 6), "lon": round(lon, 6)} if located else None,
            "status": "dispatched",
        }

    def twin(self) -> Pair:
        inc = self.incident()
        first = self.report(inc, self.say(inc, 0), inc.occurred, 25)
        noise = 60 if self.rng.random() < 0.2 else 25
        later = inc.occurred + self.rng.uniform(60, 1200)
        vague = self.rng.random() < 0.2
        second = self.report(inc, self.say(inc, self.rng.randint(1, 3), vague), later, noise)
        return Pair(first, second, True, "twin")

    def neighbour(self) -> Pair:
        inc = self.incident()
        r = self.rng
        kind = r.choice(("sweep", "other_problem", "other_road"))
        problems = len(PROBLEMS.get(inc.category, GENERIC))
        if kind == "sweep":  # the next shop down the road, same problem
            other = Incident(
                inc.category,
                inc.grid,
                inc.road,
                inc.number + r.randint(2, 30),
                r.choice([s for s in SHOPS if s != inc.shop]),
                inc.problem,
                _towards(r, inc.point, 20, 200),
                inc.occurred,
            )
        elif kind == "other_problem" and problems > 1:
            other = Incident(
                inc.category,
                inc.grid,
                inc.road,
                r.randint(1, 200),
                r.choice(SHOPS),
                (inc.problem + r.randint(1, problems - 1)) % problems,
                _towards(r, inc.point, 0, 250),
                inc.occurred,
            )
        else:
            kind = "other_road"
            other = Incident(
                inc.category,
                inc.grid,
                r.choice([x for x in ROADS if x != inc.road]),
                r.randint(1, 200),
                inc.shop,
                inc.problem,
                _towards(r, inc.point, 50, 400),
                inc.occurred,
            )
        first = self.report(inc, self.say(inc), inc.occurred, 25)
        second = self.report(other, self.say(other), inc.occurred + r.uniform(0, 1800), 25)
        return Pair(first, second, False, kind)


def pairs(tenant: Tenant, n_twins: int = 400, n_neighbours: int = 600, seed: int = 14) -> list[Pair]:
    maker = PairMaker(tenant, seed)
    out = [maker.twin() for _ in range(n_twins)] + [maker.neighbour() for _ in range(n_neighbours)]
    return out


@dataclass(frozen=True)
class Figures:
    twins: int
    neighbours: int
    merged_twins: int
    merged_neighbours: int
    suggested_twins: int
    suggested_neighbours: int

    @staticmethod
    def _ratio(a: int, b: int) -> float:
        return a / b if b else 1.0

    @property
    def merge_precision(self) -> float:
        return self._ratio(self.merged_twins, self.merged_twins + self.merged_neighbours)

    @property
    def merge_recall(self) -> float:
        return self._ratio(self.merged_twins, self.twins)

    @property
    def suggestion_precision(self) -> float:
        return self._ratio(self.suggested_twins, self.suggested_twins + self.suggested_neighbours)

    @property
    def caught_recall(self) -> float:
        """Twins merged or put before the command centre."""
        return self._ratio(self.merged_twins + self.suggested_twins, self.twins)


def verdict(p: Pair, th: Thresholds) -> str:
    m: Match | None = score(p.later, p.earlier, th)
    return m.verdict(th) if m else "distinct"


def evaluate(ps: list[Pair], th: Thresholds) -> Figures:
    v = [(p.twin, verdict(p, th)) for p in ps]
    return Figures(
        sum(t for t, _ in v),
        sum(not t for t, _ in v),
        sum(t and x == "merge" for t, x in v),
        sum(not t and x == "merge" for t, x in v),
        sum(t and x == "suggest" for t, x in v),
        sum(not t and x == "suggest" for t, x in v),
    )


def table(f: Figures) -> str:
    rows = [
        ("auto-merge", f.merged_twins, f.merged_neighbours, f.merge_precision, f.merge_recall),
        ("suggestion", f.suggested_twins, f.suggested_neighbours, f.suggestion_precision, None),
        ("merged or suggested", f.merged_twins + f.suggested_twins, f.merged_neighbours + f.suggested_neighbours,
         None, f.caught_recall),
    ]  # fmt: skip
    out = ["| outcome | twins | neighbours | precision | recall |", "| --- | --- | --- | --- | --- |"]
    for name, t, n, p, r in rows:
        out.append(f"| {name} | {t} | {n} | {'' if p is None else f'{p:.3f}'} | {'' if r is None else f'{r:.3f}'} |")
    return "\n".join(out)


if __name__ == "__main__":
    from onegrid.app.registry import load_strict
    from onegrid.domain.supervision import Policy
    from onegrid.kernel import settings

    reg = load_strict(settings.contracts_dir())
    tenant = reg.tenants["zhongyuan-qinling"]
    ps = pairs(tenant)
    print(f"{sum(p.twin for p in ps)} twins, {sum(not p.twin for p in ps)} neighbours (seed 14)\n")
    print(table(evaluate(ps, Policy().duplicates)))
