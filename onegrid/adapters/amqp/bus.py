"""Publishing on a tenant's bus with publisher confirms: a publish returns once the broker
has taken responsibility, and `mandatory` turns "no queue bound" into an error, not a loss.

A small pool of confirm-mode connections is kept per Bus: building a kombu Connection per
publish (as nameko's Publisher does) was a fifth of intake's CPU. A connection that saw an
error is dropped, never reused, so a late confirm or return cannot be read by another publish.

When a broker node raises its memory or disk alarm it blocks every publishing connection
(`connection.blocked`) and stops confirming. A publish with no deadline waits for the alarm to
clear, as a message handler should; one with a deadline (HTTP intake: someone is waiting on
the answer) raises BusBlocked instead, and so does every bounded publish for a while after a
connection reported blocked, so a waiting client is told at once and retries later. What such
a publish sent may still be delivered once the alarm clears: the caller must be idempotent
(intake is: a retried event whose case is still `registered` is announced again, and its
consumers deduplicate on the ce-id).
"""

from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlparse

import amqp
from amqp import spec
from amqp.exceptions import ConnectionError as AMQPConnectionError
from kombu import Connection

from onegrid.adapters.amqp import topology
from onegrid.kernel import envelope as ce

PUBLISH_ARGS = "Bssbb"  # basic.publish's argument signature (py-amqp's Channel._basic_publish)
BLOCKED_HOLD = 5.0  # seconds a bounded publish fails at once after a connection reported blocked


class Unroutable(Exception):
    """A mandatory message that no queue was bound to take."""


class BusBlocked(Exception):
    """The broker blocks publishers (a memory or disk alarm), or did not confirm in time."""

    def __init__(self, detail: str, retry_after: float = BLOCKED_HOLD):
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outgoing:
    """One message to publish, as Bus.publish_raw takes it."""

    body: bytes
    headers: dict
    content_type: str | None
    exchange: object
    routing_key: str
    mandatory: bool = True


def outgoing(env: ce.Envelope, data, exchange=topology.EVENTS, routing_key: str | None = None, mandatory: bool = True):
    return Outgoing(ce.json_bytes(data), env.headers(), ce.JSON, exchange, routing_key or env.type, mandatory)


@dataclass
class Confirms:
    """Publisher confirms on one channel, counted rather than waited for one by one: the broker
    numbers a confirm-mode channel's publishes from 1 and acks (or nacks) them, several at once
    with `multiple`; a mandatory message no queue takes is returned before its ack."""

    sent: int = 0
    upto: int = 0  # every tag <= this one is confirmed (a `multiple` ack)
    single: set = field(default_factory=set)  # tags acked one by one above `upto`
    nacked: int = 0
    returned: list = field(default_factory=list)  # (exchange, routing key) of unroutable messages

    def on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self.upto = max(self.upto, tag)
            self.single = {t for t in self.single if t > self.upto}
        else:
            self.single.add(tag)

    def on_nack(self, tag: int, multiple: bool) -> None:
        self.nacked += 1
        self.on_ack(tag, multiple)

    def on_return(self, exc, exchange, routing_key, message) -> None:
        self.returned.append((exchange, routing_key))

    def done(self, first: int, last: int) -> bool:
        return all(t <= self.upto or t in self.single for t in range(first, last + 1))


def amqp_uri(base: str, tenant: str) -> str:
    """The tenant's vhost on the broker at `base` (e.g. amqp://guest:guest@127.0.0.1:5672/)."""
    return base.rstrip("/") + "/" + quote(tenant, safe="")


def vhost_of(uri: str) -> str:
    return unquote(urlparse(uri).path.lstrip("/")) or "/"


def send(channel, o: Outgoing, user_id: str | None = None) -> None:
    """basic.publish of `o` on a py-amqp channel in confirm mode, as kombu's Producer.publish
    ends up sending it (persistent, the same properties) without what it does first for every
    message: serializer and compression lookups, declarations, and a read of the socket for a
    `connection.blocked` (publish_many reads the socket anyway while it waits for the confirms,
    where a blocked broker is noticed). A third of the CPU per message (docs/benchmarks.md)."""
    properties = {"user_id": user_id} if user_id else {}
    message = amqp.Message(
        o.body,
        content_type=o.content_type or ce.JSON,
        content_encoding="binary",
        application_headers=o.headers,
        delivery_mode=2,
        priority=0,  # as kombu sends it
        **properties,
    )
    exchange = getattr(o.exchange, "name", o.exchange)
    channel.send_method(spec.Basic.Publish, PUBLISH_ARGS, (0, exchange, o.routing_key, o.mandatory, False), message)


@contextmanager
def corked(conn: Connection):
    """The frames of what is published inside go out in one write at the end. py-amqp sends
    each publish's frames with a sendall of their own (under eventlet a trip through the hub
    each): one system call per batch instead of one per message. Only for publishes nothing
    waits on before the end (a batch's, whose confirms are waited for after it); on an error
    nothing gathered is sent, and the connection is not used again (Bus._confirming)."""
    transport = conn.connection.transport
    write = transport._write
    parts: list[bytes] = []
    transport._write = lambda data: parts.append(bytes(data))  # py-amqp hands a view of its buffer
    try:
        yield
    finally:
        transport._write = write
    if parts:
        write(b"".join(parts))


class Bus:
    def __init__(self, uri: str, pool_size: int = 16, vouch: bool = False):
        self.uri = uri
        # a door's publishes carry user_id = its broker user, which RabbitMQ checks: intake
        # then knows the door authenticated (onegrid.domain.intake.authenticated_department)
        self.user_id = (unquote(urlparse(uri).username or "") or None) if vouch else None
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._batch_idle: queue.LifoQueue = queue.LifoQueue()  # channels for publish_many
        self._slots = threading.BoundedSemaphore(pool_size)
        self._blocked_until = 0.0  # monotonic; the broker said `connection.blocked` before it
        self.blocked_reason = ""

    def blocked(self) -> bool:
        """The broker reported blocking publishers within the last BLOCKED_HOLD seconds, and
        no connection has said unblocked since."""
        return time.monotonic() < self._blocked_until

    def _on_blocked(self, reason: str = "") -> None:
        self.blocked_reason = reason or "the broker blocks publishers"
        self._blocked_until = time.monotonic() + BLOCKED_HOLD

    def _on_unblocked(self) -> None:
        self._blocked_until = 0.0

    @contextmanager
    def _producer(self):
        with self._slots:
            try:
                conn, producer = self._idle.get_nowait()
            except queue.Empty:
                conn = Connection(self.uri, transport_options={"confirm_publish": True}, heartbeat=0)
                conn.connect()
                conn.connection.on_blocked = self._on_blocked  # read while waiting for a confirm
                conn.connection.on_unblocked = self._on_unblocked
                producer = conn.Producer()
            try:
                yield producer
            except TimeoutError:
                conn.collect()  # a blocked broker reads nothing: a polite close would wait for it forever
                raise
            except BaseException:
                conn.release()
                raise
            self._idle.put((conn, producer))

    def publish(
        self,
        env: ce.Envelope,
        data,
        exchange=topology.EVENTS,
        routing_key: str | None = None,
        mandatory: bool = True,
        timeout: float | None = None,
    ) -> None:
        o = outgoing(env, data, exchange, routing_key, mandatory)
        self.publish_raw(o.body, o.headers, o.content_type, o.exchange, o.routing_key, o.mandatory, timeout)

    def deferred(self) -> Deferred:
        """A Publisher that keeps what is published until `flush()` sends it all at once."""
        return Deferred(self)

    @contextmanager
    def _confirming(self):
        """A pooled connection whose channel counts confirms (Confirms) instead of waiting on each."""
        with self._slots:
            try:
                conn, producer, confirms = self._batch_idle.get_nowait()
            except queue.Empty:
                conn = Connection(self.uri, heartbeat=0)
                conn.connect()
                conn.connection.on_blocked = self._on_blocked
                conn.connection.on_unblocked = self._on_unblocked
                producer = conn.Producer()
                confirms = Confirms()
                channel = producer.channel
                channel.confirm_select()
                channel.events["basic_ack"].add(confirms.on_ack)
                channel.events["basic_nack"].add(confirms.on_nack)
                channel.events["basic_return"].add(confirms.on_return)
            try:
                yield conn, producer, confirms
            except BaseException:
                conn.collect()  # confirms owed on it would be read by the next batch: never reused
                raise
            self._batch_idle.put((conn, producer, confirms))

    def publish_many(self, items: list[Outgoing]) -> None:
        """Publish `items` in order on one channel, then wait once until the broker confirmed
        them all (as long as it takes: a message handler's publish). Unroutable if a mandatory
        one was returned, BusBlocked if one was nacked; either way none is known lost, and the
        caller, which acks nothing before this returns, may send them all again."""
        if not items:
            return
        with self._confirming() as (conn, producer, confirms):
            first = confirms.sent + 1
            returned = len(confirms.returned)
            channel = producer.channel
            with corked(conn):
                for o in items:
                    send(channel, o, self.user_id)
                    confirms.sent += 1
            while not confirms.done(first, confirms.sent):
                try:
                    conn.drain_events(timeout=1.0)
                except TimeoutError:  # a blocked broker confirms nothing: a handler waits for it
                    continue
            if len(confirms.returned) > returned:
                exchange, key = confirms.returned[returned]
                raise Unroutable(f"no queue bound for {key!r} on {exchange!r}")
            if confirms.nacked:
                confirms.nacked = 0
                raise BusBlocked("the broker refused (nacked) a message of the batch")

    def bounded(self, timeout: float) -> BoundedBus:
        """This bus as a Publisher whose publishes give up (BusBlocked) after `timeout` seconds."""
        return BoundedBus(self, timeout)

    def publish_raw(
        self,
        body: bytes,
        headers: dict,
        content_type: str | None,
        exchange,
        routing_key: str,
        mandatory: bool = True,
        timeout: float | None = None,
    ) -> None:
        if timeout is not None and self.blocked():
            raise BusBlocked(f"the broker blocks publishers: {self.blocked_reason}")
        for attempt in (1, 2):  # a pooled connection the broker closed meanwhile: once more, fresh
            try:
                with self._producer() as producer:
                    producer.publish(
                        body,
                        exchange=exchange,
                        routing_key=routing_key,
                        headers=headers,
                        content_type=content_type or ce.JSON,
                        content_encoding="binary",
                        delivery_mode=2,
                        mandatory=mandatory,
                        retry=False,
                        timeout=timeout,
                        confirm_timeout=timeout,
                        **({"user_id": self.user_id} if self.user_id else {}),
                    )
                return
            except TimeoutError as exc:  # no confirm in time: never sent again here (it may yet arrive)
                self._on_blocked(self.blocked_reason or f"no publisher confirm within {timeout:g}s")
                raise BusBlocked(f"the broker did not confirm within {timeout:g}s: {self.blocked_reason}") from exc
            except (OSError, AMQPConnectionError):
                if attempt == 2:
                    raise
            except Exception as exc:
                if "NO_ROUTE" in str(exc):
                    name = getattr(exchange, "name", exchange)
                    raise Unroutable(f"no queue bound for {routing_key!r} on {name!r}") from exc
                raise

    def close(self) -> None:
        while True:
            try:
                conn, _ = self._idle.get_nowait()
            except queue.Empty:
                return
            conn.release()


class Deferred:
    """A Publisher for a batch: publishes are kept, in order, and `flush()` sends them on one
    channel and waits for their confirms once. Only for messages whose record is already in the
    store and whose delivery is acked after the flush: if it fails, the batch is done again."""

    def __init__(self, bus: Bus):
        self.bus = bus
        self.items: list[Outgoing] = []

    def publish(
        self, env: ce.Envelope, data, exchange=topology.EVENTS, routing_key: str | None = None, mandatory: bool = True
    ) -> None:
        self.items.append(outgoing(env, data, exchange, routing_key, mandatory))

    def flush(self) -> int:
        items, self.items = self.items, []
        self.bus.publish_many(items)
        return len(items)


class BoundedBus:
    """A Bus whose publishes wait at most `timeout` seconds (see Bus.bounded)."""

    def __init__(self, bus: Bus, timeout: float):
        self.bus, self.timeout = bus, timeout

    def publish(
        self, env: ce.Envelope, data, exchange=topology.EVENTS, routing_key: str | None = None, mandatory: bool = True
    ) -> None:
        self.bus.publish(env, data, exchange, routing_key, mandatory, timeout=self.timeout)
