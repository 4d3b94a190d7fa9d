"""W3C Trace Context (https://www.w3.org/TR/trace-context/) as CloudEvents carries it: the
distributed tracing extension's `traceparent` and `tracestate` attributes, `ce-traceparent`
and `ce-tracestate` headers over AMQP and HTTP.

`00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>`. Every message OneGrid publishes
about an event keeps the trace id it arrived with (or one intake started) and names a new
parent id, its own hop; so one grep of the trace id finds the event's whole path.
"""

from __future__ import annotations

import re
import secrets

VERSION = "00"
_TRACEPARENT = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<parent>[0-9a-f]{16})-(?P<flags>[0-9a-f]{2})$"
)
_INVALID_TRACE, _INVALID_PARENT = "0" * 32, "0" * 16


def valid(traceparent: object) -> bool:
    """A traceparent a receiver may continue (the spec: otherwise start a new trace)."""
    if not isinstance(traceparent, str):
        return False
    m = _TRACEPARENT.fullmatch(traceparent.strip())
    if m is None:
        return False
    return m["version"] != "ff" and m["trace"] != _INVALID_TRACE and m["parent"] != _INVALID_PARENT


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a valid traceparent, else None."""
    return traceparent.strip()[3:35] if traceparent is not None and valid(traceparent) else None


def start(sampled: bool = True) -> str:
    """A new trace: a fresh trace id and parent id."""
    return f"{VERSION}-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def child(traceparent: str | None) -> str:
    """The traceparent of the next hop: the same trace and flags, a new parent id; a new trace
    when there is none (or it is not valid)."""
    if traceparent is None or not valid(traceparent):
        return start()
    tp = traceparent.strip()
    return f"{VERSION}-{tp[3:35]}-{secrets.token_hex(8)}-{tp[53:55]}"
