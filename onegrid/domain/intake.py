"""Admitting a department event: from raw bytes and headers to a case draft or a reason.

`admit` never raises for bad input: every way an event can be wrong maps to one bounded
reason code (a metric label) and a precise detail (for the person reading the quarantine).

Identity: a department speaks only as itself. The transport authenticates it (AMQP: the
broker user `<tenant>.<department>`, which RabbitMQ checks against the `user_id` property;
HTTP: the department's bearer token) and `admit` refuses an event whose `department`
attribute names any other (`spoofed`), or one nobody authenticated unless the tenant's
manifest trusts unauthenticated events on that transport (`unauthenticated`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from marshmallow import ValidationError

from onegrid.contracts import Registry
from onegrid.domain.geo import Locate, Outside, place
from onegrid.kernel import envelope as ce
from onegrid.kernel.tenant import Tenant
from onegrid.kernel.topology import DOORS

REASONS = {
    "unauthenticated": "no department was authenticated and the tenant trusts no unauthenticated event",
    "spoofed": "the event claims a department other than the authenticated one",
    "payload_too_large": "the event is larger than the tenant's max_payload_bytes",
    "invalid_encoding": "the body is not UTF-8",
    "malformed_json": "the body is not JSON",
    "missing_attribute": "a required CloudEvents attribute is missing",
    "invalid_attribute": "a CloudEvents attribute has a wrong value",
    "unknown_tenant": "the event names another tenant than this bus's",
    "unknown_department": "no contract for the department",
    "department_disabled": "the department is not enabled for this tenant",
    "department_mismatch": "the event type or routing key belongs to another department",
    "unknown_event_type": "no contract for the event type",
    "unknown_version": "no contract for this version of the event type",
    "schema_violation": "the data does not satisfy the contract",
    "unknown_grid": "the grid is not in the tenant's grid tree",
    "outside_county": "the event names no grid and its location is outside every grid boundary of the tenant",
    "id_reused": "the event id was already used for different content",
    "expired": "the event's per-message TTL (AMQP expiration) ran out before intake read it",
}


def expired(department: str | None, ttl_ms: str | None) -> Rejected:
    """What to say of an event the broker dead-letters because its per-message TTL ran out
    while it waited in intake.events: it was never judged, so it is kept to be replayed."""
    ttl = f" of {ttl_ms} ms" if ttl_ms else ""
    return Rejected(
        "expired",
        f"published with a per-message TTL (expiration){ttl}, which ran out while the event waited in "
        "intake.events; OneGrid judges every event whatever its TTL: replay it (onegrid quarantine replay "
        "--reason expired) and publish without `expiration`",
        department or "unknown",
    )


_DEPARTMENT = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def principal(tenant_id: str, department: str) -> str:
    """The name a department authenticates as: its broker user, `<tenant>.<department>`."""
    return f"{tenant_id}.{department}"


def authenticated_department(user_id: str | None, tenant_id: str) -> str | None:
    """The department a broker user (an AMQP message's `user_id`) stands for, or None: the
    admin, a service (`<tenant>.svc.<name>`) or no user at all authenticate no department; a
    door (topology.DOORS) speaks for its department, in the one event type the broker lets it."""
    prefix = tenant_id + "."
    if not user_id or not user_id.startswith(prefix):
        return None
    name = user_id[len(prefix) :]
    if name.startswith("svc.") and name[4:] in DOORS:
        return DOORS[name[4:]][0]
    return name if _DEPARTMENT.match(name) else None


@dataclass(frozen=True)
class RawEvent:
    """An event as it arrived: the original bytes and headers, kept for quarantine and replay."""

    body: bytes
    headers: dict
    content_type: str | None = None
    routing_key: str | None = None  # None when it came over HTTP
    transport: str = "amqp"  # http, amqp, or replayed(<the first one>)


def replayed(first: str) -> str:
    """The transport of an event the operator replayed from quarantine: said so, with the one
    it first came by (`replay (from http)`), never passed off as a department's AMQP publish."""
    return f"replay (from {first_transport(first)})"


def first_transport(transport: str) -> str:
    """The transport an event first came by, through any number of replays."""
    while transport.startswith("replay (from ") and transport.endswith(")"):
        transport = transport[len("replay (from ") : -1]
    return transport


def identity(department: str, source: str, event_id: str) -> str:
    """`department|source|id`, with `|` and `\\` escaped so two identities never share a key
    (source '/s|x' with id 'y' is not source '/s' with id 'x|y')."""
    return "|".join(x.replace("\\", "\\\\").replace("|", "\\|") for x in (department, source, event_id))


@dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str
    department: str = "unknown"  # bounded: a known department id or "unknown"


@dataclass(frozen=True)
class Accepted:
    envelope: ce.Envelope
    data: dict = field(repr=False)
    category: str
    severity: str
    grid: str
    version: int

    @property
    def dedup_key(self) -> str:
        """CloudEvents identity is source + id; scoped by department, which speaks only as itself."""
        return identity(self.envelope.department, self.envelope.source, self.envelope.id)

    @property
    def digest(self) -> str:
        """Fingerprint of the content, to tell a resend from an id reused for something else."""
        canon = json.dumps([self.envelope.type, self.version, self.data], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canon.encode()).hexdigest()[:32]


def admit(
    raw: RawEvent,
    tenant: Tenant,
    registry: Registry,
    authenticated: str | None = None,
    locate: Locate | None = None,
) -> Accepted | Rejected:
    """Judge one event. `authenticated` is the department the transport authenticated (None:
    nobody, which only a tenant that trusts unauthenticated events on `raw.transport` accepts);
    `locate` searches the tenant's grid boundaries, to place an event that names no grid."""
    who = authenticated if authenticated in registry.departments else "unknown"
    if authenticated is None and not tenant.trusts_unauthenticated(raw.transport):
        how = (
            "publish as the department's broker user with the user_id property set to it"
            if raw.transport == "amqp"
            else "send the department's token as Authorization: Bearer <token>"
        )
        return Rejected(
            "unauthenticated",
            f"no department authenticated this {raw.transport} event and {tenant.id} trusts none: {how}",
        )
    if len(raw.body) > tenant.max_payload_bytes:
        return Rejected("payload_too_large", f"{len(raw.body)} bytes is more than {tenant.max_payload_bytes}", who)
    try:
        text = raw.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("invalid_encoding", f"body is not UTF-8: {exc}", who)
    try:
        doc = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        return Rejected("malformed_json", f"body is not JSON: {exc}", who)
    surrogate = lone_surrogate(doc)
    if surrogate is not None:
        return Rejected(
            "malformed_json",
            f"body is not JSON: a string escapes {surrogate}, a lone UTF-16 surrogate that is not a character",
            who,
        )
    try:
        if (raw.content_type or "").startswith(ce.STRUCTURED):
            if not isinstance(doc, dict):
                return Rejected("malformed_json", "a structured CloudEvent must be a JSON object", who)
            env, data = ce.Envelope.from_structured(doc), doc.get("data")
        else:
            env, data = ce.Envelope.from_headers(raw.headers), doc
        key, version = env.contract
    except ce.EnvelopeError as exc:
        return Rejected(exc.reason, exc.detail, who)
    if authenticated is not None and env.department != authenticated:
        return Rejected(
            "spoofed",
            f"authenticated as department {authenticated!r}, but the event claims department {env.department!r}",
            who,
        )
    return _check(raw, env, key, version, data, tenant, registry, locate)


def _check(raw, env, key, version, data, tenant: Tenant, registry: Registry, locate) -> Accepted | Rejected:
    dept = env.department if env.department in registry.departments else "unknown"
    if env.tenant != tenant.id:
        return Rejected("unknown_tenant", f"tenant {env.tenant!r} is not this bus's tenant {tenant.id!r}", dept)
    if dept == "unknown":
        return Rejected("unknown_department", f"no contract for department {env.department!r}")
    if dept not in tenant.departments:
        return Rejected("department_disabled", f"department {dept!r} is not enabled for {tenant.id}", dept)
    for what, value in (("type", env.type), ("routing key", raw.routing_key), ("dataschema", key)):
        if value is not None and not value.startswith(dept + "."):
            return Rejected("department_mismatch", f"{what} {value!r} does not belong to department {dept!r}", dept)
    if key != env.type:
        return Rejected("invalid_attribute", f"dataschema names {key!r} but type is {env.type!r}", dept)
    if raw.routing_key is not None and raw.routing_key != env.type:
        return Rejected("department_mismatch", f"routing key {raw.routing_key!r} differs from type {env.type!r}", dept)
    versions = registry.versions(key)
    if not versions:
        return Rejected("unknown_event_type", f"no contract for event type {key!r}", dept)
    if version not in versions:
        return Rejected("unknown_version", f"{key} has no version {version}; known: {versions}", dept)
    contract = registry.events[(key, version)]
    if not isinstance(data, dict):
        return Rejected("schema_violation", f"data must be a JSON object, got {type(data).__name__}", dept)
    try:
        contract.schema.load(data)
    except ValidationError as exc:
        return Rejected("schema_violation", f"{key} v{version}: {_flatten(exc.messages)}", dept)
    grid = data.get("grid")
    if grid is None:
        placed = _place(data.get("location"), tenant, locate, f"{key} v{version}")
        if isinstance(placed, tuple):
            return Rejected(*placed, dept)
        grid = placed
    elif grid not in tenant.nodes or tenant.nodes[grid].level != "grid":
        return Rejected("unknown_grid", f"grid {grid!r} is not a grid of {tenant.id}", dept)
    return Accepted(env, data, contract.category or data["category"], data["severity"], grid, version)


def _place(location, tenant: Tenant, locate: Locate | None, what: str) -> str | tuple[str, str]:
    """The grid an event without one is placed in by its location, or (reason, detail)."""
    if not isinstance(location, dict):
        return "schema_violation", f"{what}: grid: give the grid's code, or a location to place the event by"
    if tenant.geography is None or locate is None:
        return "schema_violation", f"{what}: grid: {tenant.id} has drawn no grid boundaries; give the grid's code"
    where = place(location["lat"], location["lon"], tenant.geography.crs, locate, tenant.id)
    return ("outside_county", where.detail) if isinstance(where, Outside) else where.grid


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(doc) -> str | None:
    """The first lone surrogate a JSON string (or key) escapes, e.g. `\\ud800`: json.loads takes
    it, but no UTF-8 text can hold it (storing or answering with it would raise)."""
    stack = [doc]
    while stack:  # iterative: the document may nest as deep as the parser allowed
        value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return f"\\u{ord(found.group()):04x}"
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _flatten(messages, path="") -> str:
    """marshmallow's nested error dict as `a.b[1]: message; c: message`, sorted."""
    if isinstance(messages, dict):
        parts = [
            _flatten(sub, f"{path}[{name}]" if isinstance(name, int) else f"{path}.{name}" if path else str(name))
            for name, sub in sorted(messages.items(), key=lambda kv: str(kv[0]))
        ]
        return "; ".join(p for p in parts if p)
    if isinstance(messages, list):
        return f"{path}: " + " ".join(str(m) for m in messages)
    return f"{path}: {messages}"


def on_resend(digest: str, recorded_digest: str, status: str) -> str:
    """What to do when an event's identity already has a case.

    `id_reused`: same id, other content — quarantine it, do not touch the case.
    `republish`: the case never left `registered`, so the first delivery may have died before
    announcing it; announce again (routing is idempotent). `duplicate`: nothing to do."""
    if digest != recorded_digest:
        return "id_reused"
    return "republish" if status == "registered" else "duplicate"
