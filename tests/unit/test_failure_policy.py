"""The failure policy's choice of where a failed message goes (onegrid/adapters/nameko/reliable.py):
a retry tier per attempt, then the dead letters; a message failing because Redis or the broker
is down keeps being retried at the last tier's pace for OUTAGE_RETRY_S first. The broker side
is tests/integration/test_failure_policy.py."""

from __future__ import annotations

import time

import pytest
import redis

from onegrid.adapters.nameko.reliable import FIRST_FAILED, ReliableConsumer, is_outage
from onegrid.adapters.redis.store import NotReplicated


class Published(list):
    def publish_raw(self, body, headers, content_type, exchange, routing_key):
        self.append((routing_key, dict(headers)))


class Message:
    def __init__(self, headers=None):
        self.headers, self.body, self.content_type = headers or {}, b"{}", "application/json"
        self.delivery_info, self.properties = {"routing_key": "events.x"}, {}


def consumer(monkeypatch, outage_s: float) -> ReliableConsumer:
    monkeypatch.setenv("OUTAGE_RETRY_S", str(outage_s))
    c = object.__new__(ReliableConsumer)  # only what _park reads: no container, no broker
    c.queue_name, c.tenant, c.delays, c.bus = "routing.case-registered", "t", (1000, 5000, 30000), Published()
    return c


def park(c: ReliableConsumer, exc: BaseException, headers: dict) -> tuple[str, dict]:
    c._park(Message(headers), (type(exc), exc, None))
    return c.bus[-1]


@pytest.mark.parametrize(
    "exc",
    [
        redis.ConnectionError("gone"),
        redis.BusyLoadingError("loading"),
        redis.TimeoutError("stalled"),
        redis.ReadOnlyError("demoted"),
        NotReplicated("0 of 1"),
        ConnectionResetError(),
        OSError("Server unexpectedly closed connection"),
    ],
)
def test_an_outage_is_one(exc):
    assert is_outage(exc)


@pytest.mark.parametrize(
    "exc", [redis.OutOfMemoryError("maxmemory"), ValueError("bad"), FileNotFoundError("x"), redis.ResponseError("x")]
)
def test_a_fault_that_needs_someone_is_not(exc):
    assert not is_outage(exc)


def test_each_attempt_has_its_tier_and_the_first_failure_is_stamped(monkeypatch):
    c = consumer(monkeypatch, 600)
    target, headers = park(c, ValueError("bad"), {})
    assert target == "routing.case-registered.retry.1000ms" and headers["x-og-attempt"] == 1
    assert time.time() - headers[FIRST_FAILED] < 5
    target, again = park(c, ValueError("bad"), headers)
    assert target == "routing.case-registered.retry.5000ms" and again[FIRST_FAILED] == headers[FIRST_FAILED]


def test_past_its_tiers_an_outage_is_retried_until_its_time_is_up(monkeypatch):
    c = consumer(monkeypatch, 600)
    spent = {"x-og-attempt": 3, FIRST_FAILED: time.time() - 100}
    assert park(c, redis.ConnectionError("gone"), spent)[0] == "routing.case-registered.retry.30000ms"
    assert park(c, redis.OutOfMemoryError("maxmemory"), spent)[0] == "routing.case-registered.dlq"
    assert park(c, ValueError("bad"), spent)[0] == "routing.case-registered.dlq"
    too_long = {"x-og-attempt": 9, FIRST_FAILED: time.time() - 601}
    target, headers = park(c, redis.ConnectionError("gone"), too_long)
    assert target == "routing.case-registered.dlq" and "ConnectionError" in headers["x-og-error"]
