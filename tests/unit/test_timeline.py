"""A case's hash-chained timeline (onegrid.domain.timeline): how it is built, and that verify
proves an untouched one intact and names the first entry of a tampered one, and how."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
from marshmallow import ValidationError

from onegrid.app.supervision import verify_timeline
from onegrid.domain import casework as cw
from onegrid.domain import timeline as tl
from onegrid.domain.cases import Case, WorkOrder, first_entry, new_work_order
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.routing import Decision
from onegrid.domain.supervision import Policy

from .helpers import QINLING, registry
from .services.fakes import FakeStore

CASE = "c-00000000000000aa"


def _chain(n: int = 6) -> tuple[list[dict], tl.Head]:
    head = tl.Head.start(QINLING, CASE)
    entries = []
    for i in range(n):
        entry, head = tl.link(head, {"at": f"t{i}", "actor": "x", "action": f"a{i}", "to_state": "s"})
        entries.append(entry)
    return entries, head


def _verdict(entries: list[dict], recorded: tl.Head | str | None, published=()) -> tl.Verdict:
    return tl.verify(QINLING, CASE, entries, str(recorded) if recorded else None, published)


def _found(entries, recorded, published=()) -> tuple[int, str]:
    v = _verdict(entries, recorded, published)
    assert not v.intact and v.finding
    return v.finding.index, v.finding.kind


# -- the chain -----------------------------------------------------------------------------
def test_an_entry_carries_its_place_and_the_hash_of_the_one_before():
    entries, head = _chain(3)
    assert [e["n"] for e in entries] == [0, 1, 2]
    assert entries[0]["prev"] == tl.genesis(QINLING, CASE)
    assert entries[1]["prev"] == tl.digest(entries[0]) and head == tl.Head(3, tl.digest(entries[2]))
    # the canonical form is what sha256sum of sorted-key, spaceless UTF-8 JSON gives
    text = json.dumps(entries[2], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert head.digest == hashlib.sha256(text.encode()).hexdigest()
    assert tl.Head.parse(str(head)) == head


def test_the_genesis_binds_a_timeline_to_its_county_and_case():
    assert len({tl.genesis(QINLING, CASE), tl.genesis("other", CASE), tl.genesis(QINLING, "c-00000000000000bb")}) == 3
    entries, head = _chain(3)
    v = tl.verify(QINLING, "c-00000000000000bb", entries, str(head))
    assert v.finding == tl.Finding(0, tl.CHANGED, v.finding.detail if v.finding else "")


@pytest.mark.parametrize("text", ["", "3", "x:" + "0" * 64, "3:" + "0" * 63, "3:" + "G" * 64, "-1:" + "0" * 64])
def test_a_head_that_is_not_one_is_refused(text):
    with pytest.raises(ValueError, match="is not <entries>:<64 hex digits"):
        tl.Head.parse(text)


def test_an_untouched_timeline_is_intact_against_the_record_and_the_bus():
    entries, head = _chain(6)
    published = [tl.Head(i + 1, tl.digest(e)) for i, e in enumerate(entries)]
    v = _verdict(entries, head, published)
    assert v.intact and v.head == head and v.as_dict()["intact"] is True
    assert v.as_dict()["published_heads_checked"] == [str(h) for h in published]
    assert tl.verify(QINLING, CASE, [], None).intact  # no timeline yet, nothing to prove


# -- tampering -----------------------------------------------------------------------------
@pytest.mark.parametrize("at", [0, 2, 5])
def test_an_edited_entry_is_named(at):
    entries, head = _chain(6)
    entries[at]["note"] = "nothing happened"
    assert _found(entries, head) == (at, tl.CHANGED)


@pytest.mark.parametrize("at", [3, 5])
def test_an_edited_link_is_named_at_its_own_entry(at):
    entries, head = _chain(6)
    entries[at]["prev"] = "0" * 64
    assert _found(entries, head) == (at, tl.CHANGED)


@pytest.mark.parametrize(("at", "expected"), [(0, (0, tl.REMOVED)), (3, (3, tl.REMOVED)), (5, (5, tl.REMOVED))])
def test_a_deleted_entry_is_named(at, expected):
    entries, head = _chain(6)
    del entries[at]
    assert _found(entries, head) == expected


def test_a_truncated_tail_is_named_by_the_head_on_record():
    entries, head = _chain(6)
    assert _found(entries[:4], head) == (4, tl.REMOVED)
    assert "2 entries missing at the end" in (_verdict(entries[:4], head).finding or tl.Finding(0, "", "")).detail


@pytest.mark.parametrize("at", [0, 2, 4])
def test_a_reordered_pair_is_named(at):
    entries, head = _chain(6)
    entries[at], entries[at + 1] = entries[at + 1], entries[at]
    assert _found(entries, head) == (at, tl.REORDERED)


@pytest.mark.parametrize("mimic", [True, False])
@pytest.mark.parametrize("at", [1, 3])
def test_an_inserted_entry_is_named(at, mimic):
    """Whether the forger links it properly (place and prev of the entry it displaces) or not."""
    entries, head = _chain(6)
    forged = {"at": "t", "actor": "x", "action": "satisfied", "to_state": "closed"}
    if mimic:
        forged |= {"n": at, "prev": entries[at]["prev"]}
    entries.insert(at, forged)
    assert _found(entries, head) == (at, tl.INSERTED)


def test_an_entry_appended_without_moving_the_head_is_named():
    entries, head = _chain(6)
    extra, _ = tl.link(tl.Head(6, tl.digest(entries[-1])), {"at": "t", "action": "close"})
    assert _found([*entries, extra], head) == (6, tl.INSERTED)


def test_the_head_on_record_edited_or_gone_is_found():
    entries, head = _chain(4)
    assert _found(entries, tl.Head(4, "0" * 64)) == (3, tl.CHANGED)
    assert _found(entries, "not a head") == (3, tl.CHANGED)
    assert _found(entries, None) == (3, tl.CHANGED)


def test_a_chain_recomputed_over_is_caught_by_the_heads_the_bus_carried():
    """Whoever rewrites an entry and every hash after it, and the head on record, leaves a
    consistent chain: only the heads published with the lifecycle events show it, and between
    which of them the rewrite lies."""
    entries, _ = _chain(6)
    published = [tl.Head(i + 1, tl.digest(e)) for i, e in enumerate(entries)][1::2]  # after entries 1, 3, 5
    lines = [{k: v for k, v in e.items() if k not in ("n", "prev")} for e in entries]
    lines[2]["note"] = "rewritten"
    forged, head = [], tl.Head.start(QINLING, CASE)
    for line in lines:
        entry, head = tl.link(head, line)
        forged.append(entry)
    assert _verdict(forged, head).intact  # the record alone cannot tell
    v = _verdict(forged, head, published)
    assert v.finding and (v.finding.index, v.finding.kind) == (2, tl.REWRITTEN)
    assert "entries 2..3" in v.finding.detail
    # a head the bus saw that is longer than the timeline: entries were cut off and the head moved back
    assert _found(entries[:3], tl.Head(3, tl.digest(entries[2])), published) == (3, tl.REMOVED)


def test_a_break_the_chain_shows_is_named_before_the_range_the_bus_heads_give():
    """The heads the bus carried only bound an alteration between two of them; an entry edited
    without recomputing the chain is named exactly, as without those heads."""
    entries, head = _chain(6)
    published = [tl.Head(i + 1, tl.digest(e)) for i, e in enumerate(entries)][1::2]  # after entries 1, 3, 5
    edited = [dict(e) for e in entries]
    edited[3]["note"] = "edited"
    assert _found(edited, head) == _found(edited, head, published) == (3, tl.CHANGED)


# -- where lines are written: casework chains them and moves the head ------------------------
def _case(status="dispatched", **more) -> Case:
    first, head = first_entry(QINLING, {"id": CASE, "received_at": "t0", "department": "market_regulation",
                                        "reporter": {"kind": "citizen"}, "event_type": "x.y"})  # fmt: skip
    return Case(id=CASE, department="market_regulation", event_id="e1", category="illegal_business",
                severity="minor", grid="410102-001-001-001", summary="s", reporter={"kind": "citizen"}, location=None,
                status=status, at=1000.0, level="grid", reopen_count=0, **{"chainhead": str(head), **more})  # fmt: skip


def test_casework_chains_each_line_on_the_recorded_head_and_hashes_the_evidence():
    ctx = cw.Context(registry().tenants[QINLING], Policy(), 1_000_000.0, "t1")
    case = _case("in_progress")
    decision = Decision("grid", case.grid, ("market_regulation",), (), 0, "rule")
    wo = WorkOrder.from_record(
        new_work_order(case.to_record(), "market_regulation", decision, "rule", "t", (600.0, 3600.0), 999_000.0)
    )
    wos = [WorkOrder.from_record({**wo.to_record(), "status": "accepted"})]
    ch = cw.department_act(ctx, case, wos, wo.id, "market_regulation", "resolve", "duty", "fixed", ["https://e/1.jpg"])
    [(c1, resolve), (c2, resolved)] = ch.timeline
    assert (c1, c2) == (CASE, CASE) and (resolve["n"], resolved["n"]) == (1, 2)
    assert resolve["prev"] == tl.Head.parse(str(case.chainhead)).digest and resolved["prev"] == tl.digest(resolve)
    assert resolve["evidence"] == tl.evidence_digest(["https://e/1.jpg"]) and "evidence" not in resolved
    assert ch.chainhead == str(tl.Head(3, tl.digest(resolved))) == ch.case["chainhead"]
    # every event of the transition leaves with that head (the outbox keeps it beside the event)
    assert [k for k, _ in ch.events] == ["work_order.resolved", "case.resolved"]


def test_a_case_whose_head_on_record_was_edited_takes_no_more_lines():
    ctx = cw.Context(registry().tenants[QINLING], Policy(), 1_000_000.0, "t1")
    case = _case("resolved", chainhead="3:edited")
    with pytest.raises(TransitionRefused, match="its timeline's head on record was altered"):
        cw.case_act(ctx, case, [], "reject", "cc", "not ours")


def test_verify_through_the_case_reader_port():
    store = FakeStore(QINLING)
    case = {"id": CASE, "received_at": "t0", "department": "market_regulation", "reporter": {"kind": "citizen"},
            "event_type": "x.y", "digest": "d", "status": "registered"}  # fmt: skip
    store.register_case(case, "k")
    verdict = verify_timeline(QINLING, store, CASE, [])
    assert verdict["intact"] and verdict["entries"] == 1
    tampered = copy.deepcopy(store.timelines[CASE])
    tampered[0]["actor"] = "someone else"
    store.timelines[CASE] = tampered
    assert verify_timeline(QINLING, store, CASE, [])["finding"]["kind"] == tl.CHANGED
    with pytest.raises(ValidationError):
        verify_timeline(QINLING, store, CASE, ["1:short"])
    with pytest.raises(LookupError):
        verify_timeline(QINLING, store, "c-00000000000000ff", [])
    with pytest.raises(LookupError, match="a case id is c- and 16 hex digits"):
        verify_timeline(QINLING, store, "../../etc", [])
