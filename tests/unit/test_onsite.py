"""On-site resolution's rules without Redis (onegrid.domain.onsite and what casework, scoring,
reports, notify and duplicates make of it)."""

from __future__ import annotations

import pytest

from onegrid.domain import casework as cw
from onegrid.domain import notify as nt
from onegrid.domain import reports as rp
from onegrid.domain import scoring as sc
from onegrid.domain.cases import Case
from onegrid.domain.duplicates import Thresholds, best_match
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.onsite import evidence_of, reported_on_site, sampled, settled_on_site
from onegrid.domain.supervision import Policy, check_policy, policy

from .helpers import QINLING, registry

GRID = "410102-001-001-001"
NOW = 1_000_000.0
PHOTOS = ["https://evidence.onegrid.invalid/p/1.jpg"]


def _ctx() -> cw.Context:
    return cw.Context(registry().tenants[QINLING], Policy(feedback_window=3600), NOW, "t1000000")


def _case(status: str = "registered", on_site: bool = True, **more) -> Case:
    return Case(
        id="c-00000000000000aa",
        department="governance",
        event_id="e1",
        category="illegal_business",
        severity="minor",
        grid=GRID,
        summary="a stall on the pavement, moved on",
        reporter={"kind": "grid_worker", "id": "GW-7"},
        location=None,
        data={"resolved_on_site": on_site, "evidence_urls": PHOTOS},
        status=status,
        at=1000.0,
        level="",
        **more,
    )


def _apply(ch: cw.Changes, case: Case) -> Case:
    return Case.from_record({**case.to_record(), **ch.case})


def test_the_report_field_and_the_record_field_say_different_things():
    assert reported_on_site({"data": {"resolved_on_site": True}})
    assert not reported_on_site({"data": {"resolved_on_site": False}}) and not reported_on_site({"data": None})
    assert settled_on_site({"resolution": "on_site"}) and not settled_on_site({"resolution": ""})
    assert evidence_of({"data": {"evidence_urls": PHOTOS}}) == PHOTOS and evidence_of({}) == []


def test_the_sample_is_a_share_by_case_id_the_same_every_time():
    ids = [f"c-{i:016x}" for i in range(4000)]
    picked = [i for i in ids if sampled(i, 0.1)]
    assert 0.08 < len(picked) / len(ids) < 0.12
    assert picked == [i for i in ids if sampled(i, 0.1)]  # a replay picks the same cases
    assert set(picked) <= {i for i in ids if sampled(i, 0.3)}  # a larger share keeps the smaller one's
    assert not any(sampled(i, 0) for i in ids) and all(sampled(i, 1) for i in ids)


def test_an_unsampled_on_site_case_closes_fixed_with_its_evidence_and_no_deadline():
    ch = cw.settle_on_site(_ctx(), _case(), [], sampled=False)
    assert ch.status == ("registered", "closed") and ch.level == ("", "grid")
    fields = {k: v for k, v in ch.case.items() if k != "chainhead"}
    assert fields["outcome"] == "fixed" and fields["resolution"] == "on_site" and fields["on_time"] is True
    assert fields["evidence_urls"] == PHOTOS and fields["unit"] == GRID and fields["satisfied"] is None
    assert [kind for kind, _ in ch.events] == ["case.closed"]  # no case.dispatched: nothing was
    assert not ch.queues and all(due is None for due in ch.timers.values())  # no work order, no timer armed
    assert [line["action"] for _, line in ch.timeline] == ["close_on_site"] and ch.timeline[0][1]["evidence"]
    assert ch.closure == cw.Closure("illegal_business", "fixed", True, ())  # no department handled it
    assert ch.counters["on_site"] == 1 and ch.counters["closed:illegal_business:fixed"] == 1


def test_a_sampled_one_waits_at_resolved_and_not_fixed_asks_routing_to_route_it():
    case = _case()
    ch = cw.settle_on_site(_ctx(), case, [], sampled=True)
    assert ch.status == ("registered", "resolved") and ch.closure is None
    assert [kind for kind, _ in ch.events] == ["case.resolved"] and ch.counters["on_site_sampled"] == 1
    held = _apply(ch, case)
    failed = cw.case_act(_ctx(), held, [], "verify_failed", "community-1", "still there")
    assert failed.status == ("resolved", "reopened")
    assert failed.case["resolution"] == "" and failed.case["on_site_reopened"] == 1
    kinds = [(kind, extra.get("reason")) for kind, extra in failed.events]
    assert kinds == [("case.reopened", None), ("case.dispatch_requested", "on_site_not_fixed")]
    checked = cw.case_act(_ctx(), held, [], "verify", "community-1", "gone indeed", PHOTOS)
    closed = cw.case_act(_ctx(), _apply(checked, held), [], "no_answer", "clock")
    assert closed.case["outcome"] == "fixed" and _apply(closed, held).get("resolution") == "on_site"


def test_only_a_registered_case_is_settled_on_site():
    with pytest.raises(TransitionRefused):
        cw.settle_on_site(_ctx(), _case(status="dispatched"), [], sampled=False)


def test_the_sample_share_is_a_manifest_key():
    assert check_policy({"on_site_sample": 0.25}) == []
    assert check_policy({"on_site_sample": 2}) == [("lifecycle.on_site_sample", "must be a share in [0, 1]")]
    assert check_policy({"on_site_sample": True})
    assert policy(registry().tenants[QINLING]).on_site_sample == 0.1


def _event(kind: str, eid: str, **data) -> sc.Event:
    snapshot = {
        "id": "c-1",
        "grid": GRID,
        "severity": "minor",
        "category": "illegal_business",
        "reporter": {"kind": "grid_worker", "id": "GW-7"},
        "level": "grid",
        **data,
    }
    return sc.Event(eid, kind, "2026-11-05T02:00:00Z", snapshot)


def test_the_reporter_earns_resolved_on_site_once_and_not_grid_resolved():
    cfg = sc.parse_config({})
    closed = _event("case.closed", "e-2", status="closed", outcome="fixed", on_time=True, resolution="on_site")
    state = sc.apply(None, _event("case.registered", "e-1", status="registered"), cfg).state
    first = sc.apply(state, closed, cfg)
    awards = [(key, name) for key, name, _ in first.counters if key[0] == "points"]
    assert awards == [(("points", "2026-11"), "GW-7|resolved_on_site")]
    assert sc.apply(first.state, closed, cfg).duplicate  # redelivered: nothing more
    assert sc.worker_points({"GW-7|resolved_on_site": 55}, {}, cfg)["GW-7"]["points"] == 40  # the monthly cap
    reopened_then_fixed = _event("case.closed", "e-3", status="closed", outcome="fixed", on_time=True, resolution="")
    awards = [n for k, n, _ in sc.apply(state, reopened_then_fixed, cfg).counters if k[0] == "points"]
    assert "GW-7|grid_resolved" in awards and "GW-7|resolved_on_site" not in awards


def test_the_report_counts_it_as_solved_and_on_site():
    facts = [
        rp.CaseFacts.of({"id": "a", "category": "dispute", "status": "closed", "at": 1, "outcome": "fixed",
                         "on_time": True, "resolution": "on_site"}),
        rp.CaseFacts.of({"id": "b", "category": "dispute", "status": "closed", "at": 2, "outcome": "fixed"}),
        rp.CaseFacts.of({"id": "c", "category": "dispute", "status": "resolved", "at": 3, "resolution": "on_site"}),
    ]  # fmt: skip
    rows, total = rp.closure(facts, {"dispute": "矛盾纠纷"})
    assert (total.problems, total.solved, total.on_site, total.open) == (3, 2, 1, 1)
    assert "resolution" in rp.CaseFacts.FIELDS


def test_notify_records_an_on_site_report_and_asks_the_community_to_check_a_sample():
    cfg = nt.parse_config(
        {"notify": {"channels": {"webhook": {"url": "https://hooks.invalid/x", "secret_env": "HOOK_SECRET"}}}}
    )
    names = nt.Names(
        tenant_name="秦岭路街道", nodes={GRID: ("一网格", "410102-001-001"), "410102-001-001": ("社区", "")}
    )
    base = {"id": "c-1", "grid": GRID, "summary": "摊位已劝离", "reporter": {"kind": "grid_worker", "id": "GW-7"}}
    registered = nt.plan(
        sc.Event("e-1", "case.registered", None, {**base, "data": {"resolved_on_site": True}}), cfg, names
    )
    assert [n.kind for n in registered] == ["on_site"] and "不再派单" in registered[0].text
    assert "受理" not in registered[0].text  # no promise of handling
    held = nt.plan(sc.Event("e-2", "case.resolved", None, {**base, "resolution": "on_site"}), cfg, names)
    assert [(n.kind, n.recipient.id) for n in held] == [("on_site_check", "community:410102-001-001")]
    assert nt.plan(sc.Event("e-3", "case.resolved", None, base), cfg, names) == []


def test_an_on_site_case_is_never_a_duplicates_primary():
    th = Thresholds(1800, 100.0, 0.7, 0.4)
    mine = {
        "id": "c-2",
        "at": 2000.0,
        "status": "registered",
        "category": "illegal_business",
        "grid": GRID,
        "summary": "a stall on the pavement",
        "location": None,
    }
    other = {**mine, "id": "c-1", "at": 1000.0, "status": "resolved", "resolution": "on_site"}
    assert best_match(mine, [other], th) is None
    assert best_match(mine, [{**other, "resolution": "", "status": "dispatched"}], th) is not None
    registering = {**other, "status": "registered", "resolution": None, "data": {"resolved_on_site": True}}
    assert best_match(mine, [registering], th) is None  # fmt: skip


# -- risk_colour: a reported five-colour label ------------------------------------------------
def test_a_reported_label_floors_its_grids_colour_while_its_case_is_unresolved():
    cfg = sc.parse_config({})
    data = {"person_type": "mental_illness", "risk_colour": "orange"}
    ev = _event("case.registered", "k-1", status="registered", data=data, id="c-k")
    state = sc.apply(None, ev, cfg).state
    label = sc.label_of(state)
    assert label == {"colour": "orange", "by": "GW-7", "case_id": "c-k"}
    assert sc.floored("green", [label]) == ("orange", label)  # the label holds the colour up
    assert sc.floored("red", [label]) == ("red", label)  # never down: the score's red stands
    assert sc.floored("blue", []) == ("blue", None)
    closed = sc.apply(state, _event("case.closed", "k-2", status="closed", outcome="fixed", id="c-k"), cfg).state
    assert sc.label_of(closed) is None  # dealt with: no longer a floor
    assert sc.label_of(sc.apply(None, _event("case.registered", "k-3", status="registered"), cfg).state) is None
