"""The CloudEvents 1.0 envelope every OneGrid message carries, over AMQP and HTTP alike.

Binary mode puts the attributes in `ce-` headers and the data in the body; structured mode
(`application/cloudevents+json`) puts both in one JSON object. There is no official AMQP
0-9-1 binding, so AMQP follows the HTTP binding's header names. `tenant` and `department`
are extension attributes, and so are `traceparent` and `tracestate` (CloudEvents' distributed
tracing extension, onegrid.kernel.trace): a malformed one is dropped, as W3C Trace Context asks,
never a reason to refuse the event. A lifecycle event about a case also carries `chainhead`,
the head of the case's hash-chained timeline after the transition (onegrid.domain.timeline),
so the bus's history keeps what each timeline was; consumers need not read it.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from urllib.parse import unquote

from onegrid.kernel import clock, trace

SPECVERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
JSON = "application/json"
HEADER_PREFIX = "ce-"
REQUIRED = ("id", "source", "type", "specversion", "tenant", "department")
ATTRIBUTES = REQUIRED + ("time", "subject", "dataschema")
TRACING = ("traceparent", "tracestate")
CHAINHEAD = "chainhead"  # extension attribute: `<entries>:<sha256 hex>` of the case's timeline
CHAINHEAD_PATTERN = "^(0|[1-9][0-9]{0,8}):([0-9a-f]{64})$"  # onegrid.domain.timeline.Head
TRACESTATE_MAX = 512  # W3C: a tracestate a receiver must be able to keep
_SCHEMA = re.compile(r"^urn:onegrid:contract:(?P<type>[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*):(?P<version>[1-9][0-9]*)$")


class EnvelopeError(ValueError):
    """An envelope that cannot be read; `reason` is a bounded code, the message says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Envelope:
    id: str
    source: str
    type: str
    tenant: str
    department: str
    time: str | None = None
    subject: str | None = None
    dataschema: str | None = None
    specversion: str = SPECVERSION
    datacontenttype: str = JSON
    traceparent: str | None = None
    tracestate: str | None = None
    chainhead: str | None = None

    @property
    def contract(self) -> tuple[str, int]:
        """(`<department>.<type>`, version) named by `dataschema`."""
        return parse_dataschema(self.dataschema)

    def headers(self) -> dict[str, str]:
        """Binary-mode `ce-` headers (AMQP application headers or HTTP headers)."""
        return {HEADER_PREFIX + k: v for k, v in asdict(self).items() if v is not None and k != "datacontenttype"}

    def structured(self, data) -> dict:
        body = {k: v for k, v in asdict(self).items() if v is not None}
        body["data"] = data
        return body

    @classmethod
    def from_headers(cls, headers: dict) -> Envelope:
        lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
        attrs = {name: lowered.get(HEADER_PREFIX + name) for name in ATTRIBUTES}
        env = cls._build(attrs, where="header ce-", tracing={n: lowered.get(HEADER_PREFIX + n) for n in TRACING})
        return _with_chainhead(env, lowered.get(HEADER_PREFIX + CHAINHEAD))

    @classmethod
    def from_structured(cls, obj: dict) -> Envelope:
        attrs = {name: obj.get(name) for name in ATTRIBUTES}
        env = _with_chainhead(
            cls._build(attrs, where="attribute ", tracing={n: obj.get(n) for n in TRACING}), obj.get(CHAINHEAD)
        )
        ctype = obj.get("datacontenttype", JSON)
        if not is_json(ctype):
            raise EnvelopeError(
                "invalid_attribute", f"attribute datacontenttype must be {JSON} (charset utf-8 if any), got {ctype!r}"
            )
        return env

    @classmethod
    def _build(cls, attrs: dict, where: str, tracing: dict | None = None) -> Envelope:
        for name in REQUIRED:
            if attrs.get(name) in (None, ""):
                raise EnvelopeError("missing_attribute", f"{where}{name} is missing")
        for name, value in attrs.items():
            if value is not None and not isinstance(value, str):
                raise EnvelopeError("invalid_attribute", f"{where}{name} must be a string, got {type(value).__name__}")
            if value is not None and len(value) > 256:
                raise EnvelopeError("invalid_attribute", f"{where}{name} is longer than 256 characters")
            try:
                (value or "").encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: text no UTF-8 consumer could read
                raise EnvelopeError("invalid_attribute", f"{where}{name} is not valid UTF-8 text") from None
        if attrs["specversion"] != SPECVERSION:
            raise EnvelopeError(
                "invalid_attribute", f"{where}specversion must be {SPECVERSION!r}, got {attrs['specversion']!r}"
            )
        if attrs.get("time") is not None:
            _parse_time(attrs["time"], f"{where}time")
        return cls(**attrs, **_tracing(tracing or {}))


def _tracing(attrs: dict) -> dict:
    """The trace context worth continuing: a valid traceparent, and its tracestate if short
    enough; anything else is dropped (the event then starts a new trace)."""
    parent = attrs.get("traceparent")
    if not isinstance(parent, str) or not trace.valid(parent):
        return {}
    state = attrs.get("tracestate")
    keep = isinstance(state, str) and 0 < len(state) <= TRACESTATE_MAX and state.isascii()
    return {"traceparent": parent.strip(), **({"tracestate": state} if keep else {})}


def _with_chainhead(env: Envelope, value: object) -> Envelope:
    """Keep a chain head only when it is text of a sane length: it is information, never a
    reason to refuse an event (only OneGrid's own services set it)."""
    if isinstance(value, str) and 0 < len(value) <= 256:
        return replace(env, chainhead=value)
    return env


def is_json(media_type: object) -> bool:
    """`application/json`, with parameters or not (RFC 9110: type and subtype and the charset
    value are case-insensitive), as long as a charset, if named, is UTF-8."""
    if not isinstance(media_type, str):
        return False
    kind, *params = (part.strip() for part in media_type.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return kind.lower() == JSON


def json_bytes(data: object, separators: tuple[str, str] | None = (",", ":")) -> bytes:
    """`data` as JSON in UTF-8, as people read it (compact unless `separators` is None); with
    ASCII escapes only when it holds a lone surrogate (a header byte that was not UTF-8, kept as
    it came), which UTF-8 cannot carry and `json.loads` gives back from the escape."""
    try:
        return json.dumps(data, ensure_ascii=False, separators=separators).encode()
    except UnicodeEncodeError:
        return json.dumps(data, separators=separators).encode()


def from_http_header(value: str) -> str:
    """A `ce-` header value as the HTTP binding sends it: percent-encoded (spaces, `"`, `%` and
    everything outside printable ASCII, as UTF-8). Bytes that are not UTF-8 stay as lone
    surrogates, which the envelope refuses as invalid_attribute. A `%` not followed by two hex
    digits is left as it is."""
    return unquote(value, encoding="utf-8", errors="surrogateescape")


def parse_dataschema(uri: str | None) -> tuple[str, int]:
    match = _SCHEMA.match(uri or "")
    if not match:
        raise EnvelopeError(
            "invalid_attribute", f"dataschema {uri!r} is not urn:onegrid:contract:<department>.<type>:<version>"
        )
    return match["type"], int(match["version"])


def dataschema(event_type: str, version: int) -> str:
    return f"urn:onegrid:contract:{event_type}:{version}"


def now() -> str:
    return clock.now_iso()


def _parse_time(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError("invalid_attribute", f"{where} {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise EnvelopeError("invalid_attribute", f"{where} {value!r} has no UTC offset")
    return parsed


def new(
    *,
    tenant: str,
    department: str,
    type: str,
    source: str,
    version: int = 1,
    subject: str | None = None,
    id: str | None = None,
    time: str | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    chainhead: str | None = None,
) -> Envelope:
    """A fresh envelope for a message OneGrid or a simulator publishes: the next hop of the
    trace `traceparent` names (the event it follows from), or the start of a new trace."""
    return Envelope(
        id=id or str(uuid.uuid4()),
        source=source,
        type=type,
        tenant=tenant,
        department=department,
        time=time or now(),
        subject=subject,
        dataschema=dataschema(type, version),
        traceparent=trace.child(traceparent),
        tracestate=tracestate if traceparent and trace.valid(traceparent) else None,
        chainhead=chainhead,
    )
