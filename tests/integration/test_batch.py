"""The batch consumer on the real broker (onegrid/adapters/nameko/batch.py): a poison message in
the middle of a batch is dead-lettered alone while the others are dispatched once each, and a
batch redelivered after its service was killed makes no case or work order twice."""

from collections import Counter

import pytest
from kombu import Connection

from onegrid.adapters.amqp import topology
from onegrid.domain.cases import case_id
from onegrid.operator import ops
from tests.conftest import County
from tests.support import publish, queue_depth, wait_until

pytestmark = pytest.mark.integration

ROUTED = "routing.case-registered"


@pytest.fixture
def county(tmp_path):
    # a long wait, so the backlog left while routing is down is one batch
    c = County(tmp_path, services=("intake", "routing"), env={"BATCH_WAIT_MS": "300", "BATCH_SIZE": "50"})
    c.services.start()
    yield c
    c.close()


def _case_of(p) -> str:
    return case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")


def _work_order_messages(county) -> Counter:
    """Every work order on the departments' queues, by its CloudEvent id (taken off the queues)."""
    seen: Counter = Counter()
    with Connection(county.uri) as conn:
        channel = conn.channel()
        for department in county.tenant.departments:
            name = topology.work_queue(department).name
            while (message := channel.basic_get(name, no_ack=True)) is not None:
                seen[(message.headers or {}).get("ce-id")] += 1
    return seen


def _dispatched(county, planned) -> bool:
    return all((c := county.store.case(_case_of(p))) and c["status"] in ("dispatched", "merged") for p in planned)


def test_a_poison_message_in_a_batch_is_dead_lettered_alone_and_the_others_dispatched_once(county):
    county.services.kill("routing")
    sim = county.simulator(seed=17)
    first, second = [sim.good() for _ in range(5)], [sim.good() for _ in range(5)]
    publish(county.uri, first)
    wait_until(lambda: queue_depth(county.uri, ROUTED) == 5, what="first five announced", timeout=30)
    with Connection(county.uri, transport_options={"confirm_publish": True}) as conn:  # a case no store has
        conn.Producer().publish(
            b'{"id":"c-nosuchcase"}', exchange="", routing_key=ROUTED, content_type="application/json"
        )
    publish(county.uri, second)
    wait_until(lambda: queue_depth(county.uri, ROUTED) == 11, what="the batch in the queue", timeout=30)

    county.services.start_one("routing")  # its first batch: five cases, the poison one, five cases
    county.services.wait_ready()
    planned = first + second
    wait_until(lambda: _dispatched(county, planned), what="ten cases dispatched", timeout=60)
    wait_until(lambda: queue_depth(county.uri, f"{ROUTED}.dlq") == 1, what="the poison dead-lettered", timeout=60)

    [held] = ops.dead_letters(county.id, queue=ROUTED)
    assert "c-nosuchcase" in held["error"] and held["attempts"] == 3  # first try + RETRY_DELAYS_MS's two
    for p in planned:  # each case's work orders recorded once
        departments = [w["department"] for w in county.store.work_orders_of(_case_of(p))]
        assert departments and len(departments) == len(set(departments))
    wait_until(lambda: queue_depth(county.uri, ROUTED) == 0, what="routing's queue drained")
    seen = _work_order_messages(county)
    expected = {f"{w['id']}.dispatched" for p in planned for w in county.store.work_orders_of(_case_of(p))}
    assert set(seen) == expected and set(seen.values()) == {1}  # each on its queue once: the batch never flushed


def test_a_batch_redelivered_after_a_kill_makes_nothing_twice(county):
    county.services.kill("intake")
    planned = county.simulator(seed=23).plan(300)
    publish(county.uri, planned)
    county.services.start_one("intake")
    # killed in the middle of its batches: what it recorded and had not acked comes again
    wait_until(lambda: county.store.case(_case_of(planned[100])) is not None, what="intake under way", timeout=60)
    county.services.kill("intake")
    county.services.start_one("intake")
    county.services.wait_ready()
    wait_until(lambda: _dispatched(county, planned), what="every event a case, dispatched", timeout=120)

    cases = {_case_of(p) for p in planned}
    assert len(cases) == len(planned)
    for cid in cases:
        departments = [w["department"] for w in county.store.work_orders_of(cid)]
        assert len(departments) == len(set(departments))  # no work order twice
        actions = Counter(e.get("action") for e in county.store.timeline(cid))
        assert actions["register"] == 1 and actions["dispatch"] == len(departments)  # each line once
    assert queue_depth(county.uri, "intake.events.dlq") == 0 and queue_depth(county.uri, f"{ROUTED}.dlq") == 0
