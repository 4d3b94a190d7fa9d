"""A nameko entrypoint with a failure policy: nameko's own Consumer acks a message whose
handler raised (it is gone) or, with requeue_on_error, requeues it at once, forever.

`reliable_consume(queue)` instead hands the handler the raw message (kombu does not decode
it, so a malformed body reaches the handler, not the consumer thread), and on an exception
republishes it with confirms to `<queue>.retry.<ms>` (a TTL queue that dead-letters back),
one tier per attempt, then to `<queue>.dlq` with the error in headers. The original is acked
only after that publish is confirmed; if the broker refuses, it is requeued instead.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import redis
from amqp.exceptions import AMQPError, RecoverableChannelError, RecoverableConnectionError
from kombu import Connection
from nameko.exceptions import ContainerBeingKilled
from nameko.messaging import Consumer, QueueConsumer, QueueConsumerStopped
from nameko.rpc import Rpc, RpcConsumer

from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.bus import Bus
from onegrid.adapters.redis import connect
from onegrid.adapters.redis.store import NotReplicated, replicas_caught_up
from onegrid.kernel import metrics, settings
from onegrid.kernel.clock import now_iso

log = logging.getLogger(__name__)
ATTEMPT = "x-og-attempt"
FIRST_FAILED = "x-og-first-failed-at"  # epoch seconds of a message's first failed attempt
ROUTING_KEY = "x-og-routing-key"
USER_ID = "x-og-user-id"
# set by `onegrid quarantine replay`: the transport the event first came by (http, amqp), so a
# replayed event is recorded as one; trusted only off the default exchange (see _inbound)
REPLAYED_FROM = "x-og-replayed-from"
# what the broker and the retry tiers add to a message on its way round again: not part of what
# the publisher sent, so not part of a quarantined message's identity or its replay
BOOKKEEPING = frozenset(
    {
        ATTEMPT,
        FIRST_FAILED,
        ROUTING_KEY,
        REPLAYED_FROM,
        "x-delivery-count",
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)


# what fails a handler when something it depends on is down, not because of the message: a
# Redis unreachable, stalled, loading its data or demoted, no replica taking a write in time,
# the broker's connection lost. Such a message is retried past its tiers for as long as
# settings.outage_retry_s allows (a failover, a restart, a resync can outlast 1 + 5 + 30 s).
# A Redis refusing writes at maxmemory is not one: it needs an operator, and dead-letters.
OUTAGES = (
    redis.ConnectionError,  # also BusyLoadingError, Sentinel's MasterNotFoundError
    redis.TimeoutError,
    redis.ReadOnlyError,
    NotReplicated,
    RecoverableConnectionError,
    RecoverableChannelError,
    ConnectionError,  # a socket's: reset, refused, broken pipe
    TimeoutError,
)


def is_outage(exc: BaseException | None) -> bool:
    # py-amqp raises a bare OSError when the broker's connection goes ("Server unexpectedly
    # closed connection"); its subclasses (a file not found, an HTTP client's errors) are not
    # an outage of the handler's own dependencies
    return isinstance(exc, OUTAGES) or type(exc) is OSError


@dataclass(frozen=True)
class Inbound:
    """What a handler sees: the bytes and headers exactly as published."""

    body: bytes
    headers: dict
    content_type: str | None
    routing_key: str | None
    redelivered: bool
    user_id: str | None
    replayed_from: str | None = None  # a replay by the operator: the transport it first came by


def raw_body(message) -> bytes:
    """The bytes as published. py-amqp decodes a body to str when the publisher declared a
    content_encoding it knows (utf-8, latin-1, ...); encoding it back restores the bytes."""
    body = message.body
    if isinstance(body, str):
        try:
            return body.encode(message.content_encoding or "utf-8", errors="surrogateescape")
        except (LookupError, UnicodeError):  # an encoding name Python does not know ("binary")
            return body.encode("utf-8", errors="surrogatepass")
    return bytes(body or b"")


def clean_headers(headers: dict) -> dict:
    """Header names as text (py-amqp hands over a name that is not UTF-8 as bytes), so the
    headers can be sorted, stored and compared; values are left as they came."""
    return {
        (k.decode("utf-8", "backslashreplace") if isinstance(k, bytes) else str(k)): v
        for k, v in (headers or {}).items()
    }


class SafeQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer, but an ack or requeue on a connection that died meanwhile is
    logged, not raised: nameko only expects amqp's ConnectionError there, and the socket's own
    errors (broken pipe, reset) would stop the whole service. The broker takes such a message
    back by itself and delivers it again; handlers are idempotent.

    `consuming` is what readiness reads: true from the consumers' declaration on a live
    connection until that connection is lost (kombu then reconnects, and it is true again)."""

    consuming = False

    @contextmanager
    def extra_context(self, connection, channel):
        self.consuming = True
        try:
            yield
        finally:
            self.consuming = False

    def ack_message(self, message):
        self._settle(super().ack_message, message, "ack")

    def requeue_message(self, message):
        self._settle(super().requeue_message, message, "requeue")

    @staticmethod
    def _settle(settle, message, what: str) -> None:
        try:
            settle(message)
        except (OSError, AMQPError) as exc:
            log.warning("could not %s a message (%s); the broker will deliver it again", what, exc)


class SafeRpcConsumer(RpcConsumer):
    queue_consumer = SafeQueueConsumer()


class SafeRpc(Rpc):
    rpc_consumer = SafeRpcConsumer()


rpc = SafeRpc.decorator  # nameko's @rpc, surviving a broker restart


class RawQueueConsumer(SafeQueueConsumer):
    """nameko's QueueConsumer, but messages reach providers undecoded (on_message), and a
    frame the AMQP client cannot read (a property that is not UTF-8, headers nested thousands
    deep) costs a reconnect, not the service: the message comes back unacked and the broker's
    delivery-limit policy dead-letters it after a few tries (onegrid tenant onboard sets it)."""

    careful_until = 0.0  # after an unreadable frame: one message at a time, so only it is redelivered

    @property
    def prefetch_count(self):
        return 1 if time.monotonic() < self.careful_until else self.container.max_workers

    def run(self, _tokens=1, **kwargs):
        while not self.should_stop:
            try:
                return super().run(_tokens, **kwargs)
            except QueueConsumerStopped:
                raise
            except Exception:  # noqa: BLE001 - anything else is one unreadable message
                log.exception("could not read a message from the broker; reconnecting one message at a time")
                self.careful_until = time.monotonic() + 30
                time.sleep(0.1)

    def on_iteration(self):
        super().on_iteration()
        if self.careful_until and time.monotonic() >= self.careful_until:  # back to full prefetch
            self.careful_until = 0.0
            for consumer in self._consumers.values():
                consumer.qos(prefetch_count=self.prefetch_count)

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            consumer = consumer_cls(
                queues=[provider.queue],
                on_message=partial(self.handle_message, provider, None),
                on_decode_error=lambda message, exc: None,
                accept=None,
            )
            consumer.qos(prefetch_count=self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()


class ReliableConsumer(Consumer):
    queue_consumer = RawQueueConsumer()

    def __init__(self, queue_name: str, **kwargs):
        self.queue_name = queue_name
        super().__init__(queue=topology.consumed_queue(queue_name), **kwargs)

    def setup(self):
        config = self.container.config
        self.tenant = config["TENANT"]
        self.delays = settings.retry_delays_ms()
        uri = config["AMQP_URI"]
        with Connection(uri) as conn:  # our retry tiers must exist before the first failure
            channel = conn.channel()
            for queue in [self.queue, topology.dead_letter_queue(self.queue_name)] + [
                topology.retry_queue(self.queue_name, d) for d in self.delays
            ]:
                queue(channel).declare()
            channel.close()
        self.bus = Bus(uri)
        # with REDIS_WAIT_REPLICAS, a message is acked only once a replica has what its handler
        # wrote: a write only the primary had is lost when the primary is, and the message
        # would not come again (a merge, a score, a work order's step lost in a failover)
        self.wanted, self.wait_ms = settings.redis_wait_replicas()
        self.redis = (
            connect.client(config.get("REDIS_URL", "redis://127.0.0.1:6379/0"), max_connections=8)
            if self.wanted > 0
            else None
        )
        super().setup()

    def handle_message(self, body, message):
        # nothing here may raise: an exception in this thread would stop the whole service
        inbound = self._read(message)
        if inbound is None:
            return
        started = time.perf_counter()
        try:
            self.container.spawn_worker(
                self, (inbound,), {}, context_data={}, handle_result=partial(self.handle_result, message, started)
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def _read(self, message) -> Inbound | None:
        """The message as a handler sees it; None when it cannot be read (it is then retried
        or dead-lettered with the error, as a handler's failure is)."""
        try:
            return self._inbound(message)
        except Exception:
            log.exception("unreadable message on %s", self.queue_name)
            self.handle_result(message, time.perf_counter(), None, exc_info=sys.exc_info())
            return None

    def _inbound(self, message) -> Inbound:
        headers = clean_headers(message.headers)
        routing_key, user_id = message.delivery_info.get("routing_key"), message.properties.get("user_id")
        replayed_from = None
        if routing_key == self.queue_name:
            # back from a retry tier or a replay (the default exchange, which only OneGrid's
            # services may write to): the original routing key and user travel in headers
            routing_key, user_id = headers.get(ROUTING_KEY) or None, headers.get(USER_ID) or None
            replayed_from = str(headers[REPLAYED_FROM]) if headers.get(REPLAYED_FROM) else None
        return Inbound(
            raw_body(message),
            headers,
            message.content_type,
            routing_key,
            bool(message.delivery_info.get("redelivered")),
            user_id,
            replayed_from,
        )

    def handle_result(self, message, started, worker_ctx, result=None, exc_info=None):
        if exc_info is None and self.redis is not None:
            try:
                replicas_caught_up(self.redis, self.tenant, self.wanted, self.wait_ms)
            except Exception:  # not replicated, so not acked: retried (handlers are idempotent)
                exc_info = sys.exc_info()
        outcome = "error" if exc_info else "ok"
        metrics.HANDLER_SECONDS.labels(self.container.service_name, self.method_name, outcome).observe(
            time.perf_counter() - started
        )
        if exc_info is None:
            self.queue_consumer.ack_message(message)
            return result, exc_info
        try:
            self._park(message, exc_info)
        except Exception:  # the broker did not take it: keep the original, it will come back
            log.exception("could not retry or dead-letter a message of %s; requeueing it", self.queue_name)
            self.queue_consumer.requeue_message(message)
        else:
            self.queue_consumer.ack_message(message)
        return result, exc_info

    def _park(self, message, exc_info) -> None:
        headers = dict(message.headers or {})
        attempt = int(headers.get(ATTEMPT, 0)) + 1
        headers[ATTEMPT] = attempt
        if message.delivery_info.get("routing_key") != self.queue_name:
            headers[ROUTING_KEY] = message.delivery_info.get("routing_key") or ""
            headers[USER_ID] = message.properties.get("user_id") or ""
        first_failed = float(headers.get(FIRST_FAILED) or time.time())
        headers[FIRST_FAILED] = first_failed
        error = "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()[:2000]
        outage_left = first_failed + settings.outage_retry_s() - time.time() if is_outage(exc_info[1]) else 0
        if attempt <= len(self.delays) or (self.delays and outage_left > 0):
            delay = self.delays[min(attempt, len(self.delays)) - 1]
            target = topology.retry_queue(self.queue_name, delay).name
            metrics.RETRIES.labels(self.tenant, self.queue_name).inc()
            log.warning("%s attempt %d failed (%s); retrying via %s", self.queue_name, attempt, error, target)
        else:
            target = topology.dead_letter_queue(self.queue_name).name
            headers.update(
                {
                    "x-og-error": error,
                    "x-og-error-type": exc_info[0].__name__,
                    "x-og-failed-at": now_iso(),
                    "x-og-queue": self.queue_name,
                }
            )
            metrics.DEAD_LETTERED.labels(self.tenant, self.queue_name).inc()
            log.error("%s gave up after %d attempts (%s); dead-lettered to %s", self.queue_name, attempt, error, target)
        self.bus.publish_raw(raw_body(message), headers, message.content_type, "", target)


reliable_consume = ReliableConsumer.decorator
