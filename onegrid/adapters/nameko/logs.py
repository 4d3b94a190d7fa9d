"""Structured logs: every line a JSON object (python-json-logger, config.yml LOGGING) with the
tenant and service, and, inside a worker, the event's `ce-id` and type, the case (and work
order) it is about and its W3C trace (`trace_id`, `traceparent`): one grep of a trace id
finds an event's whole path through intake, routing, the departments and the lifecycle.

`LogContext` (mixed into every service by providers.Observable) reads them from what the
worker was started with: the `ce-` headers of a message (reliable.Inbound), the headers and
path of an HTTP request, an RPC's case or work-order argument. They live in a context
variable, which greenlet keeps per green thread, so concurrent workers never mix them up.
At the end of each worker it logs one `handled` line (logger onegrid.worker, INFO).
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from typing import Any

from nameko.extensions import DependencyProvider

from onegrid.adapters.nameko.reliable import Inbound
from onegrid.domain.cases import case_of_work_order
from onegrid.kernel import trace

log = logging.getLogger("onegrid.worker")
_PROCESS: dict[str, str] = {}  # tenant and service, on every line of the process
_WORKER: ContextVar[dict[str, Any]] = ContextVar("onegrid_log_context", default={})  # noqa: B039 - never mutated


class ContextFilter(logging.Filter):
    """Adds the process's and the current worker's context to each record (config.yml)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in {**_PROCESS, **_WORKER.get()}.items():
            if not key.startswith("_") and not hasattr(record, key):
                setattr(record, key, value)
        return True


def context_of(args: tuple, kwargs: dict) -> dict[str, Any]:
    """What a worker is about, from its arguments: a message's headers, an HTTP request, or
    named case and work-order arguments."""
    first = args[0] if args else None
    if isinstance(first, list) and len(first) == 1:  # a batch of one message (nameko/batch.py)
        first = first[0]
    headers: dict[str, Any] = {}
    if isinstance(first, Inbound):
        headers = {k.lower(): v for k, v in first.headers.items() if isinstance(v, str)}
    elif first is not None and hasattr(first, "headers") and hasattr(first, "path"):  # a werkzeug Request
        headers = {k.lower(): v for k, v in first.headers.items()}
    parent = headers.get("ce-traceparent") or headers.get("traceparent")
    subject = headers.get("ce-subject") or ""
    work_order = kwargs.get("work_order_id") or (subject if subject.startswith("w-") else None)
    case = kwargs.get("case_id") or (subject if subject.startswith("c-") else None)
    if case is None and isinstance(work_order, str):
        case = case_of_work_order(work_order)
    out = {
        "ce_id": headers.get("ce-id"),
        "ce_type": headers.get("ce-type"),
        "case_id": case,
        "work_order_id": work_order,
        "trace_id": trace.trace_id(parent),
        "traceparent": parent if trace.valid(parent) else None,
    }
    return {k: v for k, v in out.items() if isinstance(v, str) and v}


def bind(**fields: str | None) -> None:
    """Add what a worker learnt (the case an event became) to its remaining lines."""
    _WORKER.set({**_WORKER.get(), **{k: v for k, v in fields.items() if v}})


def event(message: str, fields: dict[str, Any]) -> None:
    """One INFO line about one event (`ce_id`/`event_id`, `case_id`, ...) over the worker's context."""
    extra = {("ce_id" if k == "event_id" else k): v for k, v in fields.items() if v is not None}
    log.info(message, extra=extra)


class LogContext(DependencyProvider):
    def setup(self):
        _PROCESS.update(tenant=self.container.config.get("TENANT", ""), service=self.container.service_name)

    def worker_setup(self, worker_ctx):
        try:
            context = context_of(worker_ctx.args or (), worker_ctx.kwargs or {})
        except Exception:  # a log context must never cost the work
            context = {}
        _WORKER.set({**context, "entrypoint": worker_ctx.entrypoint.method_name, "_started": time.perf_counter()})

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = _WORKER.get().get("_started", time.perf_counter())
        log.info(
            "handled",
            extra={
                "outcome": "error" if exc_info else "ok",
                "duration_ms": round((time.perf_counter() - started) * 1e3, 1),
            },
        )

    def worker_teardown(self, worker_ctx):
        _WORKER.set({})
