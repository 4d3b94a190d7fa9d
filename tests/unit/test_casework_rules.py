"""The case lifecycle's decisions (onegrid.domain.casework) without Redis: what each operation
changes, what it announces and what it refuses."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from onegrid.adapters.calendar import CHINA
from onegrid.domain import casework as cw
from onegrid.domain import timeline as tl
from onegrid.domain.cases import Case, WorkOrder, new_work_order
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.routing import Decision
from onegrid.domain.supervision import Policy
from onegrid.domain.timeline import genesis

from .helpers import QINLING, registry

GRID = "410102-001-001-001"
NOW = 1_000_000.0
SPANS = (600.0, 3600.0)


def _ctx(now: float = NOW, max_reopens: int = 1, scale: float = 1.0) -> cw.Context:
    pol = Policy(max_reopens=max_reopens, feedback_window=3600)
    return cw.Context(registry().tenants[QINLING], pol, now, f"t{now:.0f}", scale)


def _case(status: str = "dispatched", level: str = "grid", **more) -> Case:
    more = {"reopen_count": 0, **more}
    return Case(
        id="c-0000000000000001",
        department="market_regulation",
        event_id="e1",
        category="illegal_business",
        severity="minor",
        grid=GRID,
        summary="s",
        reporter={"kind": "citizen", "id": "r1"},
        location=None,
        status=status,
        at=1000.0,
        level=level,
        **more,
    )


def _wo(case: Case, department: str = "market_regulation", status: str = "dispatched", **more) -> WorkOrder:
    decision = Decision(case.level or "grid", GRID, (department,), (), 0, "rule")
    rec = new_work_order(case.to_record(), department, decision, "rule", "t", SPANS, NOW - 10)
    return WorkOrder.from_record({**rec, "status": status, **more})


def _after(case: Case, wos: list[WorkOrder], ch: cw.Changes) -> tuple[Case, list[WorkOrder]]:
    """The records as an adapter would read them after writing `ch`."""
    case = Case.from_record({**case.to_record(), **ch.case})
    return case, [WorkOrder.from_record({**w.to_record(), **ch.work_orders.get(w.id, {})}) for w in wos]


def _fields(ch: cw.Changes) -> dict:
    """The case fields a decision sets, beside its timeline's chain head (tests/unit/test_timeline.py)."""
    return {k: v for k, v in ch.case.items() if k != "chainhead"}


def _types(ch: cw.Changes) -> list[str]:
    return [kind for kind, _ in ch.events]


# -- records ------------------------------------------------------------------------------
def test_records_round_trip_the_stored_dicts():
    case = _case()
    rec = {**case.to_record(), "satisfied": None, "something_new": [1]}
    back = Case.from_record(rec)
    assert back.to_record() == rec and back.satisfied is None and back.extra == {"something_new": [1]}
    assert "closed_at" not in back.to_record()  # a field the record never had is not invented
    assert back["status"] == "dispatched" and back.get("overdue", 0) == 0 and back.get("satisfied", "x") is None
    back.update(outcome="fixed", on_time=None, later=1)
    assert {"outcome": "fixed", "on_time": None, "later": 1}.items() <= back.to_record().items()
    wo = _wo(case)
    assert WorkOrder.from_record(wo.to_record()) == wo and wo.fired("acknowledge") == 0


# -- departments --------------------------------------------------------------------------
def test_accepting_starts_the_case_and_stops_the_acknowledge_deadline():
    case = _case()
    [wo] = wos = [_wo(case)]
    ch = cw.department_act(_ctx(), case, wos, wo.id, "market_regulation", "accept", "duty", "on my way")
    assert ch.work_orders[wo.id] == {
        "status": "accepted",
        "accepted_at": "t1000000",
        "accepted_epoch": NOW,
        "note": "on my way",
    }
    assert ch.status == ("dispatched", "in_progress") and _fields(ch) == {"status": "in_progress"}
    assert ch.chainhead and ch.chainhead.startswith("2:")  # two lines on a case with none chained before
    assert ch.timers == {("acknowledge", wo.id): None} and ch.queues == {}
    assert ch.counters == {"market_regulation:accepted": 1}
    assert _types(ch) == ["work_order.accepted"]
    assert ch.events[0][1]["work_order"]["status"] == "accepted" and (ch.work_order or {}).get("status") == "accepted"
    assert [(c, line["action"], line.get("work_order")) for c, line in ch.timeline] == [
        (case.id, "accept", wo.id),
        (case.id, "start", None),
    ]
    assert ch.timeline[0][1]["actor"] == "market_regulation/duty"
    assert wo.status == "dispatched" and case.status == "dispatched"  # the inputs are not changed


def test_the_last_part_resolved_resolves_the_case_and_on_time_says_whether_it_was():
    case = _case("in_progress", overdue=1)
    a, b = _wo(case, status="accepted"), _wo(case, "water", status="resolved")
    ch = cw.department_act(_ctx(), case, [a, b], a.id, "market_regulation", "resolve", "duty", evidence=["u"])
    assert ch.work_orders[a.id]["on_time"] is True and ch.work_orders[a.id]["evidence_urls"] == ["u"]
    assert ch.status == ("in_progress", "resolved") and ch.overdue is False
    assert _fields(ch) == {"status": "resolved", "resolved_at": "t1000000", "overdue": 0}
    assert ch.queues == {a.id: ("market_regulation", None)}
    assert ch.timers == {("acknowledge", a.id): None, ("resolve", a.id): None}
    assert _types(ch) == ["work_order.resolved", "case.resolved"]
    late = cw.department_act(_ctx(NOW + 4000), case, [a, b], a.id, "market_regulation", "resolve", "duty")
    assert late.work_orders[a.id]["on_time"] is False
    flagged = _wo(case, status="accepted", overdue_resolve=1)
    ch = cw.department_act(_ctx(), case, [flagged], a.id, "market_regulation", "resolve", "duty")
    assert ch.work_orders[a.id]["on_time"] is False  # overdue once, late for good, even after an extension


def test_a_return_leaves_the_queue_and_the_case_waits_for_routing():
    case = _case()
    [wo] = wos = [_wo(case)]
    ch = cw.department_act(_ctx(), case, wos, wo.id, "market_regulation", "return", "duty", "not ours")
    assert ch.queues == {wo.id: ("market_regulation", None)} and ch.status is None
    assert _types(ch) == ["work_order.returned"] and ch.counters == {"market_regulation:returned": 1}


def test_an_extension_request_is_kept_on_the_deadlines_clock():
    case = _case("in_progress")
    [wo] = wos = [_wo(case, status="accepted")]
    ch = cw.department_act(
        _ctx(scale=60), case, wos, wo.id, "market_regulation", "request_extension", "d", extension=7200
    )
    assert ch.work_orders[wo.id]["extension_requested_s"] == 120
    assert _types(ch) == ["work_order.extension_requested"]


def test_refusals_name_the_record_the_state_and_the_action():
    case = _case()
    [wo] = wos = [_wo(case)]
    ctx = _ctx()
    with pytest.raises(TransitionRefused, match="dance is not a department action"):
        cw.department_act(ctx, case, wos, wo.id, "market_regulation", "dance", "duty")
    with pytest.raises(TransitionRefused, match="is dispatched; cannot resolve"):
        cw.department_act(ctx, case, wos, wo.id, "market_regulation", "resolve", "duty")
    with pytest.raises(TransitionRefused, match="belongs to market_regulation, not water"):
        cw.department_act(ctx, case, wos, wo.id, "water", "accept", "duty")
    gov = _wo(case, "governance")
    with pytest.raises(TransitionRefused, match="command centre cannot return"):
        cw.department_act(ctx, case, [gov], gov.id, "governance", "return", "duty")
    with pytest.raises(TransitionRefused, match=f"case {case.id} is dispatched; cannot verify"):
        cw.case_act(ctx, case, wos, "verify", "gw")
    with pytest.raises(TransitionRefused, match="unknown action 'shrug'"):
        cw.case_act(ctx, case, wos, "shrug", "gw")
    with pytest.raises(TransitionRefused, match="is handled at street; grid is not higher"):
        cw.whistle(ctx, _case(level="street"), wos, "cc", "grid", [], "")
    with pytest.raises(TransitionRefused, match="is closed; cannot whistle"):
        cw.whistle(ctx, _case("closed"), wos, "cc", None, ["water"], "")
    with pytest.raises(LookupError):
        cw.extension(ctx, case, wos, "w-nope", True, "cc")


def test_an_extension_granted_moves_the_resolve_deadline_denied_does_not():
    case = _case("in_progress")
    [wo] = wos = [_wo(case, status="extension_requested", extension_requested_s=900.0)]
    ch = cw.extension(_ctx(), case, wos, wo.id, True, "cc")
    due = wo.resolve_due + 900
    assert ch.work_orders[wo.id] == {"status": "accepted", "resolve_due": due}
    assert ch.timers == {("resolve", wo.id): due} and ch.timeline[0][1]["note"] == "+900s"
    assert _types(ch) == ["work_order.extension_granted"]
    assert cw.extension(_ctx(), case, wos, wo.id, True, "cc", seconds=60).timers == {
        ("resolve", wo.id): wo.resolve_due + 60
    }
    ch = cw.extension(_ctx(), case, wos, wo.id, False, "cc", note="no")
    assert ch.timers == {} and _types(ch) == ["work_order.extension_denied"]


# -- supervision --------------------------------------------------------------------------
def test_an_overdue_acknowledgement_supervises_escalates_and_rearms():
    case = _case()
    [wo] = wos = [_wo(case)]
    ctx = _ctx(wo.ack_due + 1)
    ch = cw.overdue(ctx, case, wos, "acknowledge", wo.id, wo.ack_due)
    assert _types(ch) == ["case.supervised", "case.escalated"]
    supervised, escalated = ch.events[0][1], ch.events[1][1]
    assert supervised["step"]["due"] == wo.ack_due and supervised["reason"] == "overdue_acknowledge"
    assert supervised["work_order"]["overdue_ack"] == 1 and supervised["level"] == "grid"
    assert (escalated["from_level"], escalated["to_level"], escalated["reason"]) == (
        "grid",
        "community",
        "overdue_acknowledge",
    )
    assert ch.work_orders[wo.id] == {"overdue_ack": 1, "acknowledge_fired": wo.ack_due}
    assert ch.overdue is True and ch.level == ("grid", "community") and ch.status is None
    assert (
        ch.case["level"] == "community"
        and ch.case["unit"] == registry().tenants[QINLING].ancestor(GRID, "community").code
    )
    item = f"e-{case.id[2:]}-community"  # the community's office gets its item (test_office_items.py)
    assert ch.timers == {("acknowledge", wo.id): ctx.now + SPANS[0], ("office", item): ctx.now + 2 * 3600}
    assert ch.counters == {"supervisions": 1, "escalations:illegal_business": 1, "office_received:community": 1}


def test_a_deadline_fires_once_per_work_order_kind_and_due():
    case = _case()
    [wo] = wos = [_wo(case)]
    ctx = _ctx(wo.ack_due + 1)
    first = cw.overdue(ctx, case, wos, "acknowledge", wo.id, wo.ack_due)
    case, wos = _after(case, wos, first)
    again = cw.overdue(ctx, case, wos, "acknowledge", wo.id, wo.ack_due)  # the same timer, redelivered
    assert again.events == [] and again.timeline == [] and again.timers == {} and not again.counters
    rearmed = wo.ack_due + 600  # the re-armed deadline is another firing; the community's office
    # holds the case now (its own deadlines climb), so it supervises without climbing or re-arming
    held = cw.overdue(_ctx(rearmed + 1), case, wos, "acknowledge", wo.id, rearmed)
    assert _types(held) == ["case.supervised"] and held.timers == {}
    assert cw.overdue(ctx, case, wos, "resolve", wo.id, wo.ack_due).events  # another kind, its own firing


def test_overdue_is_moot_once_the_part_moved_on_and_stays_flagged_at_the_county():
    case = _case("in_progress")
    accepted = _wo(case, status="accepted")
    assert cw.overdue(_ctx(), case, [accepted], "acknowledge", accepted.id, 1.0).events == []
    assert cw.overdue(_ctx(), _case("resolved"), [accepted], "resolve", accepted.id, 1.0).events == []
    top = _case(level="county")
    [wo] = wos = [_wo(top)]
    ch = cw.overdue(_ctx(), top, wos, "acknowledge", wo.id, wo.ack_due)
    assert _types(ch) == ["case.supervised"] and ch.level is None and ch.timers == {} and ch.overdue is True


def test_a_whistle_calls_in_only_departments_without_an_active_part():
    case = _case("in_progress")
    wos = [_wo(case, status="accepted"), _wo(case, "water", status="returned")]
    ch = cw.whistle(_ctx(), case, wos, "cc", "street", ["market_regulation", "water", "fire_rescue"], "all hands")
    assert _types(ch) == ["case.whistled", "case.escalated", "case.dispatch_requested"]
    assert ch.events[0][1]["departments"] == ["market_regulation", "water", "fire_rescue"]
    assert ch.events[2][1] == {"case_id": case.id, "departments": ["water", "fire_rescue"], "reason": "whistle"}
    assert ch.level == ("grid", "street") and ch.timeline[0][1]["action"] == "whistle"
    same = cw.whistle(_ctx(), case, wos, "cc", "grid", ["market_regulation"], "")  # at its level: no escalation
    assert _types(same) == ["case.whistled"]


# -- verification, the reporter's word, closing --------------------------------------------
def test_verify_arms_the_feedback_window_on_the_deadlines_clock():
    case = _case("resolved")
    ch = cw.case_act(_ctx(scale=10), case, [_wo(case, status="resolved")], "verify", "gw", "seen", ["u"])
    assert _fields(ch) == {"status": "verified", "verified_at": "t1000000", "verified_by": "gw", "evidence_urls": ["u"]}
    assert ch.timers == {("feedback", case.id): NOW + 360} and _types(ch) == ["case.verified"]


@pytest.mark.parametrize("action, satisfied", [("satisfied", True), ("no_answer", None)])
def test_a_fixed_case_closes_on_time_unless_anything_ran_late(action, satisfied):
    case = _case("verified")
    wos = [_wo(case, status="resolved", on_time=True), _wo(case, "water", status="cancelled", overdue_ack=1)]
    ch = cw.case_act(_ctx(), case, wos, action, "citizen")
    assert _fields(ch) == {
        "status": "closed",
        "outcome": "fixed",
        "closed_at": "t1000000",
        "on_time": True,
        "satisfied": satisfied,
        "overdue": 0,
    }
    assert ch.timers == {("feedback", case.id): None} and ch.overdue is False
    assert ch.counters == {"closed:illegal_business:fixed": 1, "closed_on_time:illegal_business": 1}
    assert _types(ch) == ["case.closed"] and ch.status == ("verified", "closed")
    late = [_wo(case, status="resolved", on_time=False)]
    assert cw.case_act(_ctx(), case, late, action, "citizen").case["on_time"] is False
    assert cw.case_act(_ctx(), _case("verified", overdue=1), wos[:1], action, "citizen").case["on_time"] is False


def test_closing_not_fixed_or_rejecting_cancels_the_open_parts():
    case = _case("in_progress")
    wos = [_wo(case, status="accepted"), _wo(case, "water", status="resolved")]
    ch = cw.case_act(_ctx(), case, wos, "close_not_fixed", "cc", "owner gone")
    assert ch.work_orders == {wos[0].id: {"status": "cancelled"}}
    assert ch.queues == {wos[0].id: ("market_regulation", None)}
    assert ch.case["on_time"] is False and ch.counters == {"closed:illegal_business:not_fixed": 1}
    assert [line["note"] for _, line in ch.timeline] == ["case close_not_fixed", "owner gone"]
    ch = cw.case_act(_ctx(), _case(), [_wo(_case())], "reject", "cc", "not ours")
    assert _types(ch) == ["case.rejected"] and _fields(ch) == {"status": "rejected", "rejected_reason": "not ours"}
    assert ch.counters == {"rejected:illegal_business": 1} and ch.status == ("dispatched", "rejected")


def test_not_satisfied_reopens_the_resolved_parts_with_fresh_deadlines():
    case = _case("verified")
    wos = [_wo(case, status="resolved", overdue_ack=1), _wo(case, "water", status="returned")]
    ch = cw.case_act(_ctx(max_reopens=2), case, wos, "not_satisfied", "citizen", "still blocked")
    wo = wos[0]
    assert _types(ch) == ["case.reopened", "work_order.dispatched", "case.dispatched"]
    assert ch.work_orders == {
        wo.id: {
            "status": "dispatched",
            "ack_due": NOW + 600,
            "resolve_due": NOW + 3600,
            "dispatched_epoch": NOW,
            "overdue_ack": 0,
            "overdue_resolve": 0,
        }
    }
    assert ch.timers == {("feedback", case.id): None, ("acknowledge", wo.id): NOW + 600, ("resolve", wo.id): NOW + 3600}
    assert ch.queues == {wo.id: ("market_regulation", NOW)}
    assert _fields(ch) == {"status": "dispatched", "reopen_count": 1, "satisfied": False, "overdue": 0}
    assert ch.status == ("verified", "dispatched") and ch.level is None and ch.counters == {"reopened": 1}
    failed = cw.case_act(_ctx(max_reopens=2), _case("resolved"), wos, "verify_failed", "gw")
    assert failed.case["satisfied"] is None and failed.timeline[0][1]["to_state"] == "reopened"


def test_past_the_reopen_limit_the_county_takes_the_case():
    case = _case("verified", reopen_count=1)
    wos = [_wo(case, status="resolved")]
    ch = cw.case_act(_ctx(max_reopens=1), case, wos, "not_satisfied", "citizen")
    assert _types(ch)[-2:] == ["case.escalated", "case.dispatch_requested"]
    assert ch.events[-1][1] == {"case_id": case.id, "departments": ["governance"], "reason": "reopen_limit"}
    assert ch.level == ("grid", "county") and ch.case["reopen_count"] == 2
    assert ch.timeline[-1][1]["note"] == "reopened 2 times"
    at_county = cw.case_act(_ctx(max_reopens=1), _case("verified", "county", reopen_count=1), wos, "not_satisfied", "c")
    assert "case.dispatch_requested" not in _types(at_county)  # already there: its own parts go back


def test_a_case_resolves_again_after_a_reopen():
    ctx = _ctx(max_reopens=3)
    case, wos = _case("verified"), [_wo(_case(), status="resolved")]
    for action, who in (("not_satisfied", None), ("accept", "market_regulation"), ("resolve", "market_regulation")):
        if who:
            ch = cw.department_act(ctx, case, wos, wos[0].id, who, action, "duty")
        else:
            ch = cw.case_act(ctx, case, wos, action, "citizen")
        case, wos = _after(case, wos, ch)
    assert case.status == "resolved" and case.reopen_count == 1 and wos[0].status == "resolved"


# -- duplicates ---------------------------------------------------------------------------
def test_merge_links_the_duplicate_to_the_primary():
    primary = _case(linked=[{"case_id": "c-earlier"}])
    dup = Case.from_record(
        {**_case("registered", "").to_record(), "id": "c-2", "event_id": "e2", "reporter": {"id": "gw-3"}}
    )
    ch = cw.merge(_ctx(), dup, [], primary)
    assert ch.status == ("registered", "merged") and _fields(ch) == {"status": "merged", "merged_into": primary.id}
    assert ch.events == [("case.merged", {"step": ch.timeline[0][1], "primary_id": primary.id})]
    link = {
        "case_id": "c-2",
        "event_id": "e2",
        "reporter": {"id": "gw-3"},
        "department": "market_regulation",
        "summary": "s",
    }
    head = ch.other_cases[primary.id].pop("chainhead")  # the primary's timeline grew by its link line
    assert ch.other_cases == {primary.id: {"linked": [{"case_id": "c-earlier"}, link]}} and head.startswith("1:")
    assert ch.timeline[1] == (
        primary.id,
        {
            "at": "t1000000",
            "actor": "routing",
            "action": "link_duplicate",
            "from_state": "dispatched",
            "to_state": "dispatched",
            "note": "c-2 from market_regulation",
            "n": 0,  # chained on the primary's own timeline, from its genesis (it had no head)
            "prev": genesis(QINLING, primary.id),
        },
    )
    assert ch.counters == {"merged": 1} and primary.linked == [{"case_id": "c-earlier"}]
    with pytest.raises(TransitionRefused, match="is merged; cannot merge"):
        cw.merge(_ctx(), Case.from_record({**dup.to_record(), "status": "merged"}), [], primary)


def _dup(status: str = "dispatched", **more) -> Case:
    return Case.from_record({**_case(status).to_record(), "id": "c-2", "event_id": "e2", **more})


def test_a_confirmed_duplicate_already_dispatched_has_its_parts_cancelled():
    primary, dup = _case(), _dup(overdue=1)
    part = _wo(dup)
    ch = cw.merge(_ctx(), dup, [part], primary, "op-7", "same shop")
    assert ch.status == ("dispatched", "merged") and ch.work_orders[part.id]["status"] == "cancelled"
    assert ch.queues[part.id] == ("market_regulation", None) and ch.timers[("resolve", part.id)] is None
    assert ch.overdue is False and ch.case["overdue"] == 0
    merge_line = next(line for cid, line in ch.timeline if line["action"] == "merge")
    assert (merge_line["actor"], merge_line["note"]) == ("op-7", f"duplicate of {primary.id}: same shop")
    with pytest.raises(TransitionRefused, match="closed; nothing can be merged"):
        cw.merge(_ctx(), dup, [part], _case("closed"))
    with pytest.raises(TransitionRefused, match="is resolved; cannot merge"):
        cw.merge(_ctx(), _dup("resolved"), [], primary)


def test_unmerge_gives_back_the_cancelled_parts_and_unlinks_the_primary():
    primary = _case(linked=[{"case_id": "c-2"}, {"case_id": "c-3"}])
    dup = _dup("merged", merged_into=primary.id)
    part = _wo(dup, status="cancelled")
    ch = cw.unmerge(_ctx(), dup, [part], primary, "op-7", "two shops")
    assert ch.status == ("merged", "dispatched") and ch.case["unmerged_from"] == primary.id
    assert ch.case["merged_into"] == "" and ch.work_orders[part.id]["status"] == "dispatched"
    assert ch.queues[part.id] == ("market_regulation", NOW) and ch.timers[("resolve", part.id)] > NOW
    head = ch.other_cases[primary.id].pop("chainhead")  # the primary's timeline grew by its unlink line
    assert ch.other_cases == {primary.id: {"linked": [{"case_id": "c-3"}]}} and head.startswith("1:")
    lines = [(cid, line["action"], line["actor"]) for cid, line in ch.timeline]
    assert (dup.id, "unmerge", "op-7") in lines and (primary.id, "unlink_duplicate", "op-7") in lines
    assert [e for e, _ in ch.events] == ["case.unmerged", "work_order.dispatched", "case.dispatched"]
    assert ch.counters == {"unmerged": 1}


def test_unmerge_of_a_case_merged_before_dispatch_asks_routing():
    primary, dup = _case(), _dup("merged", merged_into="c-0000000000000001")
    ch = cw.unmerge(_ctx(), dup, [], primary, "op-7", "")
    assert ch.status == ("merged", "registered")
    assert ch.events[-1] == ("case.dispatch_requested", {"case_id": "c-2", "departments": [], "reason": "unmerged"})
    with pytest.raises(TransitionRefused, match="is dispatched; cannot unmerge"):
        cw.unmerge(_ctx(), _dup(), [], primary, "op-7", "")


def test_deciding_changes_none_of_its_inputs():
    case = _case("verified", reopen_count=1)
    wos = [_wo(case, status="resolved")]
    before = copy.deepcopy((case.to_record(), [w.to_record() for w in wos]))
    cw.case_act(_ctx(max_reopens=1), case, wos, "not_satisfied", "citizen")
    assert (case.to_record(), [w.to_record() for w in wos]) == before


def test_evidence_goes_on_the_timeline_of_an_open_case_and_changes_nothing_else():
    case = _case("in_progress")
    evidence = {"url": "file:t/c/x.png", "sha256": "ab" * 32, "bytes": 10, "content_type": "image/png"}
    ch = cw.attach_evidence(_ctx(), case, [_wo(case)], "zhang-wei", evidence, "现场照片")
    [(cid, line)] = ch.timeline
    assert cid == case.id and line["action"] == "attach_evidence" and line["actor"] == "zhang-wei"
    assert line["photo"] == evidence and line["from_state"] == line["to_state"] == "in_progress"
    assert line["evidence"] == tl.evidence_digest([evidence["sha256"]])  # the chain covers the photo's content
    assert ch.status is None and not ch.events and not ch.timers
    with pytest.raises(TransitionRefused, match="open case"):
        cw.attach_evidence(_ctx(), _case("closed"), [], "zhang-wei", evidence)


def test_a_rearmed_working_day_deadline_is_found_on_the_calendar_not_by_adding_seconds():
    # resolve in 3wd, passed at the close of the 调休 Saturday after National Day 2026: escalated
    # and re-armed for Mon 12th..Wed 14th; a clock span (or none written) re-arms by its seconds
    bj = timezone(timedelta(hours=8))
    passed = datetime(2026, 10, 10, 17, 30, tzinfo=bj).timestamp()
    ctx = cw.Context(registry().tenants[QINLING], Policy(), passed + 1, "t", 1.0, CHINA)
    expected = {
        "3wd": datetime(2026, 10, 14, 17, 30, tzinfo=bj).timestamp(),
        "1h": passed + 1 + SPANS[1],
        None: passed + 1 + SPANS[1],
    }
    for written, rearmed in expected.items():
        case = _case()
        wo = _wo(case, resolve_deadline=written) if written else _wo(case)
        changes = cw.overdue(ctx, case, [wo], "resolve", wo.id, passed)
        assert changes.case["level"] == "community" and changes.timers[("resolve", wo.id)] == rearmed
