"""End to end on the real bus: a few hundred events from many departments, some bad, each
ends as exactly one case in the right department's queue, or in quarantine with its reason.
Publishing them all again (a redelivery storm) changes nothing."""

from collections import Counter

import pytest

from onegrid.domain.timeline import verify
from sim.accounting import gather
from sim.reconcile import reconcile
from sim.simulator import BAD_KINDS
from tests.support import queue_depth, wait_until

pytestmark = pytest.mark.e2e
EVENTS = 400


def _gather(county, planned):
    return gather(county.store, planned)


def test_every_event_is_accounted_for_exactly_once(county):
    sim = county.simulator(seed=2026)
    planned = sim.plan(EVENTS, bad_every=10, duplicate_every=25)
    duplicates = sum(p.expect == "merged" for p in planned)
    assert duplicates >= 10
    assert len({p.department for p in planned if p.expect == "case"}) >= 12
    sim.publish(planned, threads=2)

    def settled():
        s = county.store.stats()
        return s.get("cases_dispatched", 0) + s.get("merged", 0) + s.get("quarantined", 0) >= EVENTS and s

    stats = wait_until(settled, timeout=90, what="all events processed")

    rec = reconcile(planned, *_gather(county, planned))
    assert rec.ok, rec.problems[:10]
    assert rec.cases_found == EVENTS - EVENTS // 10
    assert rec.quarantine_found == Counter({k: (EVENTS // 10) // len(BAD_KINDS) for k in BAD_KINDS})
    assert stats["cases"] == rec.cases_found and stats["quarantined"] == EVENTS // 10
    assert stats["merged"] >= duplicates  # every deliberate duplicate merged (reconcile checked which)

    # every case has work orders, and each department's queue holds exactly its work orders
    for dept in county.tenant.departments:
        assert queue_depth(county.uri, f"workorders.{dept}") == stats.get(f"department:{dept}", 0), dept
    for case in _gather(county, planned)[0].values():
        orders = county.store.work_orders_of(case["id"])
        if case["status"] == "merged":
            assert not orders and case["merged_into"]
            assert case["id"] in [x["case_id"] for x in county.store.case(case["merged_into"])["linked"]]
        else:
            assert orders and all(o["case_id"] == case["id"] for o in orders)

    # at-least-once delivery: the same events again make no new case and no new quarantine entry
    sim.publish(planned, threads=2)
    wait_until(lambda: queue_depth(county.uri, "intake.events") == 0, timeout=60, what="resend drained")
    wait_until(lambda: queue_depth(county.uri, "routing.case-registered") == 0, timeout=60, what="routing idle")
    after = county.store.stats()
    assert (after["cases"], after["quarantined"], after["work_orders"]) == (
        stats["cases"],
        stats["quarantined"],
        stats["work_orders"],
    )
    # every timeline, merged cases' and their primaries' included, is one unbroken hash chain
    # after the storm (onegrid.domain.timeline)
    checked = 0
    for case in _gather(county, planned)[0].values():
        record = county.store.case(case["id"]) or {}
        verdict = verify(county.id, case["id"], county.store.timeline(case["id"]), record.get("chainhead"))
        assert verdict.intact and verdict.entries >= 2, (case["id"], verdict.finding)
        checked += 1
    assert checked == rec.cases_found
