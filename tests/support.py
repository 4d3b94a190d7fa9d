"""Helpers shared by the integration and end-to-end tests."""
from __future__ import annotations

import time

from kombu import Connection


def wait_until(predicate, timeout: float = 20, interval: float = 0.1, what: str = "condition"):
    """Poll until `predicate()` is truthy; returns its value or fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def publish(uri: str, planned, exchange: str = "onegrid.intake") -> None:
    """Publish planned events with confirms, exactly as a department system would."""
    with Connection(uri, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        for p in planned:
            producer.publish(p.body, exchange=exchange, routing_key=p.routing_key, headers=p.headers,
                             content_type=p.content_type, content_encoding="binary", delivery_mode=2,
                             mandatory=True)


def drain(uri: str, queue: str, limit: int = 10_000, timeout: float = 2.0) -> list:
    """Take every message now in `queue` (acked): (headers, body) pairs."""
    out = []
    with Connection(uri) as conn:
        channel = conn.channel()
        deadline = time.monotonic() + timeout
        while len(out) < limit and time.monotonic() < deadline:
            msg = channel.basic_get(queue, no_ack=True)
            if msg is None:
                if out:
                    break
                time.sleep(0.05)
                continue
            out.append((dict(msg.headers or {}), msg.body))
    return out


def queue_depth(uri: str, queue: str) -> int:
    with Connection(uri) as conn:
        channel = conn.channel()
        _, count, _ = channel.queue_declare(queue, passive=True)
        return count
