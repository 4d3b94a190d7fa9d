"""The names of a county's bus: exchanges, the queues OneGrid's services consume, each
department's work queue, and the retry tiers and dead letters beside a consumed queue.
Plain names, no client library: provisioning, the Kubernetes rendering and the AsyncAPI
document read them here; onegrid.adapters.amqp.topology declares them with kombu.

Exchanges:  onegrid.intake (topic, `<department>.<event type>`) — department systems publish here
            onegrid.events (topic) — platform events: case.registered, work_order.returned, ...
            onegrid.workorders (direct, key = department) — each department's work queue
            onegrid.intake.dead-letters (headers) — what the broker dead-letters from
                intake.events, sorted by why (INTAKE_DEAD_LETTERS below); nobody publishes to it
            onegrid.receipts (direct, key = department) — each department's receipts: what became
                of every event it sent (accepted, merged, quarantined)

Streams (x-queue-type stream, the broker's own append-only log; retention by the `onegrid-history`
policy from the manifest's limits): the broker appends to them through bindings, nobody
publishes to them directly.
            history.intake — every event intake accepted (its `case.registered`) and every one it
                quarantined (`intake.quarantined`: the original bytes with the reason)
            history.lifecycle — every lifecycle event: case.* and work_order.* on onegrid.events
                and each department's work_order.dispatched on onegrid.workorders
"""

from __future__ import annotations

INTAKE = "onegrid.intake"
EVENTS = "onegrid.events"
WORKORDERS = "onegrid.workorders"
INTAKE_DEAD = "onegrid.intake.dead-letters"
RECEIPTS = "onegrid.receipts"
EXCHANGES = {INTAKE: "topic", EVENTS: "topic", WORKORDERS: "direct", INTAKE_DEAD: "headers", RECEIPTS: "direct"}
INTAKE_EXPIRED = "intake.expired"
# doors: services that take requests in another protocol and publish each as one event type of
# a department's contract into onegrid.intake, as that department (their broker user may publish
# that routing key only): service -> (department, event type)
DOORS = {"open311": ("governance", "open311_request_received")}

# queue name -> (exchange, binding key): the queues OneGrid's services consume
CONSUMED = {
    "intake.events": (INTAKE, "#"),
    "routing.case-registered": (EVENTS, "case.registered"),
    "routing.work-order-returned": (EVENTS, "work_order.returned"),
    "routing.dispatch-requested": (EVENTS, "case.dispatch_requested"),
    "scoring.case-events": (EVENTS, "case.#"),
    "scoring.work-order-events": (EVENTS, "work_order.#"),
    "notify.case-events": (EVENTS, "case.#"),
    # the county's registry service published a contract version, a manifest or a retirement:
    # the services that judge events (intake) and route them (routing) reload at once
    "intake.registry-changed": (EVENTS, "registry.changed"),
    "routing.registry-changed": (EVENTS, "registry.changed"),
    # a department's per-message TTL (`expiration`) that ran out in intake.events' backlog:
    # intake quarantines it as `expired` (the binding key is the reason; the headers decide)
    INTAKE_EXPIRED: (INTAKE_DEAD, "expired"),
}
# Why RabbitMQ dead-letters a message from intake.events (its x-first-death-reason; the four it
# knows) -> the queue that takes it. Every reason has a queue: an unmatched dead letter is lost.
INTAKE_DEAD_LETTERS = {
    "expired": INTAKE_EXPIRED,
    "delivery_limit": "intake.events.dlq",  # poison: crashed its reader DELIVERY_LIMIT times
    "rejected": "intake.events.dlq",
    "maxlen": "intake.events.dlq",
}
HISTORY_INTAKE = "history.intake"
HISTORY_LIFECYCLE = "history.lifecycle"
HISTORY_PREFIX = "history."
STREAM = "stream"
QUARANTINED = "intake.quarantined"  # intake's record of a quarantined event, kept on history.intake
WORK_QUEUE_PREFIX = "workorders."
RECEIPT_QUEUE_PREFIX = "receipts."
DEFAULT_EXCHANGE = "amq.default"  # what permissions call the default exchange ("")
RPC_EXCHANGE = "nameko-rpc"  # nameko's default rpc_exchange
# what a deployment runs with unless ONEGRID_QUEUE_TYPE / RETRY_DELAYS_MS say otherwise
DEFAULT_QUEUE_TYPE = "quorum"
DEFAULT_RETRY_DELAYS_MS = (1000, 5000, 30000)


def binding_arguments(exchange: str, key: str) -> dict[str, str]:
    """The arguments a binding needs: on the headers exchange, the dead-letter reason `key`
    (`any-with-x`: RabbitMQ matches x- headers only when told to, 3.10+)."""
    if EXCHANGES.get(exchange) != "headers":
        return {}
    return {"x-match": "any-with-x", "x-first-death-reason": key}


def work_queue(department: str) -> str:
    return WORK_QUEUE_PREFIX + department


def receipt_queue(department: str) -> str:
    return RECEIPT_QUEUE_PREFIX + department


def department_queues(department: str) -> tuple[str, str]:
    """What a department reads: its work orders and its receipts."""
    return work_queue(department), receipt_queue(department)


def dead_letter_queue(name: str) -> str:
    return f"{name}.dlq"


def retry_queue(name: str, delay_ms: int) -> str:
    return f"{name}.retry.{delay_ms}ms"


def rpc_queue(service: str) -> str:
    """The queue nameko serves `service`'s RPC on."""
    return f"rpc-{service}"


def rpc_reply_prefix(service: str) -> str:
    """What the reply queues of `service`'s RPC calls start with (nameko adds a uuid)."""
    return f"rpc.reply-{service}-"


def history_routes(departments) -> tuple[tuple[str, str, str], ...]:
    """(exchange, stream, binding key) that make the broker append to the history streams."""
    routes = [
        (EVENTS, HISTORY_INTAKE, "case.registered"),
        (EVENTS, HISTORY_INTAKE, QUARANTINED),
        (EVENTS, HISTORY_LIFECYCLE, "case.#"),
        (EVENTS, HISTORY_LIFECYCLE, "work_order.#"),
    ]
    return tuple(routes + [(WORKORDERS, HISTORY_LIFECYCLE, d) for d in departments])
