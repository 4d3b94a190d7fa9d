"""Escalation reaches an office (onegrid.domain.ladder through onegrid.domain.casework): the
item the new level's office receives, its acknowledge and act deadlines per rung, the climb
when one is missed, the office's actions, and who below is told. Pure: no Redis."""

from __future__ import annotations

import pytest

from onegrid.domain import casework as cw
from onegrid.domain import ladder as ld
from onegrid.domain.lifecycle import TransitionRefused

from .helpers import QINLING, registry
from .test_casework_rules import GRID, NOW, _after, _case, _ctx, _types, _wo

TENANT = registry().tenants[QINLING]


def _escalated():
    """A case whose acknowledge deadline passed at the grid: the community's office has it."""
    case = _case()
    [wo] = wos = [_wo(case)]
    ctx = _ctx(wo.ack_due + 1)
    ch = cw.overdue(ctx, case, wos, "acknowledge", wo.id, wo.ack_due)
    case, wos = _after(case, wos, ch)
    return case, wos, ch, ctx


def test_the_new_levels_office_receives_an_item_on_its_queue():
    case, _, ch, ctx = _escalated()
    [item] = ld.items_of(case)
    community = TENANT.ancestor(GRID, "community").code
    assert (item.level, item.unit, item.office, item.status) == ("community", community, "社区居委会", "open")
    assert item.due == ctx.now + TENANT.rung("community").acknowledge.seconds  # the rung's own deadline
    assert ch.offices == {item.id: (community, ctx.now)}
    escalated = dict(ch.events)["case.escalated"]
    assert escalated["item"]["id"] == item.id
    # the grid's worker is told that the case left their grid
    assert escalated["told"] == [{"level": "grid", "unit": GRID}]


def test_an_unacknowledged_item_sends_the_case_up_and_is_passed_up():
    case, wos, _, ctx = _escalated()
    [item] = ld.items_of(case)
    late = _ctx(item.due + 1)
    ch = cw.office_due(late, case, wos, item.id, item.due)
    assert _types(ch) == ["case.supervised", "case.escalated"]
    assert dict(ch.events)["case.supervised"]["reason"] == "office_unacknowledged"
    case, wos = _after(case, wos, ch)
    old, new = ld.items_of(case)
    assert (old.status, old.fired) == ("passed_up", item.due)
    assert (new.level, new.status, new.reason) == ("street", "open", "office_unacknowledged")
    street = TENANT.ancestor(GRID, "street").code
    assert ch.offices == {old.id: (old.unit, None), new.id: (street, late.now)}
    assert ch.timers[("office", old.id)] is None and ch.timers[("office", new.id)] == new.due
    told = dict(ch.events)["case.escalated"]["told"]
    assert told == [{"level": "grid", "unit": GRID}, {"level": "community", "unit": old.unit}]
    # the same deadline again (a timer fires at least once): nothing
    assert cw.office_due(late, case, wos, item.id, item.due).events == []


def test_acknowledged_then_the_act_deadline_runs_and_acting_ends_it():
    case, wos, _, ctx = _escalated()
    [item] = ld.items_of(case)
    ch = cw.office_acknowledge(_ctx(ctx.now + 60), case, wos, item.id, "community-officer-3")
    case, wos = _after(case, wos, ch)
    [acked] = ld.items_of(case)
    assert acked.status == "acknowledged" and acked.acknowledged_by == "community-officer-3"
    assert acked.due == ctx.now + 60 + TENANT.rung("community").act.seconds
    assert ch.timers == {("office", item.id): acked.due}
    assert ch.timeline[0][1]["action"] == "acknowledge_escalation"
    with pytest.raises(TransitionRefused, match="only|cannot acknowledge"):
        cw.office_acknowledge(ctx, case, wos, item.id, "again")
    # the act deadline passing without an act: up to the street
    missed = cw.office_due(_ctx(acked.due + 1), case, wos, item.id, acked.due)
    assert dict(missed.events)["case.supervised"]["reason"] == "office_did_not_act"
    # ... or the office whistles departments in: acted, off its queue, no timer left
    ch = cw.office_act(_ctx(ctx.now + 120), case, wos, item.id, "community-officer-3", "whistle", "", ["water"])
    assert _types(ch) == ["case.whistled", "case.dispatch_requested"]
    case, wos = _after(case, wos, ch)
    [done] = ld.items_of(case)
    assert (done.status, done.action, done.acted_by) == ("acted", "whistle", "community-officer-3")
    assert ch.offices == {item.id: (item.unit, None)} and ch.timers == {("office", item.id): None}
    assert cw.office_due(_ctx(acked.due + 1), case, wos, item.id, acked.due).events == []  # moot now


def test_the_office_may_close_not_fixed_or_take_over_and_nothing_else():
    case, wos, _, ctx = _escalated()
    [item] = ld.items_of(case)
    with pytest.raises(TransitionRefused, match="needs a reason"):
        cw.office_act(ctx, case, wos, item.id, "c", "close_not_fixed")
    ch = cw.office_act(ctx, case, wos, item.id, "c", "close_not_fixed", "out of our hands")
    after, _ = _after(case, wos, ch)
    assert after.status == "closed" and after.outcome == "not_fixed"
    assert ld.items_of(after)[0].status == "acted"
    took = cw.office_act(ctx, case, wos, item.id, "c", "take_over")
    assert (
        took.timeline[0][1]["action"] == "take_over"
        and ld.items_of(_after(case, wos, took)[0])[0].action == "take_over"
    )
    with pytest.raises(TransitionRefused, match="unknown office action"):
        cw.office_act(ctx, case, wos, item.id, "c", "shrug")
    with pytest.raises(LookupError):
        cw.office_act(ctx, case, wos, "e-0000000000000001-street", "c", "take_over")


def test_a_closed_case_closes_its_item_and_the_top_stays_flagged():
    case, wos, _, ctx = _escalated()
    [item] = ld.items_of(case)
    ch = cw.case_act(ctx, case, wos, "close_not_fixed", "cc", "no")
    after, _ = _after(case, wos, ch)
    assert ld.items_of(after)[0].status == "closed" and ch.offices == {item.id: (item.unit, None)}
    # at the top there is no higher office: the missed deadline flags the case, no climb
    top = _case(level="county")
    [wo] = twos = [_wo(top)]
    climbed = cw.whistle(ctx, _case(), twos, "cc", "county", [], "to the centre")
    top, twos = _after(_case(), twos, climbed)
    [county_item] = ld.items_of(top)
    assert county_item.office == TENANT.rung("county").office
    ch = cw.office_due(_ctx(county_item.due + 1), top, twos, county_item.id, county_item.due)
    assert _types(ch) == ["case.supervised"] and ch.level is None and ch.overdue is True


def test_item_ids_name_their_case():
    assert ld.case_of(ld.item_id("c-00000000000000ab", "street")) == "c-00000000000000ab"
    for bad in ("x", "e-1-street", "w-0000000000000001-water-x"):
        with pytest.raises(LookupError):
            ld.case_of(bad)


# -- the grid worker's on-site arrival ------------------------------------------------------
def test_a_check_in_on_time_or_late_against_the_arrival_deadline():
    case = _case(arrival_due=NOW + 600)
    wos = [_wo(case)]
    on_time = cw.check_in(_ctx(NOW + 300), case, wos, "gw-1", 34.75, 113.6)
    line = on_time.timeline[0][1]
    assert (line["action"], line["late"], line["location"]) == ("check_in", False, {"lat": 34.75, "lon": 113.6})
    assert on_time.case["arrival_late"] is False and on_time.timers == {("arrival", case.id): None}
    assert on_time.counters == {"arrivals_on_time": 1}
    late = cw.check_in(_ctx(NOW + 900), case, wos, "gw-1", 34.75, 113.6)
    assert late.case["arrival_late"] is True and "late by 5 min" in late.timeline[0][1]["note"]
    after, _ = _after(case, wos, on_time)
    with pytest.raises(TransitionRefused, match="checked in already"):
        cw.check_in(_ctx(NOW + 400), after, wos, "gw-1", 34.75, 113.6)


def test_the_arrival_deadline_passing_without_a_check_in_is_said_once():
    case = _case(arrival_due=NOW + 600)
    wos = [_wo(case)]
    ch = cw.arrival_due(_ctx(NOW + 601), case, wos, NOW + 600)
    assert ch.timeline[0][1]["action"] == "arrival_overdue" and ch.counters == {"arrivals_missed": 1}
    after, _ = _after(case, wos, ch)
    assert cw.arrival_due(_ctx(NOW + 601), after, wos, NOW + 600).timeline == []  # fired already
    arrived, _ = _after(case, wos, cw.check_in(_ctx(NOW + 10), case, wos, "gw-1", 34.75, 113.6))
    assert cw.arrival_due(_ctx(NOW + 601), arrived, wos, NOW + 600).timeline == []  # on site in time


def test_the_arrival_span_comes_from_the_manifest():
    from onegrid.domain import supervision as sv

    t = registry().tenants[QINLING]
    assert sv.policy(t).arrival == 600  # ten minutes unless the manifest says otherwise
    assert sv.check_policy({"arrival": "soon"}) == [("lifecycle.arrival", "must be a duration like 10m (clock time)")]


def test_an_items_office_is_the_grids_unit_at_its_level():
    item = ld.item_id("c-0123456789abcdef", "street")
    assert ld.office_unit(TENANT, item, GRID) == TENANT.ancestor(GRID, "street").code
    with pytest.raises(LookupError):
        ld.office_unit(TENANT, "e-0123456789abcdef-district", GRID)  # no such level in this tree
    with pytest.raises(LookupError):
        ld.office_unit(TENANT, "e-junk-street", GRID)
