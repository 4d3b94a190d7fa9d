"""The client's CPU per published message in a batch (`python -m bench.publish`): kombu's
`Producer.publish` per message on a confirm-mode channel (how `Bus.publish_many` sent a batch
before 2fe5605) against `Bus.publish_many` now (py-amqp's basic.publish direct, the batch's
frames in one write), each then waiting once for the batch's confirms. Under eventlet, as the
services run. Not part of `make bench`: it explains one step of the hot path's profile.

Env: PUBLISH_BATCHES (200), PUBLISH_BATCH (50), PUBLISH_BYTES (1500, about a case.registered).
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from kombu import Connection, Exchange, Queue  # noqa: E402

from onegrid.adapters.amqp.bus import Bus, Outgoing  # noqa: E402
from onegrid.cli.ui import console, table  # noqa: E402
from onegrid.kernel import envelope as ce  # noqa: E402
from onegrid.kernel import settings  # noqa: E402

DIRECT = Exchange("amq.direct", type="direct", no_declare=True)
HEADERS = ("id", "source", "type", "subject", "specversion", "time", "tenant", "department", "traceparent")


def kombu_batch(bus: Bus, items: list[Outgoing]) -> None:
    """A batch as publish_many sent it before: kombu's Producer.publish for each message."""
    with bus._confirming() as (conn, producer, confirms):
        first = confirms.sent + 1
        for o in items:
            producer.publish(
                o.body,
                exchange=o.exchange,
                routing_key=o.routing_key,
                headers=o.headers,
                content_type=o.content_type or ce.JSON,
                content_encoding="binary",
                delivery_mode=2,
                mandatory=o.mandatory,
                retry=False,
            )
            confirms.sent += 1
        while not confirms.done(first, confirms.sent):
            conn.drain_events(timeout=1.0)


def measure(send, bus: Bus, items: list[Outgoing], batches: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per message over `batches` batches, after one to warm up."""
    send(bus, items)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(batches):
        send(bus, items)
    n = batches * len(items)
    return (time.process_time() - cpu) / n * 1e6, (time.perf_counter() - wall) / n * 1e6


def main() -> int:
    batches = int(os.environ.get("PUBLISH_BATCHES", "200"))
    size = int(os.environ.get("PUBLISH_BATCH", "50"))
    body = b"x" * int(os.environ.get("PUBLISH_BYTES", "1500"))
    uri = settings.amqp_base()
    name = f"bench.publish.{uuid.uuid4().hex[:6]}"
    queue = Queue(name, DIRECT, routing_key=name, durable=True, queue_arguments={"x-queue-type": "quorum"})
    headers = {f"ce-{h}": "x" * 30 for h in HEADERS}
    items = [Outgoing(body, headers, ce.JSON, DIRECT, queue.name, True) for _ in range(size)]
    with Connection(uri) as conn:
        queue(conn.channel()).declare()
    try:
        bus, rows = Bus(uri), []
        for name, send in (("kombu Producer.publish per message", kombu_batch), ("Bus.publish_many", Bus.publish_many)):
            with console.status(f"{name}: {batches} batches of {size}"):
                cpu, wall = measure(send, bus, items, batches)
            rows.append([name, f"{cpu:.0f}", f"{wall:.0f}"])
            with Connection(uri) as conn:
                queue(conn.channel()).purge()
    finally:
        with Connection(uri) as conn:
            queue(conn.channel()).delete()
    console.print(
        table(
            f"Publishing {batches} batches of {size} messages of {len(body)} bytes, confirms waited per batch",
            ["how", "client CPU µs per message", "wall µs per message"],
            rows,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
