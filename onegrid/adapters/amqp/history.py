"""Reading a county's history streams (history.intake, history.lifecycle) over AMQP 0-9-1:
the HistoryReader port of onegrid.app.ports.

A stream is read like a queue with a prefetch and manual acks (the ack only lets the broker
send more; nothing is removed), starting where the consumer argument `x-stream-offset` says:
`first`, an offset, or a timestamp (the broker starts at the chunk holding it, so a few earlier
messages may come first; onegrid.app.history filters by the event's own time). A stream never
ends, so a read stops at the last message the stream held when the read began: its offset is
learnt first by reading from `last` (the newest chunk).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

from amqp.exceptions import AccessRefused, NotAllowed, NotFound
from kombu import Connection

from onegrid.app.ports import Kept

PREFETCH = 1000  # unacknowledged messages in flight: a stream consumer must have a prefetch
ACK_EVERY = 250
IDLE = 1.0  # seconds without a message: the stream has nothing more for this read


class NoHistory(LookupError):
    """The county's vhost or its history stream does not exist (not onboarded, or onboarded
    before the streams were part of its bus: `onegrid tenant onboard <county>` adds them)."""


class HistoryRefused(NoHistory):
    """The broker user may not read that stream (a department's; a service's but supervision's
    on history.lifecycle; or a county onboarded before its users were granted the streams)."""


class StreamReader:
    def __init__(self, uri: str, idle: float = IDLE):
        self.uri, self.idle = uri, idle

    def tail(self, stream: str) -> int:
        """The offset of the newest message in `stream` (-1: empty)."""
        last = -1
        # `last` is the newest chunk, and then every message appended after it: on a busy county
        # that never falls idle, so this looks for a bounded time (the chunk comes at once)
        for kept in self._consume(stream, "last", None, time.monotonic() + 2 * self.idle):
            last = max(last, kept.offset)
        return last

    def read(self, stream: str, since: float | None = None, offset: int | None = None) -> Iterator[Kept]:
        """The messages of `stream` from `offset`, else from the chunk holding epoch `since`,
        else from the first kept, up to the newest one when the read began."""
        end = self.tail(stream)
        if end < 0 or (offset is not None and offset > end):
            return
        start: int | str | datetime = "first" if since is None else datetime.fromtimestamp(since, UTC)
        if offset is not None:
            start = max(0, offset)
        yield from self._consume(stream, start, end)

    def _consume(self, stream: str, start, end: int | None, deadline: float | None = None) -> Iterator[Kept]:
        try:
            yield from self._stream(stream, start, end, deadline)
        except AccessRefused as exc:
            raise HistoryRefused(
                f"this broker user may not read {stream} on {self.uri.rsplit('/', 1)[-1]} ({exc}); "
                "onegrid tenant onboard <county> grants what onegrid.operator.desired says"
            ) from None
        except (NotAllowed, NotFound) as exc:
            raise NoHistory(
                f"no {stream} on {self.uri.rsplit('/', 1)[-1]} ({exc}); onboard the county "
                "(onegrid tenant onboard <county>) to add its history streams"
            ) from None

    def _stream(self, stream: str, start, end: int | None, deadline: float | None) -> Iterator[Kept]:
        got: list[Kept] = []

        def on_message(message) -> None:
            props = message.properties
            headers = dict(props.get("application_headers") or {})
            offset = int(headers.pop("x-stream-offset", -1))
            key = message.delivery_info.get("routing_key") or ""
            got.append(Kept(offset, key, headers, bytes(message.body), props.get("content_type")))
            tags.append(message.delivery_info["delivery_tag"])

        tags: list[int] = []
        with Connection(self.uri, heartbeat=0) as conn:
            conn.connect()
            channel, tag = conn.connection.channel(), None
            try:
                channel.basic_qos(0, PREFETCH, False)
                tag = channel.basic_consume(stream, callback=on_message, arguments={"x-stream-offset": start})
                while deadline is None or time.monotonic() < deadline:
                    try:
                        conn.connection.drain_events(timeout=self.idle)
                    except TimeoutError:
                        break
                    if len(tags) >= ACK_EVERY:
                        channel.basic_ack(tags[-1], multiple=True)
                        tags.clear()
                    done = False
                    for kept in got:
                        if end is not None and kept.offset > end:
                            done = True
                            break
                        yield kept
                        done = end is not None and kept.offset >= end
                        if done:
                            break
                    got.clear()
                    if done:
                        break
            finally:
                if channel.is_open:
                    if tag is not None:  # no more deliveries while the channel closes
                        channel.basic_cancel(tag)
                    channel.close()
