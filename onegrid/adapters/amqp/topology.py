"""A tenant's RabbitMQ topology, declared the same way by onboarding and by each service.

Exchanges:  onegrid.intake (topic, `<department>.<event type>`) — department systems publish here
            onegrid.events (topic) — platform events: case.registered, work_order.returned, ...
            onegrid.workorders (direct, key = department) — each department's work queue
            onegrid.receipts (direct, key = department) — each department's receipts
Every queue a service consumes has retry tiers `<queue>.retry.<ms>` (TTL, then dead-lettered
back) and a dead-letter queue `<queue>.dlq` that keeps what exhausted its retries.
"""

from __future__ import annotations

from kombu import Exchange, Queue, binding

from onegrid.kernel import settings
from onegrid.kernel import topology as names

INTAKE = Exchange(names.INTAKE, type=names.EXCHANGES[names.INTAKE], durable=True)
EVENTS = Exchange(names.EVENTS, type=names.EXCHANGES[names.EVENTS], durable=True)
WORKORDERS = Exchange(names.WORKORDERS, type=names.EXCHANGES[names.WORKORDERS], durable=True)
INTAKE_DEAD = Exchange(names.INTAKE_DEAD, type=names.EXCHANGES[names.INTAKE_DEAD], durable=True)
RECEIPTS = Exchange(names.RECEIPTS, type=names.EXCHANGES[names.RECEIPTS], durable=True)
_EXCHANGES = {e.name: e for e in (INTAKE, EVENTS, WORKORDERS, INTAKE_DEAD, RECEIPTS)}
QUORUM = {"x-queue-type": "quorum"}


def durable_args() -> dict:
    """The arguments of a durable queue: its type (settings.queue_type)."""
    return {"x-queue-type": settings.queue_type()}


# queue name -> (exchange, binding key): the queues OneGrid's services consume
CONSUMED = {queue: (_EXCHANGES[exchange], key) for queue, (exchange, key) in names.CONSUMED.items()}


def consumed_queue(name: str) -> Queue:
    exchange, key = CONSUMED[name]
    return Queue(
        name,
        exchange,
        routing_key=key,
        durable=True,
        queue_arguments=durable_args(),
        binding_arguments=names.binding_arguments(exchange.name, key) or None,
    )


def work_queue(department: str) -> Queue:
    return Queue(
        names.work_queue(department), WORKORDERS, routing_key=department, durable=True, queue_arguments=durable_args()
    )


def receipt_queue(department: str) -> Queue:
    return Queue(
        names.receipt_queue(department), RECEIPTS, routing_key=department, durable=True, queue_arguments=durable_args()
    )


def retry_queue(name: str, delay_ms: int) -> Queue:
    # classic: a per-queue TTL that dead-letters through the default exchange back to `name`
    return Queue(
        names.retry_queue(name, delay_ms),
        durable=True,
        queue_arguments={"x-message-ttl": delay_ms, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
    )


def dead_letter_queue(name: str) -> Queue:
    return Queue(names.dead_letter_queue(name), durable=True, queue_arguments=durable_args())


def history_stream(name: str, departments=()) -> Queue:
    """A history stream (names.HISTORY_INTAKE, HISTORY_LIFECYCLE), bound as onboarding binds it."""
    routes = [binding(_EXCHANGES[e], routing_key=k) for e, q, k in names.history_routes(departments) if q == name]
    return Queue(name, bindings=routes, durable=True, queue_arguments={"x-queue-type": names.STREAM})


def all_queues(departments) -> list[Queue]:
    queues = []
    for name in CONSUMED:
        queues += [consumed_queue(name), dead_letter_queue(name)]
        queues += [retry_queue(name, d) for d in settings.retry_delays_ms()]
    departments = list(departments)
    queues += [work_queue(d) for d in departments] + [receipt_queue(d) for d in departments]
    return queues + [history_stream(n, departments) for n in (names.HISTORY_INTAKE, names.HISTORY_LIFECYCLE)]


def routes(queues) -> dict[tuple[str, str, str], dict]:
    """(exchange, queue, key) -> binding arguments that declaring `queues` binds: a queue's
    exchange, or (a history stream, bound more than once) its bindings."""
    out = {(q.exchange.name, q.name, q.routing_key): q.binding_arguments or {} for q in queues if q.exchange}
    out |= {(b.exchange.name, q.name, b.routing_key): b.arguments or {} for q in queues for b in q.bindings}
    return {route: arguments for route, arguments in out.items() if route[0]}


def declare(connection, departments) -> list[str]:
    """Declare every exchange and queue of a tenant (idempotent); returns the queue names."""
    channel = connection.channel()
    try:
        for exchange in _EXCHANGES.values():
            exchange(channel).declare()
        queues = all_queues(departments)
        for queue in queues:
            queue(channel).declare()
        return [q.name for q in queues]
    finally:
        channel.close()
