"""A nameko entrypoint that hands its handler a batch of messages: `batch_consume(queue)`.

The profile of the hot path (docs/benchmarks.md) put most of a message's cost in what is paid
per message: a confirmed publish per announcement, the REDIS_WAIT_REPLICAS barrier, the ack.
`batch_consume` gathers up to BATCH_SIZE messages, or what came within BATCH_WAIT_MS of the
first, and runs the handler once with the list (each a reliable.Inbound); the handler publishes
through a Deferred publisher (one flush, one wait for the confirms). Then the barrier once and
the acks (one `multiple` ack when the batch is all that is unsettled below its last tag).

On any failure the batch falls back to one message per worker through reliable_consume's own
path (ReliableConsumer.handle_result: retry tiers, outage retry, dead letter with the reason),
each marked redelivered (the batch may have recorded it before failing: handlers are
idempotent), so a poison message is retried and dead-lettered alone and the others go through.

It is an Entrypoint and a SharedExtension of nameko's, not a fork: BatchQueueConsumer is
RawQueueConsumer (the failure-safe, undecoded one) on a connection of its own, so the delivery
tags its `multiple` acks cover are only its own queue's.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import eventlet
from amqp.exceptions import AMQPError
from nameko.exceptions import ContainerBeingKilled

from onegrid.adapters.nameko.reliable import Inbound, RawQueueConsumer, ReliableConsumer
from onegrid.adapters.redis.store import replicas_caught_up
from onegrid.kernel import metrics

log = logging.getLogger(__name__)

DEFAULT_SIZE = 50  # messages a batch holds at most (BATCH_SIZE in the nameko config)
DEFAULT_WAIT_MS = 5  # how long the first message of a batch waits for others (BATCH_WAIT_MS)
PREFETCH_BATCHES = 2  # the broker sends this many batches ahead: one handled while the next fills


@dataclass(frozen=True)
class Delivery:
    message: object  # kombu's Message, to settle
    inbound: Inbound


@dataclass(frozen=True)
class BatchSettings:
    size: int = DEFAULT_SIZE
    wait_ms: float = DEFAULT_WAIT_MS

    @classmethod
    def of(cls, config: dict) -> BatchSettings:
        raw_size = config.get("BATCH_SIZE")
        size = int(DEFAULT_SIZE if raw_size in (None, "") else raw_size)
        raw_wait = config.get("BATCH_WAIT_MS")
        wait = float(DEFAULT_WAIT_MS if raw_wait in (None, "") else raw_wait)
        if size < 1 or wait < 0:
            raise ValueError(f"BATCH_SIZE must be >= 1 and BATCH_WAIT_MS >= 0 (got {size}, {wait:g})")
        return cls(size, wait)

    @property
    def prefetch(self) -> int:
        return self.size * PREFETCH_BATCHES


class Gathering:
    """The batch being gathered (pure: no broker, no clock): `add` answers the batch to hand
    over once it is full; `take` hands over what there is (the wait ran out); each batch a
    generation, so a timer set for a batch already handed over does nothing."""

    def __init__(self, size: int):
        self.size, self.generation = size, 0
        self.pending: list = []

    def add(self, item) -> list | None:
        self.pending.append(item)
        return self.take() if len(self.pending) >= self.size else None

    def starts_batch(self) -> bool:
        return len(self.pending) == 1

    def take(self, generation: int | None = None) -> list:
        if generation is not None and generation != self.generation:
            return []  # that batch was full and went before its wait ran out
        batch, self.pending = self.pending, []
        self.generation += 1
        return batch


def one_ack_covers(batch_tags: Iterable[int], unsettled: Iterable[int]) -> bool:
    """Whether one `multiple` ack of the batch's highest tag acks the batch and nothing else:
    every unsettled delivery at or below it is the batch's (another batch still in hand, a
    message parked for retry and not yet settled, must not be acked with it)."""
    tags = set(batch_tags)
    if not tags:
        return False
    top = max(tags)
    return all(t in tags for t in unsettled if t <= top)


def after_batch(size: int, failed: bool) -> str:
    """What becomes of a handled batch: `ack` (all of it), `one_by_one` when it failed (each
    message alone through the reliable path, so the failure is the poison message's alone and
    the others go through), or `reliable` for a batch of one (its failure is its own: retry
    tier or dead letter at once, as reliable_consume does)."""
    if size == 1:
        return "reliable"
    return "one_by_one" if failed else "ack"


class BatchQueueConsumer(RawQueueConsumer):
    """RawQueueConsumer for batch entrypoints, on a connection of its own (nameko shares one
    queue consumer per class): prefetch sized to the batches, and the unsettled delivery tags
    of its channel known, for the `multiple` ack."""

    def __init__(self):
        super().__init__()
        self.unsettled: set[int] = set()
        self.channel = None

    @property
    def prefetch_count(self):
        if time.monotonic() < self.careful_until:
            return 1
        return max((p.settings.prefetch for p in self._providers if hasattr(p, "settings")), default=1)

    @contextmanager
    def extra_context(self, connection, channel):
        self.unsettled, self.channel = set(), channel  # a new connection numbers deliveries anew
        with super().extra_context(connection, channel):
            yield

    def handle_message(self, provider, body, message):
        self.unsettled.add(message.delivery_tag)  # in the consumer's thread, in delivery order
        super().handle_message(provider, body, message)

    def ack_message(self, message):
        self.unsettled.discard(message.delivery_tag)
        super().ack_message(message)

    def requeue_message(self, message):
        self.unsettled.discard(message.delivery_tag)
        super().requeue_message(message)

    def ack_batch(self, messages: list) -> None:
        """One `multiple` ack when it covers only the batch, else one ack each."""
        tags = [m.delivery_tag for m in messages]
        current = all(m.channel is self.channel for m in messages)
        if len(messages) > 1 and current and one_ack_covers(tags, self.unsettled):
            last = max(messages, key=lambda m: m.delivery_tag)
            try:
                last.ack(multiple=True)
            except (OSError, AMQPError) as exc:
                log.warning("could not ack a batch (%s); the broker will deliver it again", exc)
            self.unsettled.difference_update(tags)
            return
        for m in messages:
            self.ack_message(m)


class BatchConsumer(ReliableConsumer):
    """`batch_consume(queue)`: the handler takes a list of Inbound (one or more)."""

    queue_consumer = BatchQueueConsumer()

    def setup(self):
        self.settings = BatchSettings.of(self.container.config)
        self.gathering = Gathering(self.settings.size)
        super().setup()

    def handle_message(self, body, message):
        # in a thread of its own per message (nameko's QueueConsumer); nothing here may raise
        inbound = self._read(message)
        if inbound is None:
            return
        batch = self.gathering.add(Delivery(message, inbound))
        if batch:
            self._hand_over(batch)
        elif self.gathering.starts_batch():
            generation = self.gathering.generation
            self.container.spawn_managed_thread(partial(self._after_wait, generation), identifier="batch wait")

    def _after_wait(self, generation: int) -> None:
        eventlet.sleep(self.settings.wait_ms / 1000)
        batch = self.gathering.take(generation)
        if batch:
            self._hand_over(batch)

    def _hand_over(self, batch: list[Delivery]) -> None:
        started = time.perf_counter()
        try:
            self.container.spawn_worker(
                self,
                ([d.inbound for d in batch],),
                {},
                context_data={},
                handle_result=partial(self.handle_batch, batch, started),
            )
        except ContainerBeingKilled:
            for d in batch:
                self.queue_consumer.requeue_message(d.message)

    def handle_batch(self, batch: list[Delivery], started, worker_ctx, result=None, exc_info=None):
        if after_batch(len(batch), exc_info is not None) == "reliable":  # one message: as reliable_consume
            return self.handle_result(batch[0].message, started, worker_ctx, result, exc_info)
        if exc_info is None and self.redis is not None:
            try:  # once for the batch: a replica has what the whole batch wrote
                replicas_caught_up(self.redis, self.tenant, self.wanted, self.wait_ms)
            except Exception:
                exc_info = sys.exc_info()
        outcome = "error" if exc_info else "ok"
        metrics.HANDLER_SECONDS.labels(self.container.service_name, self.method_name, outcome).observe(
            time.perf_counter() - started
        )
        if after_batch(len(batch), exc_info is not None) == "ack":
            self.queue_consumer.ack_batch([d.message for d in batch])
            return result, exc_info
        log.warning(
            "%s: a batch of %d failed (%s); handling its messages one by one",
            self.queue_name,
            len(batch),
            exc_info[1],
        )
        self.container.spawn_managed_thread(partial(self._one_by_one, batch), identifier="batch fallback")
        return result, exc_info

    def _one_by_one(self, batch: list[Delivery]) -> None:
        """Each message of a failed batch alone, as reliable_consume handles one: the batch may
        have recorded some before it failed, so each is marked redelivered (handlers then look
        for what a first try left, and publish again what it may not have)."""
        for d in batch:
            started = time.perf_counter()
            try:
                self.container.spawn_worker(
                    self,
                    ([replace(d.inbound, redelivered=True)],),
                    {},
                    context_data={},
                    handle_result=partial(self.handle_result, d.message, started),
                )
            except ContainerBeingKilled:
                self.queue_consumer.requeue_message(d.message)


batch_consume = BatchConsumer.decorator
