"""W3C trace context in the envelope (onegrid.kernel.trace), the log context a worker gets
from what it handles (onegrid.adapters.nameko.logs), and the probe middleware's answers."""

import json
import logging

import pytest

from onegrid.adapters.nameko import logs
from onegrid.adapters.nameko.probes import ProbeApp
from onegrid.adapters.nameko.reliable import Inbound
from onegrid.domain.cases import case_of_work_order, work_order_id
from onegrid.kernel import envelope as ce
from onegrid.kernel import trace

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
HEADERS = {
    "ce-id": "e1",
    "ce-source": "/x",
    "ce-type": "market_regulation.report",
    "ce-specversion": "1.0",
    "ce-tenant": "t",
    "ce-department": "market_regulation",
}


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        42,
    ],
)
def test_an_invalid_traceparent_is_not_continued(value):
    assert not trace.valid(value) and trace.trace_id(value) is None
    assert trace.valid(trace.child(value))  # a new trace instead


def test_a_child_keeps_the_trace_and_flags_with_a_new_parent():
    kid = trace.child(PARENT)
    assert trace.trace_id(kid) == "4bf92f3577b34da6a3ce929d0e0e4736" and kid.endswith("-01") and kid != PARENT
    assert len({trace.start()[3:35] for _ in range(50)}) == 50


def test_the_envelope_reads_and_writes_the_tracing_extension():
    env = ce.Envelope.from_headers({**HEADERS, "ce-traceparent": PARENT, "ce-tracestate": "a=1"})
    assert (env.traceparent, env.tracestate) == (PARENT, "a=1")
    assert env.headers()["ce-traceparent"] == PARENT and env.structured({})["traceparent"] == PARENT
    structured = {k[3:]: v for k, v in HEADERS.items()} | {"traceparent": PARENT, "data": {}}
    assert ce.Envelope.from_structured(structured).traceparent == PARENT
    # a malformed trace context is dropped, never a reason to quarantine the event
    bad = ce.Envelope.from_headers({**HEADERS, "ce-traceparent": "nonsense", "ce-tracestate": "a=1"})
    assert bad.traceparent is None and bad.tracestate is None and "ce-traceparent" not in bad.headers()
    long_state = ce.Envelope.from_headers({**HEADERS, "ce-traceparent": PARENT, "ce-tracestate": "a" * 600})
    assert long_state.traceparent == PARENT and long_state.tracestate is None


def test_a_new_envelope_continues_the_trace_it_follows_or_starts_one():
    follows = ce.new(
        tenant="t", department="d", type="case.closed", source="/t/x", traceparent=PARENT, tracestate="a=1"
    )
    assert trace.trace_id(follows.traceparent) == trace.trace_id(PARENT) and follows.traceparent != PARENT
    assert follows.tracestate == "a=1"
    fresh = ce.new(tenant="t", department="d", type="case.closed", source="/t/x")
    assert trace.valid(fresh.traceparent) and fresh.tracestate is None


def test_the_log_context_of_a_message_a_request_and_an_rpc():
    wo = work_order_id("c-0123456789abcdef", "market_regulation")
    assert case_of_work_order(wo) == "c-0123456789abcdef" and case_of_work_order("x-1") is None
    inbound = Inbound(b"{}", {**HEADERS, "ce-subject": wo, "ce-traceparent": PARENT}, None, "k", False, None)
    assert logs.context_of((inbound,), {}) == {
        "ce_id": "e1",
        "ce_type": "market_regulation.report",
        "case_id": "c-0123456789abcdef",
        "work_order_id": wo,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "traceparent": PARENT,
    }

    class Request:
        path = "/cases/c-1"
        headers = {"Traceparent": PARENT}

    assert logs.context_of((Request(),), {"case_id": "c-1"}) == {
        "case_id": "c-1",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "traceparent": PARENT,
    }
    assert logs.context_of(("market_regulation",), {"work_order_id": wo})["case_id"] == "c-0123456789abcdef"


def test_the_filter_puts_the_context_on_every_record():
    logs._WORKER.set({"case_id": "c-1", "_started": 1.0})
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
        logs.ContextFilter().filter(record)
        assert record.case_id == "c-1" and not hasattr(record, "_started")
    finally:
        logs._WORKER.set({})


class _Probes:
    def __init__(self, checks):
        self.checks = checks

    def readiness(self):
        return self.checks


def _call(app, path, method="GET"):
    seen = {}

    def start_response(status, headers):
        seen["status"] = status

    body = b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": method}, start_response))
    return seen["status"], json.loads(body) if body.startswith(b"{") else body


def test_probe_middleware_answers_the_probes_and_passes_the_rest():
    ok = ProbeApp(lambda env, sr: [b"nameko"], _Probes({"broker": "ok", "redis": "ok"}))
    assert _call(ok, "/livez") == ("200 OK", {"status": "alive"}) == _call(ok, "/health")
    assert _call(ok, "/readyz") == ("200 OK", {"status": "ready", "checks": {"broker": "ok", "redis": "ok"}})
    assert b"".join(ok({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"}, None)) == b"nameko"  # nameko's app
    assert _call(ok, "/readyz", "POST")[0] == "405 Method Not Allowed"
    down = ProbeApp(lambda env, sr: [], _Probes({"broker": "ok", "redis": "no answer within 1s: timeout"}))
    status, body = _call(down, "/readyz")
    assert status == "503 Service Unavailable" and body["status"] == "not ready"
    assert _call(down, "/livez")[0] == "200 OK"  # liveness never asks the dependencies
