"""Deadlines, escalation, duplicates and the citizen's word: the pure rules."""
import dataclasses

from onegrid.domain import supervision as sv

from .helpers import QINLING, registry


def _tenant(**lifecycle):
    t = registry().tenants[QINLING]
    return dataclasses.replace(t, source={**t.source, "lifecycle": lifecycle})


def test_deadlines_come_from_the_first_matching_rule_and_scale():
    t = _tenant()
    ack, res = sv.deadlines(t, "fire_hazard", "critical")
    assert (ack, res) == (300, 7200)  # the manifest's fire_hazard/critical rule: 5m and 2h
    assert sv.deadlines(t, "fire_hazard", "critical", scale=60) == (5, 120)
    assert sv.deadlines(t, "other", "minor")[0] == 4 * 3600


def test_the_ladder_and_its_top():
    assert [sv.next_level(x) for x in ("grid", "community", "street", "county")] == ["community", "street", "county",
                                                                                      None]
    assert sv.is_higher("street", "grid") and not sv.is_higher("grid", "grid")


def _wo(status="dispatched"):
    return {"id": "w", "status": status, "ack_span": 600, "resolve_span": 86400}


def test_an_overdue_acknowledgement_escalates_one_rung_and_rearms():
    verdict = sv.on_due("acknowledge", _wo(), {"status": "dispatched", "level": "grid"})
    assert verdict == sv.Overdue("overdue_acknowledge", "community", 600)
    top = sv.on_due("resolve", _wo("accepted"), {"status": "in_progress", "level": "county"})
    assert top == sv.Overdue("overdue_resolve", None, None)  # the county stays flagged


def test_a_deadline_that_no_longer_matters_is_moot():
    assert sv.on_due("acknowledge", _wo("accepted"), {"status": "in_progress", "level": "grid"}) is None
    assert sv.on_due("resolve", _wo("resolved"), {"status": "resolved", "level": "grid"}) is None
    assert sv.on_due("resolve", _wo("cancelled"), {"status": "closed", "level": "grid"}) is None


def test_reopen_then_county():
    pol = sv.Policy(max_reopens=2)
    assert sv.after_not_satisfied({"reopen_count": 0}, pol) == "reopen"
    assert sv.after_not_satisfied({"reopen_count": 1}, pol) == "reopen"
    assert sv.after_not_satisfied({"reopen_count": 2}, pol) == "county"


def test_policy_from_the_manifest_and_its_checks():
    pol = sv.policy(_tenant(feedback_window="2d", max_reopens=1, duplicates={"window": "10m", "distance_m": 50}))
    assert pol == sv.Policy(2 * 86400, 1, 600, 50.0)
    assert sv.policy(_tenant()) == sv.Policy()
    problems = sv.check_policy({"feedback_window": "soon", "max_reopens": -1, "duplicates": {"window": "x"},
                                "colour": 1})
    assert [p for p, _ in problems] == ["lifecycle.colour", "lifecycle.feedback_window", "lifecycle.max_reopens",
                                        "lifecycle.duplicates.window"]


def _c(id, at, grid="g1", category="public_order", location=None, status="registered"):
    return {"id": id, "at": at, "grid": grid, "category": category, "location": location, "status": status}


def test_a_duplicate_merges_into_the_earliest_open_case():
    pol = sv.Policy(duplicate_window=1800, duplicate_distance_m=100)
    first, second = _c("c-1", 1000), _c("c-2", 1100)
    mine = _c("c-3", 1200)
    assert sv.find_primary(mine, [second, first, mine], pol) == first
    assert sv.find_primary(first, [first, second, mine], pol) is None  # the earliest is its own primary


def test_not_a_duplicate_when_far_late_other_category_or_closed():
    pol = sv.Policy(duplicate_window=1800, duplicate_distance_m=100)
    here, near, far = {"lat": 34.75, "lon": 113.62}, {"lat": 34.7505, "lon": 113.6205}, {"lat": 34.76, "lon": 113.62}
    mine = _c("c-9", 5000, grid="g2", location=here)
    assert sv.find_primary(mine, [_c("c-1", 4900, grid="g1", location=near)], pol)["id"] == "c-1"  # ~70 m
    assert sv.find_primary(mine, [_c("c-1", 4900, grid="g1", location=far)], pol) is None          # ~1.1 km
    assert sv.find_primary(mine, [_c("c-1", 1000, grid="g2")], pol) is None                       # out of window
    assert sv.find_primary(mine, [_c("c-1", 4900, grid="g2", category="pollution")], pol) is None
    assert sv.find_primary(mine, [_c("c-1", 4900, grid="g2", status="closed")], pol) is None


def test_timer_members_round_trip():
    assert sv.parse_member(sv.member("acknowledge", "w-1-water")) == ("acknowledge", "w-1-water")
