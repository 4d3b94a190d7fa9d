"""Simulator.plan(): pure planning. Every planned event must get exactly the outcome it plans."""

from collections import Counter
from functools import cache

import pytest

from onegrid.adapters.geo import ShapelyLocator
from onegrid.domain.intake import Accepted, RawEvent, Rejected, admit
from sim.simulator import BAD_KINDS, QINLING_MIX, Simulator

from .helpers import JINCHENG, QINLING, registry

UNUSED = "amqp://unused/"  # constructing and planning never connect


def _sim(tid=QINLING, seed=7, run_id="unit"):
    return Simulator(registry().tenants[tid], UNUSED, registry=registry(), seed=seed, run_id=run_id)


@cache
def _locator(tid: str) -> ShapelyLocator:
    return ShapelyLocator(registry().tenants[tid].geography)


def _admit(p, tid=QINLING):
    raw = RawEvent(p.body, p.headers, p.content_type, p.routing_key)
    return admit(raw, registry().tenants[tid], registry(), locate=_locator(tid).covering)


@pytest.fixture(scope="module")
def big_plans():
    return {tid: _sim(tid).plan(3000, bad_every=50) for tid in (QINLING, JINCHENG)}


@pytest.mark.parametrize("tid", [QINLING, JINCHENG])
def test_every_planned_event_gets_its_planned_outcome(tid):
    plan = _sim(tid, seed=3).plan(1000, bad_every=10)
    for p in plan:
        result = _admit(p, tid)
        if p.expect == "case":
            assert isinstance(result, Accepted), (p.routing_key, result)
            assert result.category == p.category
            assert result.envelope.department == p.department == p.routing_key.split(".")[0]
        else:
            assert isinstance(result, Rejected), (p.expect, result)
            assert result.reason == p.expect, (p.expect, result)
            assert result.department == p.department, (p.expect, result)


def test_the_big_plan_admits_as_planned(big_plans):
    for tid, plan in big_plans.items():
        outcomes = Counter()
        for p in plan:
            result = _admit(p, tid)
            got = "case" if isinstance(result, Accepted) else result.reason
            assert got == p.expect, (tid, p.event_id, p.expect, result)
            if isinstance(result, Accepted):
                assert result.category == p.category
            else:
                assert result.department == p.department
            outcomes[got] += 1
        assert outcomes["case"] == 3000 - 60
        assert all(outcomes[kind] == 6 for kind in BAD_KINDS)


def test_bad_events_cover_every_bad_kind_in_order():
    plan = _sim().plan(100, bad_every=5)
    bad = [p for p in plan if p.expect != "case"]
    assert [i for i, p in enumerate(plan) if p.expect != "case"] == list(range(4, 100, 5))
    assert [p.expect for p in bad] == [BAD_KINDS[i % len(BAD_KINDS)] for i in range(20)]
    assert all(p.category is None for p in bad)


def test_plan_without_bad_events():
    plan = _sim().plan(200)
    assert all(p.expect == "case" and p.category for p in plan)


def test_planned_events_carry_unique_ids_and_matching_headers():
    plan = _sim(run_id="r1").plan(300, bad_every=7)
    assert [p.event_id for p in plan] == [f"sim-r1-{i}" for i in range(1, 301)]
    for p in plan:
        if "ce-id" in p.headers:
            assert p.headers["ce-id"] == p.event_id
        if p.expect == "case":
            assert p.headers["ce-type"] == p.routing_key and p.headers["ce-tenant"] == QINLING
            assert p.headers["ce-department"] == p.department


def test_same_seed_same_plan():
    def shape(plan):
        return [(p.routing_key, p.expect, p.department, p.category, p.headers.get("ce-subject")) for p in plan]

    assert shape(_sim(seed=5).plan(300, 10)) == shape(_sim(seed=5).plan(300, 10))
    assert shape(_sim(seed=5).plan(300, 10)) != shape(_sim(seed=6).plan(300, 10))


def test_all_sixteen_departments_appear_in_3000_events(big_plans):
    for tid, plan in big_plans.items():
        departments = {p.department for p in plan if p.expect == "case"}
        assert departments == set(registry().departments), (tid, set(registry().departments) - departments)


def test_all_sixteen_departments_appear_in_3000_events_for_any_seed():
    for seed in range(1, 6):
        departments = {p.department for p in _sim(seed=seed).plan(3000)}
        assert departments == set(registry().departments), seed


def test_category_mix_follows_qinling(big_plans):
    total_weight = sum(QINLING_MIX.values())
    for tid, plan in big_plans.items():
        cats = Counter(p.category for p in plan if p.expect == "case")
        n = sum(cats.values())
        assert cats.most_common(1)[0][0] == "illegal_business", (tid, cats.most_common(3))
        for category, weight in QINLING_MIX.items():
            expected = weight * 0.85 / total_weight
            assert abs(cats[category] / n - expected) < 0.03, (tid, category, cats[category] / n, expected)
        rest = sum(c for cat, c in cats.items() if cat not in QINLING_MIX) / n
        assert 0.11 < rest < 0.19, (tid, rest)
        assert set(cats) <= set(registry().categories)


def test_general_reporters_speak_about_a_third():
    plan = _sim().plan(3000)
    general = sum(
        p.routing_key in ("governance.grid_report_submitted", "governance.hotline_order_received") for p in plan
    )
    assert 0.25 < general / len(plan) < 0.45


def test_reports_with_a_location_stand_inside_their_grid_and_some_give_only_the_location():
    from shapely import Point

    sim = _sim(seed=3)
    shapes = sim.shapes
    placed = 0
    for _ in range(300):
        p = sim.good()
        data = __import__("json").loads(p.body)
        if "location" not in data:
            continue
        where = Point(data["location"]["lon"], data["location"]["lat"])
        result = _admit(p)
        assert isinstance(result, Accepted) and shapes[result.grid].contains(where)
        placed += "grid" not in data
    assert 10 < placed < 60  # about a fifth of the half that carry a location
