"""A batch's publishes (Bus.publish_many: py-amqp's basic.publish direct, the frames of the batch
in one write) put on the broker the same message, property for property, as one publish through
kombu's Producer (Bus.publish_raw); a batch keeps its order; an unroutable mandatory message in
the middle of a batch is still refused, and the connection that saw it is not used again."""

from __future__ import annotations

import uuid

import pytest
from kombu import Connection, Exchange, Queue

from onegrid.adapters.amqp.bus import Bus, Outgoing, Unroutable
from onegrid.kernel import settings

pytestmark = pytest.mark.integration

DIRECT = Exchange("amq.direct", type="direct", no_declare=True)


@pytest.fixture
def queue():
    name = f"test.bus-publish.{uuid.uuid4().hex[:8]}"
    q = Queue(name, DIRECT, routing_key=name, durable=True, queue_arguments={"x-queue-type": "quorum"})
    with Connection(settings.amqp_base()) as conn:
        q(conn.channel()).declare()
    yield q
    with Connection(settings.amqp_base()) as conn:
        q(conn.channel()).delete()


def _take(queue: Queue, n: int) -> list:
    got = []
    with Connection(settings.amqp_base()) as conn:
        channel = conn.channel()
        while len(got) < n and (m := channel.basic_get(queue.name, no_ack=True)) is not None:
            got.append(m)
    return got


def _sent(headers: dict) -> dict:
    """The headers as published: a quorum queue adds its x-delivery-count to what it hands out."""
    return {k: v for k, v in headers.items() if k != "x-delivery-count"}


def _outgoing(queue: Queue, n: int, mandatory: bool = True) -> Outgoing:
    headers = {"ce-id": f"e-{n}", "ce-type": "case.registered", "ce-specversion": "1.0", "ce-n": n}
    body = ('{"summary":"井盖缺失","n":' + str(n) + "}").encode()
    return Outgoing(body, headers, "application/json", DIRECT, queue.name, mandatory)


def test_a_batch_publish_is_the_same_message_as_one_through_kombu(queue):
    bus = Bus(settings.amqp_base(), vouch=True)  # user_id: the broker checks it is the connection's user
    one = _outgoing(queue, 1)
    bus.publish_raw(one.body, one.headers, one.content_type, one.exchange, one.routing_key, True)
    bus.publish_many([one])
    kombu_sent, direct = _take(queue, 2)
    assert direct.body == kombu_sent.body == one.body
    assert _sent(direct.headers) == _sent(kombu_sent.headers) == one.headers
    assert {**direct.properties, "application_headers": None} == {**kombu_sent.properties, "application_headers": None}
    assert direct.properties["delivery_mode"] == 2 and direct.properties["user_id"] == "guest"
    assert direct.properties["content_type"] == "application/json"
    assert direct.delivery_info["routing_key"] == queue.name


def test_a_batch_arrives_whole_and_in_order_in_one_write(queue):
    bus = Bus(settings.amqp_base())
    bus.publish_many([_outgoing(queue, n) for n in range(120)])
    bus.publish_many([_outgoing(queue, n) for n in range(120, 150)])  # the pooled channel again
    got = _take(queue, 200)
    assert [m.headers["ce-n"] for m in got] == list(range(150))


def test_an_unroutable_message_in_a_batch_is_refused_and_its_connection_dropped(queue):
    bus = Bus(settings.amqp_base())
    lost = Outgoing(b"{}", {"ce-id": "lost"}, "application/json", DIRECT, f"{queue.name}.nobody", True)
    with pytest.raises(Unroutable, match="nobody"):
        bus.publish_many([_outgoing(queue, 0), lost, _outgoing(queue, 2)])
    assert bus._batch_idle.empty()  # the channel that saw the return is never reused
    assert [m.headers["ce-n"] for m in _take(queue, 10)] == [0, 2]
    not_mandatory = Outgoing(b"{}", {"ce-id": "dropped"}, "application/json", DIRECT, f"{queue.name}.nobody", False)
    bus.publish_many([not_mandatory, _outgoing(queue, 3)])  # what no queue wants, unless mandatory, is fine
    assert [m.headers["ce-n"] for m in _take(queue, 10)] == [3]
