"""A tenant's RabbitMQ topology, declared the same way by onboarding and by each service.

Exchanges:  onegrid.intake (topic, `<department>.<event type>`) — department systems publish here
            onegrid.events (topic) — platform events: case.registered, work_order.returned, ...
            onegrid.workorders (direct, key = department) — each department's work queue
Every queue a service consumes has retry tiers `<queue>.retry.<ms>` (TTL, then dead-lettered
back) and a dead-letter queue `<queue>.dlq` that keeps what exhausted its retries.
"""
from __future__ import annotations

import os

from kombu import Exchange, Queue

INTAKE = Exchange("onegrid.intake", type="topic", durable=True)
EVENTS = Exchange("onegrid.events", type="topic", durable=True)
WORKORDERS = Exchange("onegrid.workorders", type="direct", durable=True)
QUORUM = {"x-queue-type": "quorum"}


def durable_args() -> dict:
    """Queue type of the durable queues: quorum (replicated; the default) or classic, from
    ONEGRID_QUEUE_TYPE. Set at declaration: changing it means new queues (see docs/operations.md)."""
    kind = os.environ.get("ONEGRID_QUEUE_TYPE", "quorum")
    if kind not in ("quorum", "classic"):
        raise ValueError(f"ONEGRID_QUEUE_TYPE must be quorum or classic, not {kind!r}")
    return {"x-queue-type": kind}

# queue name -> (exchange, binding key): the queues OneGrid's services consume
CONSUMED = {
    "intake.events": (INTAKE, "#"),
    "routing.case-registered": (EVENTS, "case.registered"),
    "routing.work-order-returned": (EVENTS, "work_order.returned"),
    "routing.dispatch-requested": (EVENTS, "case.dispatch_requested"),
    "scoring.case-events": (EVENTS, "case.#"),
    "scoring.work-order-events": (EVENTS, "work_order.#"),
    "notify.case-events": (EVENTS, "case.#"),
}


def retry_delays_ms() -> tuple[int, ...]:
    """Backoff before each retry; after the last, the dead-letter queue. Env: RETRY_DELAYS_MS."""
    raw = os.environ.get("RETRY_DELAYS_MS", "1000,5000,30000")
    return tuple(int(x) for x in raw.split(",") if x.strip())


def consumed_queue(name: str) -> Queue:
    exchange, key = CONSUMED[name]
    return Queue(name, exchange, routing_key=key, durable=True, queue_arguments=durable_args())


def work_queue(department: str) -> Queue:
    return Queue(f"workorders.{department}", WORKORDERS, routing_key=department, durable=True,
                 queue_arguments=durable_args())


def retry_queue(name: str, delay_ms: int) -> Queue:
    # classic: a per-queue TTL that dead-letters through the default exchange back to `name`
    return Queue(f"{name}.retry.{delay_ms}ms", durable=True, queue_arguments={
        "x-message-ttl": delay_ms, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": name})


def dead_letter_queue(name: str) -> Queue:
    return Queue(f"{name}.dlq", durable=True, queue_arguments=durable_args())


def all_queues(departments) -> list[Queue]:
    queues = []
    for name in CONSUMED:
        queues += [consumed_queue(name), dead_letter_queue(name)]
        queues += [retry_queue(name, d) for d in retry_delays_ms()]
    return queues + [work_queue(d) for d in departments]


def declare(connection, departments) -> list[str]:
    """Declare every exchange and queue of a tenant (idempotent); returns the queue names."""
    channel = connection.channel()
    try:
        for exchange in (INTAKE, EVENTS, WORKORDERS):
            exchange(channel).declare()
        queues = all_queues(departments)
        for queue in queues:
            queue(channel).declare()
        return [q.name for q in queues]
    finally:
        channel.close()
