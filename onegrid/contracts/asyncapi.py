"""One AsyncAPI 3.0 document per tenant, generated from the contracts, for the integrators
of its departments: what each department may publish, where, and how to authenticate.

Channels are the routing keys on `onegrid.intake` (`<department>.<event type>`); each
channel's messages are the versions of that event type's contract, with the data as a JSON
Schema payload and the CloudEvents `ce-` headers as the message headers. Deterministic: the
same contracts give the same bytes (docs/asyncapi/<tenant>.yaml is checked for drift).
"""
from __future__ import annotations

import hashlib
import json

import yaml

from onegrid import envelope as ce
from onegrid.adapters.topology import INTAKE

ASYNCAPI = "3.0.0"
COMMON = "CaseField"  # components.schemas.CaseField.<name>: the fields every event carries
AMQP_BINDING = "0.3.0"
HTTP_BINDING = "0.3.0"


def json_schema(spec: dict) -> dict:
    """A contract field spec as JSON Schema (draft-07, which AsyncAPI schemas extend)."""
    kind = spec["type"]
    out: dict = {}
    if spec.get("description"):
        out["description"] = spec["description"]
    if kind == "string":
        out["type"] = "string"
        _copy(spec, out, min_length="minLength", max_length="maxLength")
        if "pattern" in spec:
            out["pattern"] = _anchored(spec["pattern"])
    elif kind in ("integer", "number"):
        out["type"] = kind
        _copy(spec, out, min="minimum", max="maximum")
    elif kind == "boolean":
        out["type"] = "boolean"
    elif kind == "enum":
        out.update(type="string", enum=list(spec["values"]))
    elif kind == "datetime":
        out.update(type="string", format="date-time")
    elif kind == "date":
        out.update(type="string", format="date")
    elif kind == "url":
        out.update(type="string", format="uri", pattern="^https?://")
    elif kind == "list":
        out.update(type="array", items=json_schema(spec["items"]))
        _copy(spec, out, min_items="minItems", max_items="maxItems")
    elif kind == "object":
        out.update(object_schema(spec["fields"]))
    else:
        raise ValueError(f"unknown field type {kind!r}")
    return out


def object_schema(fields: dict, shared=()) -> dict:
    """A map of field specs as a closed JSON Schema object: undeclared fields are refused.
    The `shared` fields (the common case fields) refer to components.schemas."""
    out = {"type": "object", "properties": {
        name: {"$ref": f"#/components/schemas/{COMMON}.{name}"} if name in shared else json_schema(spec)
        for name, spec in fields.items()}}
    required = [name for name, spec in fields.items() if spec.get("required", False)]
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def _copy(spec: dict, out: dict, **names) -> None:
    for ours, theirs in names.items():
        if ours in spec:
            out[theirs] = spec[ours]


def _anchored(pattern: str) -> str:
    """Contracts match a pattern against the whole value; JSON Schema searches: anchor it."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return pattern
    return f"^(?:{pattern})$"


def _headers(tenant_id: str) -> dict:
    attr = {"type": "string", "maxLength": 256}
    props = {
        "ce-specversion": {"type": "string", "const": ce.SPECVERSION},
        "ce-id": {**attr, "minLength": 1, "description": "Unique per source; with source and department, the "
                                                         "event's identity (a resend with the same id is a duplicate)."},
        "ce-source": {**attr, "minLength": 1, "description": "URI reference of the sending system, "
                                                             "e.g. /<tenant>/departments/<department>/<system>."},
        "ce-type": {**attr, "description": "<department>.<event type>; equals the routing key."},
        "ce-time": {**attr, "format": "date-time"},
        "ce-subject": attr,
        "ce-dataschema": {**attr, "description": "urn:onegrid:contract:<department>.<event type>:<version>; picks "
                                                 "the contract version the data is checked against."},
        "ce-tenant": {"type": "string", "const": tenant_id},
        "ce-department": {**attr, "description": "Must be the authenticated department."},
    }
    return {"type": "object", "properties": props,
            "required": ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-dataschema", "ce-tenant",
                         "ce-department"]}


def enabled_contracts(tenant, registry) -> list:
    """The contracts `tenant`'s departments may publish, by routing key and version."""
    return sorted((c for c in registry.events.values() if c.department in tenant.departments),
                  key=lambda c: (c.key, c.version))


def document(tenant, registry) -> dict:
    """The AsyncAPI document of `tenant`'s intake: every enabled department's event types."""
    contracts = enabled_contracts(tenant, registry)
    channels, operations, messages, common = {}, {}, {}, {}
    for c in contracts:
        for name in set(c.fields) - set(c.own_fields):
            common.setdefault(name, json_schema(c.fields[name]))
        mid = f"{c.key}.v{c.version}"
        dept = registry.departments[c.department]
        messages[mid] = {
            "name": mid,
            "title": f"{c.key} version {c.version}",
            "summary": c.summary,
            "contentType": ce.JSON,
            "headers": {"type": "object", "allOf": [{"$ref": "#/components/schemas/CloudEventHeaders"}, {
                "type": "object",
                "properties": {"ce-type": {"const": c.key},
                               "ce-dataschema": {"const": ce.dataschema(c.key, c.version)},
                               "ce-department": {"const": c.department}}}]},
            "payload": object_schema(c.fields, shared=set(c.fields) - set(c.own_fields)),
            "correlationId": {"description": "The CloudEvents id.", "location": "$message.header#/ce-id"},
            "tags": [{"name": c.department}, {"name": c.category or "category chosen by the reporter"}],
            "bindings": {"amqp": {"messageType": c.key, "bindingVersion": AMQP_BINDING}},
        }
        channel = channels.setdefault(c.key, {
            "address": c.key,
            "title": f"{dept['name']} ({dept['name_zh']}): {c.type}",
            "description": f"Routing key {c.key} on the topic exchange {INTAKE.name}. Only the broker user "
                           f"{tenant.id}.{c.department} (or its HTTP token) may publish it.",
            "servers": [{"$ref": "#/servers/rabbitmq"}, {"$ref": "#/servers/intake-http"}],
            "messages": {},
            "bindings": {"amqp": {"is": "routingKey", "exchange": {
                "name": INTAKE.name, "type": "topic", "durable": True, "autoDelete": False, "vhost": tenant.id},
                "bindingVersion": AMQP_BINDING}},
        })
        channel["messages"][f"v{c.version}"] = {"$ref": f"#/components/messages/{_pointer(mid)}"}
        op = operations.setdefault(f"publish.{c.key}", {
            "action": "send",
            "channel": {"$ref": f"#/channels/{_pointer(c.key)}"},
            "title": f"{c.department} publishes {c.type}",
            "summary": c.summary,
            "security": [{"$ref": "#/components/securitySchemes/departmentUser"},
                         {"$ref": "#/components/securitySchemes/departmentToken"}],
            "bindings": {"amqp": {"deliveryMode": 2, "mandatory": True, "userId": f"{tenant.id}.{c.department}",
                                  "bindingVersion": AMQP_BINDING},
                         "http": {"method": "POST", "bindingVersion": HTTP_BINDING}},
            "messages": [],
        })
        op["messages"].append({"$ref": f"#/channels/{_pointer(c.key)}/messages/v{c.version}"})
        op["summary"] = c.summary  # the newest version's
    fingerprint = hashlib.sha256(json.dumps([(c.key, c.version, c.fields) for c in contracts], sort_keys=True,
                                            ensure_ascii=False).encode()).hexdigest()[:12]
    return {
        "asyncapi": ASYNCAPI,
        "id": f"urn:onegrid:tenant:{tenant.id}:intake",
        "info": {
            "title": f"OneGrid intake: {tenant.name_zh} ({tenant.id})",
            "version": f"contracts-{fingerprint}",
            "description": _DESCRIPTION.format(tenant=tenant.id, name=tenant.name, max_payload=tenant.max_payload_bytes,
                                               max_batch=tenant.max_batch, rate=tenant.rate_per_department,
                                               burst=tenant.burst_per_department),
            "license": {"name": "Apache-2.0"},
            "tags": [{"name": d} for d in tenant.departments],
        },
        "defaultContentType": ce.JSON,
        "servers": {
            "rabbitmq": {
                "host": "{host}:5672", "protocol": "amqp", "protocolVersion": "0-9-1", "pathname": f"/{tenant.id}",
                "title": "The county's bus", "description": f"Virtual host {tenant.id}; publish to the exchange "
                                                            f"{INTAKE.name} with publisher confirms.",
                "variables": {"host": {"default": "localhost", "description": "The RabbitMQ host of the platform."}},
                "security": [{"$ref": "#/components/securitySchemes/departmentUser"}],
            },
            "intake-http": {
                "host": "{host}", "protocol": "http", "pathname": "/events",
                "title": "Intake over HTTP", "description": "POST one CloudEvent (binary or structured mode) or a "
                                                            "batch (application/cloudevents-batch+json).",
                "variables": {"host": {"default": "localhost:8201", "description": "The county's intake service."}},
                "security": [{"$ref": "#/components/securitySchemes/departmentToken"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {"CloudEventHeaders": _headers(tenant.id),
                        **{f"{COMMON}.{name}": common[name] for name in sorted(common)}},
            "securitySchemes": {
                "departmentUser": {"type": "userPassword", "description": (
                    f"The department's broker user {tenant.id}.<department>, from onboarding. Set the message "
                    f"property user_id to it: RabbitMQ refuses a user_id that is not the connection's user, and "
                    f"intake quarantines an event whose ce-department is not that department (spoofed).")},
                "departmentToken": {"type": "http", "scheme": "bearer", "description": (
                    "The department's HTTP token, from onboarding: Authorization: Bearer <token>. A missing, "
                    "unknown, rotated or revoked token gets 401.")},
            },
        },
    }


_DESCRIPTION = "\n\n".join([
    "What the departments of {name} ({tenant}) publish to OneGrid. Each channel is a routing key "
    "`<department>.<event type>` on the topic exchange `onegrid.intake` of the virtual host `{tenant}`; each "
    "message is one version of the event type's contract. Intake checks the data against the version named by "
    "`ce-dataschema`, so several versions are accepted side by side during a migration.",
    "A department speaks only as itself: over AMQP as its broker user `{tenant}.<department>` with the `user_id` "
    "property set to it, over HTTP with its bearer token. An event claiming another department is quarantined as "
    "`spoofed`.",
    "Limits: {max_payload} bytes per event, {max_batch} events per HTTP batch, {rate} events/s per department over "
    "HTTP (bursts of {burst}); over that, 413 or 429 with Retry-After.",
])


def _pointer(key: str) -> str:
    """A map key as a JSON Pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


def render(doc: dict) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=120)
