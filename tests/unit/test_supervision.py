"""Deadlines, escalation, duplicates and the citizen's word: the pure rules."""

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from onegrid.domain import supervision as sv
from onegrid.domain.calendar import WEEKENDS_ONLY, Schedule

from .helpers import QINLING, registry


def _tenant(**lifecycle):
    t = registry().tenants[QINLING]
    return dataclasses.replace(t, source={**t.source, "lifecycle": lifecycle})


def test_deadlines_come_from_the_first_matching_rule_and_scale():
    t, now = _tenant(), 1_780_000_000.0
    ack, res = sv.deadlines(t, "fire_hazard", "critical", Schedule(WEEKENDS_ONLY), now)
    assert (ack, res) == (300, 7200)  # the manifest's fire_hazard/critical rule: 5m and 2h
    assert sv.deadlines(t, "fire_hazard", "critical", Schedule(WEEKENDS_ONLY, scale=60), now) == (5, 120)
    assert sv.deadlines(t, "other", "minor", Schedule(WEEKENDS_ONLY), now)[0] == 4 * 3600
    assert [str(s) for s in sv.deadline_spans(t, "fire_hazard", "critical")] == ["5m", "2h"]


def test_a_working_day_deadline_is_found_on_the_calendar_then_scaled():
    t = _tenant()
    rule = dataclasses.replace(t.deadlines[0], values={"acknowledge": "4wh", "resolve": "2wd"})
    wd = dataclasses.replace(t, deadlines=[rule])
    friday_4pm = datetime(2026, 2, 13, 16, 0, tzinfo=timezone(timedelta(hours=8))).timestamp()  # 春节 next
    ack, res = sv.deadlines(wd, "fire_hazard", "critical", Schedule(WEEKENDS_ONLY), friday_4pm)
    assert ack == (3 * 24 - 5) * 3600  # 1.5h on Friday, then 2.5h on Monday: 11:00
    assert res == (24 * 4 + 1.5) * 3600  # close of Tuesday 17:30 (weekends only: no holidays)
    scaled = sv.deadlines(wd, "fire_hazard", "critical", Schedule(WEEKENDS_ONLY, scale=3600), friday_4pm)
    assert scaled == (ack / 3600, res / 3600)


def test_a_deadline_that_is_not_a_duration_is_refused_not_divided():
    t = _tenant()
    rule = dataclasses.replace(t.deadlines[0], values={"acknowledge": "soon", "resolve": "2h"})
    broken = dataclasses.replace(t, deadlines=[rule])
    with pytest.raises(ValueError, match="not a duration: 'soon'"):
        sv.deadline_spans(broken, "fire_hazard", "critical")


def test_the_ladder_and_its_top():
    t = _tenant()
    assert [t.next_level(x) for x in ("grid", "community", "street", "county")] == [
        "community",
        "street",
        "county",
        None,
    ]
    assert t.is_higher("street", "grid") and not t.is_higher("grid", "grid")
    assert t.top == "county"


def _wo(status="dispatched"):
    return {"id": "w", "status": status, "ack_span": 600, "resolve_span": 86400}


def test_an_overdue_acknowledgement_escalates_one_rung_and_rearms():
    verdict = sv.on_due(_tenant(), "acknowledge", _wo(), {"status": "dispatched", "level": "grid"})
    assert verdict == sv.Overdue("overdue_acknowledge", "community", 600)
    top = sv.on_due(_tenant(), "resolve", _wo("accepted"), {"status": "in_progress", "level": "county"})
    assert top == sv.Overdue("overdue_resolve", None, None)  # the county stays flagged


def test_a_deadline_that_no_longer_matters_is_moot():
    assert sv.on_due(_tenant(), "acknowledge", _wo("accepted"), {"status": "in_progress", "level": "grid"}) is None
    assert sv.on_due(_tenant(), "resolve", _wo("resolved"), {"status": "resolved", "level": "grid"}) is None
    assert sv.on_due(_tenant(), "resolve", _wo("cancelled"), {"status": "closed", "level": "grid"}) is None


def test_reopen_then_county():
    pol = sv.Policy(max_reopens=2)
    assert sv.after_not_satisfied({"reopen_count": 0}, pol) == "reopen"
    assert sv.after_not_satisfied({"reopen_count": 1}, pol) == "reopen"
    assert sv.after_not_satisfied({"reopen_count": 2}, pol) == "top"


def test_policy_from_the_manifest_and_its_checks():
    dup = {"window": "10m", "distance_m": 50, "auto_merge": 0.9, "suggest": 0.5}
    pol = sv.policy(_tenant(feedback_window="2d", max_reopens=1, duplicates=dup))
    assert pol == sv.Policy(2 * 86400, 1, 600, 50.0, 0.9, 0.5)
    assert sv.policy(_tenant()) == sv.Policy()
    problems = sv.check_policy(
        {
            "feedback_window": "soon",
            "max_reopens": -1,
            "duplicates": {"window": "x", "auto_merge": 0.4, "suggest": 0.6, "radius": 1},
            "colour": 1,
        }
    )
    assert [p for p, _ in problems] == [
        "lifecycle.colour",
        "lifecycle.feedback_window",
        "lifecycle.max_reopens",
        "lifecycle.duplicates.window",
        "lifecycle.duplicates.radius",
        "lifecycle.duplicates.suggest",
    ]
    assert [p for p, _ in sv.check_policy({"duplicates": {"auto_merge": 1.5, "suggest": True}})] == [
        "lifecycle.duplicates.suggest",
        "lifecycle.duplicates.auto_merge",
    ]


def test_timer_members_round_trip():
    assert sv.parse_member(sv.member("acknowledge", "w-1-water")) == ("acknowledge", "w-1-water")
