"""The CloudEvents 1.0 envelope every OneGrid message carries, over AMQP and HTTP alike.

Binary mode puts the attributes in `ce-` headers and the data in the body; structured mode
(`application/cloudevents+json`) puts both in one JSON object. There is no official AMQP
0-9-1 binding, so AMQP follows the HTTP binding's header names. `tenant` and `department`
are extension attributes.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

SPECVERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
JSON = "application/json"
HEADER_PREFIX = "ce-"
REQUIRED = ("id", "source", "type", "specversion", "tenant", "department")
ATTRIBUTES = REQUIRED + ("time", "subject", "dataschema")
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

    @property
    def contract(self) -> tuple[str, int]:
        """(`<department>.<type>`, version) named by `dataschema`."""
        return parse_dataschema(self.dataschema)

    def headers(self) -> dict[str, str]:
        """Binary-mode `ce-` headers (AMQP application headers or HTTP headers)."""
        return {HEADER_PREFIX + k: v for k, v in asdict(self).items()
                if v is not None and k != "datacontenttype"}

    def structured(self, data) -> dict:
        body = {k: v for k, v in asdict(self).items() if v is not None}
        body["data"] = data
        return body

    @classmethod
    def from_headers(cls, headers: dict) -> "Envelope":
        lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
        attrs = {name: lowered.get(HEADER_PREFIX + name) for name in ATTRIBUTES}
        return cls._build(attrs, where="header ce-")

    @classmethod
    def from_structured(cls, obj: dict) -> "Envelope":
        attrs = {name: obj.get(name) for name in ATTRIBUTES}
        env = cls._build(attrs, where="attribute ")
        ctype = obj.get("datacontenttype", JSON)
        if ctype != JSON:
            raise EnvelopeError("invalid_attribute", f"attribute datacontenttype must be {JSON}, got {ctype!r}")
        return env

    @classmethod
    def _build(cls, attrs: dict, where: str) -> "Envelope":
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
            raise EnvelopeError("invalid_attribute", f"{where}specversion must be {SPECVERSION!r}, got {attrs['specversion']!r}")
        if attrs.get("time") is not None:
            _parse_time(attrs["time"], f"{where}time")
        return cls(**attrs)


def parse_dataschema(uri: str | None) -> tuple[str, int]:
    match = _SCHEMA.match(uri or "")
    if not match:
        raise EnvelopeError("invalid_attribute",
                            f"dataschema {uri!r} is not urn:onegrid:contract:<department>.<type>:<version>")
    return match["type"], int(match["version"])


def dataschema(event_type: str, version: int) -> str:
    return f"urn:onegrid:contract:{event_type}:{version}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EnvelopeError("invalid_attribute", f"{where} {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise EnvelopeError("invalid_attribute", f"{where} {value!r} has no UTC offset")
    return parsed


def new(*, tenant: str, department: str, type: str, source: str, version: int = 1,
        subject: str | None = None, id: str | None = None, time: str | None = None) -> Envelope:
    """A fresh envelope for a message OneGrid or a simulator publishes."""
    return Envelope(id=id or str(uuid.uuid4()), source=source, type=type, tenant=tenant,
                    department=department, time=time or now(), subject=subject,
                    dataschema=dataschema(type, version))
