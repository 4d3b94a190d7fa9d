"""Scoring's pure rules: points with monthly caps, assessments, five colours, rankings, and
totals that do not depend on redelivery or on the order cases interleave."""

import copy
import random

import pytest

from onegrid.domain import scoring as sc
from tests.lifecycle import Story, as_event

from .helpers import JINCHENG, QINLING, registry

GRID = "410102-001-001-001"


def _cfg(**over):
    doc = copy.deepcopy(registry().tenants[QINLING].source)
    doc["scoring"].update(over)
    return sc.parse_config(doc, registry().tenants[QINLING])


class Memory:
    """What the Redis adapter does with outcomes, in memory: states per case, summed counters."""

    def __init__(self, cfg):
        self.cfg, self.states, self.counters = cfg, {}, {}

    def apply(self, event):
        out = sc.apply(self.states.get(event.data["id"]), event, self.cfg)
        self.states[event.data["id"]] = out.state
        for parts, field, n in out.counters:
            bucket = self.counters.setdefault(parts, {})
            bucket[field] = bucket.get(field, 0) + n
        return out

    def points(self, month="2026-11"):
        return {
            w: r["points"] for w, r in sc.worker_points(self.counters.get(("points", month), {}), {}, self.cfg).items()
        }

    def assess(self, dept, period="month:2026-11"):
        return sc.assessment(self.counters.get(("assess", period, dept), {}), self.cfg)


def test_demo_manifests_are_valid():
    for tid in (QINLING, JINCHENG):
        t = registry().tenants[tid]
        assert sc.check_manifest(t.source, t) == []
        assert sc.parse_config(t.source, t).rules["overdue"].points < 0


def test_manifest_problems_name_the_path():
    t = registry().tenants[QINLING]
    doc = {
        "scoring": {
            "points": {"bribes": {"points": 5}, "on_time": {"points": 1, "monthly_cap": 0}},
            "risk": {"thresholds": {"red": 5, "orange": 8, "yellow": 3, "blue": 1}},
            "key_persons": {"999999-001-001-001": 2, GRID: -1},
            "timezone": "CST",
            "colour": 1,
        }
    }
    paths = {p for p, _ in sc.check_manifest(doc, t)}
    assert paths == {
        "scoring.points.bribes",
        "scoring.points.on_time.monthly_cap",
        "scoring.risk.thresholds",
        "scoring.key_persons.999999-001-001-001",
        f"scoring.key_persons.{GRID}",
        "scoring.timezone",
        "scoring.colour",
    }
    with pytest.raises(ValueError, match="scoring.timezone"):
        sc.parse_config(doc, t)
    assert sc.check_manifest({}, t) == [] and sc.parse_config({}).rules["grid_resolved"].points == 3


def test_a_rule_stops_adding_at_its_monthly_cap():
    rule = sc.Rule(points=2, monthly_cap=60)
    assert [rule.total(n) for n in (0, 1, 29, 30, 31, 100)] == [0, 2, 58, 60, 60, 60]
    assert sc.Rule(points=-2, monthly_cap=20).total(15) == -20  # a deduction is capped too
    cfg = _cfg()
    counts = {"GW-1|report_verified": 45, "GW-1|overdue": 3, "GW-2|satisfied": 2, "GW-2|unknown_rule": 9}
    rows = sc.worker_points(counts, {"GW-2": -5, "GW-3": 4}, cfg)
    assert rows["GW-1"] == {"rules": {"report_verified": 60, "overdue": -6}, "adjusted": 0, "points": 54}
    assert rows["GW-2"]["points"] == 2 - 5 and rows["GW-3"]["points"] == 4


def test_a_full_grid_case_earns_each_rule_once():
    mem = Memory(_cfg())
    story = Story("c-1", grid=GRID).full("urban_management", level="grid", by="GW-7")
    for e in story.events:
        mem.apply(as_event(e))
    # reporter GW-1 (report verified), the verifying worker GW-7 (resolved in the grid, on time, satisfied)
    assert mem.points() == {"GW-1": 2, "GW-7": 3 + 1 + 1}
    assert sc.grid_points(mem.counters[("grid_points", "2026-11")], mem.cfg) == {GRID: 2 + 3 + 1 + 1}
    row = mem.assess("urban_management")
    assert (row["received"], row["closed_fixed"], row["closed_not_fixed"]) == (1, 1, 0)
    assert row["closure_rate"] == 1.0 and row["on_time_rate"] == 1.0 and row["satisfaction_rate"] == 1.0
    assert row["avg_ack_seconds"] == 600 and row["avg_resolve_seconds"] == 70 * 60
    assert row["score"] == 100.0
    assert mem.assess("urban_management", "week:2026-W46")["received"] == 1


def test_redelivery_changes_nothing():
    mem = Memory(_cfg())
    story = Story("c-2").full("urban_management")
    for e in story.events:
        mem.apply(as_event(e))
    before = copy.deepcopy(mem.counters)
    for e in story.events:
        assert mem.apply(as_event(e)).duplicate
    assert mem.counters == before


def test_fixed_and_not_fixed_are_counted_apart_and_returns_leave_the_cohort():
    mem = Memory(_cfg())
    a = Story("c-a", grid=GRID).full("market_regulation", level="community")
    b = Story("c-b", grid=GRID)
    b.registered(), b.dispatched("market_regulation", "urban_management", level="street")
    b.work_order("urban_management", "return")
    b.work_order("market_regulation", "accept", minutes=50)  # acknowledge due after 30 minutes: late
    b.closed(outcome="not_fixed", on_time=False, satisfied=None)
    c = Story("c-c", grid=GRID)
    c.registered(), c.dispatched("market_regulation", level="community"), c.work_order("market_regulation", "accept")
    c.work_order("market_regulation", "resolve", minutes=700)  # resolve due after 600 minutes: late
    c.resolved(), c.verified(), c.reopened()
    for story in (a, b, c):
        for e in story.events:
            mem.apply(as_event(e))
    mr = mem.assess("market_regulation")
    assert (mr["received"], mr["closed_fixed"], mr["closed_not_fixed"]) == (3, 1, 1)
    assert mr["closure_rate"] == round(1 / 3, 4) and mr["not_fixed_rate"] == round(1 / 3, 4)
    assert mr["ack_on_time_rate"] == round(2 / 3, 4) and mr["on_time_rate"] == 0.5
    assert (mr["satisfied"], mr["unsatisfied"], mr["no_answer"]) == (1, 1, 1) and mr["satisfaction_rate"] == 0.5
    um = mem.assess("urban_management")
    assert (um["received"], um["returned"], um["return_rate"], um["closed_not_fixed"]) == (1, 1, 1.0, 0)
    assert um["closure_rate"] is None and um["score"] is None  # nothing left to judge it on


def test_overdue_in_the_grid_deducts_from_the_grid_worker_not_after_escalation():
    mem = Memory(_cfg(grid_workers={GRID: "GW-9"}))
    s = Story("c-3", grid=GRID, reporter={"kind": "citizen", "id": "12345-1", "phone": "13800000000"})
    s.registered(), s.dispatched("urban_management", level="grid")
    s.supervised("overdue_acknowledge")
    s.escalated("community")
    s.supervised("overdue_acknowledge")  # at community level: the department is assessed, not the worker
    for e in s.events:
        mem.apply(as_event(e))
    assert mem.points() == {"GW-9": -2}
    assert mem.assess("urban_management")["supervised"] == 2


def test_worker_of_prefers_who_verified_then_the_roster_then_a_reporting_grid_worker():
    cfg = _cfg(grid_workers={GRID: "GW-R"})
    state = {**sc.new_state(), "grid": GRID, "reporter": {"kind": "grid_worker", "id": "GW-1"}}
    assert sc.worker_of(state, {"verified_by": "GW-V"}, cfg) == "GW-V"
    assert sc.worker_of(state, {}, cfg) == "GW-R"
    assert sc.worker_of(state, {}, _cfg()) == "GW-1"
    assert sc.worker_of({**state, "reporter": {"kind": "citizen", "id": "x"}}, {}, _cfg()) is None


def test_points_and_assessments_do_not_depend_on_how_cases_interleave():
    def stories():
        out = []
        for i in range(12):
            s = Story(
                f"c-{i}",
                grid=f"410102-001-00{1 + i % 3}-001",
                severity=("minor", "major")[i % 2],
                reporter={"kind": "grid_worker", "id": f"GW-{i % 4}"},
            )
            s.full(
                ("urban_management", "market_regulation")[i % 2],
                level=("grid", "community")[i % 2],
                by=f"GW-{i % 4}",
                satisfied=(True, None, False)[i % 3],
                on_time=i % 5 != 0,
            )
            out.append(s.events)
        return out

    def run(order):
        mem = Memory(_cfg())
        for e in order:
            mem.apply(as_event(e))
        return mem.counters, {k: sc.contribution(v, mem.cfg) for k, v in mem.states.items()}

    histories = stories()
    in_order = run([e for h in histories for e in h])
    rng = random.Random(4)
    queues, interleaved = [list(h) for h in histories], []
    while any(queues):
        q = rng.choice([q for q in queues if q])
        interleaved.append(q.pop(0))
        if rng.random() < 0.3:
            interleaved.append(interleaved[-1])  # a redelivery
    assert run(interleaved) == in_order


def test_one_cases_events_score_the_same_in_any_order():
    """scoring consumes case.* and work_order.* on two queues and redeliveries come late, so a
    case's own events reach it in any order. make chaos found an overdue deduction that went to
    whoever verified the case when case.verified happened to be applied before the overdue
    case.supervised, and to no one (a citizen's report, no rostered worker) otherwise."""
    s = Story("c-9", grid=GRID, reporter={"kind": "citizen", "id": "12345-9", "phone": "13800000000"})
    s.registered(), s.dispatched("urban_management", level="grid")
    s.supervised("overdue_acknowledge")
    s.work_order("urban_management", "accept"), s.work_order("urban_management", "resolve")
    s.resolved(), s.verified("GW-V"), s.closed(satisfied=True)

    def run(order):
        mem = Memory(_cfg())
        for e in order:
            mem.apply(as_event(e))
        return mem.counters, sc.contribution(mem.states["c-9"], mem.cfg)

    in_order = run(s.events)
    assert in_order[0][("points", "2026-11")] == {"GW-V|grid_resolved": 1, "GW-V|on_time": 1, "GW-V|satisfied": 1}
    rng = random.Random(9)
    for _ in range(50):
        order = list(s.events)
        rng.shuffle(order)
        assert run(order) == in_order


def test_months_and_weeks_are_local_time():
    tz = _cfg().tz
    ts = sc.epoch("2026-11-30T17:30:00Z")  # 01:30 on 1 December in China
    assert sc.periods(ts, tz) == ("month:2026-12", "week:2026-W49")
    assert sc.epoch(1_700_000_000) == 1_700_000_000.0 and sc.epoch("2026-11-10T09:00:00+08:00") == sc.epoch(
        "2026-11-10T01:00:00Z"
    )


def test_five_colours_from_open_cases_overdue_and_key_persons():
    cfg = _cfg(key_persons={GRID: 5})
    assert cfg.thresholds == {"red": 24, "orange": 16, "yellow": 8, "blue": 3}
    assert sc.colour_of(sc.grid_score([], GRID, cfg), cfg) == "blue"  # five key persons
    assert sc.colour_of(sc.grid_score([], "410102-001-001-002", cfg), cfg) == "green"
    s = Story("c-9", grid=GRID, severity="critical")
    state = None
    for e in (s.registered(), s.dispatched("emergency_management", level="county")):
        state = sc.apply(state, as_event(e), cfg).state
    assert sc.contribution(state, cfg) == 8 and sc.colour_of(sc.grid_score([8], GRID, cfg), cfg) == "yellow"
    state = sc.apply(state, as_event(s.supervised("overdue_resolve")), cfg).state
    assert sc.contribution(state, cfg) == 16  # overdue: doubled
    assert sc.colour_of(sc.grid_score([16], GRID, cfg), cfg) == "orange"  # 16 + 5 key persons
    assert sc.colour_of(sc.grid_score([16, 4], GRID, cfg), cfg) == "red"
    state = sc.apply(state, as_event(s.resolved()), cfg).state
    assert sc.contribution(state, cfg) == 0  # handled: no longer a risk
    state = sc.apply(state, as_event(s.reopened()), cfg).state
    assert sc.contribution(state, cfg) == 8  # back, and no longer overdue until supervised again


def test_rankings_share_places_on_ties():
    rows = sc.rank({"b": 5, "a": 5, "c": 9, "d": 1, "e": None}, limit=3)
    assert [(r["rank"], r["name"], r["score"]) for r in rows] == [(1, "c", 9), (2, "a", 5), (2, "b", 5)]


def test_read_event_takes_the_snapshot_or_wraps_a_bare_work_order():
    headers = {"ce-id": "x1", "ce-type": "work_order.accepted", "ce-time": "2026-11-10T01:00:00Z"}
    e = sc.read_event(headers, b'{"id": "w-1", "case_id": "c-1", "department": "water", "status": "accepted"}')
    assert e.data["id"] == "c-1" and e.data["work_order"]["department"] == "water"
    e = sc.read_event({"CE-ID": "x2"}, b'{"id": "c-1", "status": "registered"}', "case.registered")
    assert (e.id, e.type, e.data["id"]) == ("x2", "case.registered", "c-1")
    with pytest.raises(ValueError):
        sc.read_event({}, b"{}")


def test_a_workers_grid_is_where_most_points_were_earned_whatever_the_order():
    from onegrid.domain.scoring import home_grids

    counts = {
        "GW-1|410102-001-001-002": 3,
        "GW-1|410102-001-001-001": 5,
        "GW-2|410102-001-002-001": 2,
        "GW-2|410102-001-001-003": 2,
    }
    assert home_grids(counts) == {"GW-1": "410102-001-001-001", "GW-2": "410102-001-001-003"}
    assert home_grids(dict(reversed(list(counts.items())))) == home_grids(counts)
