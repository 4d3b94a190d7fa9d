"""One AsyncAPI 3.0 document per tenant, generated from the contracts, for the integrators
of its departments: what each department may publish, where, and how to authenticate.

Send: channels are the routing keys on `onegrid.intake` (`<department>.<event type>`); each
channel's messages are the versions of that event type's contract, with the data as a JSON
Schema payload, the CloudEvents `ce-` headers as the message headers and one example each
(made from the contract's fake data with a fixed seed; tests/unit/test_asyncapi.py proves
intake's admission accepts every one). Receive: each department's `workorders.<department>`
(its work orders) and `receipts.<department>` (what became of every event it sent). The grid
codes the `grid` field takes are listed. Deterministic: the same contracts and manifest give
the same bytes (docs/asyncapi/<tenant>.yaml is checked for drift).
"""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime
from typing import Any
from urllib.parse import quote

import yaml

from onegrid.contracts.fake import CST, sample_object
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology
from onegrid.kernel.topology import INTAKE

ASYNCAPI = "3.0.0"
COMMON = "CaseField"  # components.schemas.CaseField.<name>: the fields every event carries
AMQP_BINDING = "0.3.0"
HTTP_BINDING = "0.3.0"
EXAMPLE_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=CST)  # the examples' clock: the same bytes every time
RECEIPT_OUTCOMES = ("accepted", "merged", "quarantined")  # onegrid.domain.receipts.OUTCOMES (a test holds them equal)


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
    out: dict[str, Any] = {
        "type": "object",
        "properties": {
            name: {"$ref": f"#/components/schemas/{COMMON}.{name}"} if name in shared else json_schema(spec)
            for name, spec in fields.items()
        },
    }
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
        "ce-id": {
            **attr,
            "minLength": 1,
            "description": "Unique per source; with source and department, the "
            "event's identity (a resend with the same id is a duplicate).",
        },
        "ce-source": {
            **attr,
            "minLength": 1,
            "description": "URI reference of the sending system, e.g. /<tenant>/departments/<department>/<system>.",
        },
        "ce-type": {**attr, "description": "<department>.<event type>; equals the routing key."},
        "ce-time": {**attr, "format": "date-time"},
        "ce-subject": attr,
        "ce-dataschema": {
            **attr,
            "description": "urn:onegrid:contract:<department>.<event type>:<version>; picks "
            "the contract version the data is checked against.",
        },
        "ce-tenant": {"type": "string", "const": tenant_id},
        "ce-department": {**attr, "description": "Must be the authenticated department."},
    }
    return {
        "type": "object",
        "properties": props,
        "required": ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-dataschema", "ce-tenant", "ce-department"],
    }


def enabled_contracts(tenant, registry) -> list:
    """The contracts `tenant`'s departments may publish, by routing key and version."""
    return sorted(
        (c for c in registry.events.values() if c.department in tenant.departments), key=lambda c: (c.key, c.version)
    )


def document(tenant, registry) -> dict:
    """The AsyncAPI document of `tenant`'s intake: every enabled department's event types."""
    contracts = enabled_contracts(tenant, registry)
    channels: dict[str, dict] = {}
    operations: dict[str, dict] = {}
    messages: dict[str, dict] = {}
    common: dict[str, dict] = {}
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
            "headers": {
                "type": "object",
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventHeaders"},
                    {
                        "type": "object",
                        "properties": {
                            "ce-type": {"const": c.key},
                            "ce-dataschema": {"const": ce.dataschema(c.key, c.version)},
                            "ce-department": {"const": c.department},
                        },
                    },
                ],
            },
            "payload": object_schema(c.fields, shared=set(c.fields) - set(c.own_fields)),
            "correlationId": {"description": "The CloudEvents id.", "location": "$message.header#/ce-id"},
            "examples": [example(tenant, c)],
            "tags": [{"name": c.department}, {"name": c.category or "category chosen by the reporter"}],
            "bindings": {"amqp": {"messageType": c.key, "bindingVersion": AMQP_BINDING}},
        }
        channel = channels.setdefault(
            c.key,
            {
                "address": c.key,
                "title": f"{dept['name']} ({dept['name_zh']}): {c.type}",
                "description": f"Routing key {c.key} on the topic exchange {INTAKE}. Only the broker user "
                f"{tenant.id}.{c.department} (or its HTTP token) may publish it.",
                "servers": [{"$ref": "#/servers/rabbitmq"}, {"$ref": "#/servers/intake-http"}],
                "messages": {},
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {
                            "name": INTAKE,
                            "type": "topic",
                            "durable": True,
                            "autoDelete": False,
                            "vhost": tenant.id,
                        },
                        "bindingVersion": AMQP_BINDING,
                    }
                },
            },
        )
        channel["messages"][f"v{c.version}"] = {"$ref": f"#/components/messages/{_pointer(mid)}"}
        op = operations.setdefault(
            f"publish.{c.key}",
            {
                "action": "send",
                "channel": {"$ref": f"#/channels/{_pointer(c.key)}"},
                "title": f"{c.department} publishes {c.type}",
                "summary": c.summary,
                "security": [
                    {"$ref": "#/components/securitySchemes/departmentUser"},
                    {"$ref": "#/components/securitySchemes/departmentToken"},
                ],
                "bindings": {
                    "amqp": {
                        "deliveryMode": 2,
                        "mandatory": True,
                        "userId": f"{tenant.id}.{c.department}",
                        "bindingVersion": AMQP_BINDING,
                    },
                    "http": {"method": "POST", "bindingVersion": HTTP_BINDING},
                },
                "messages": [],
            },
        )
        op["messages"].append({"$ref": f"#/channels/{_pointer(c.key)}/messages/v{c.version}"})
        op["summary"] = c.summary  # the newest version's
    _receive(tenant, channels, operations, messages)
    fingerprint = hashlib.sha256(
        json.dumps([(c.key, c.version, c.fields) for c in contracts], sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:12]
    if "grid" in common:  # the codes themselves, not only their pattern
        common["grid"] = {**common["grid"], "enum": [g.code for g in tenant.grids()]}
    return {
        "asyncapi": ASYNCAPI,
        "id": f"urn:onegrid:tenant:{tenant.id}:intake",
        "info": {
            "title": f"OneGrid intake: {tenant.name_zh} ({tenant.id})",
            "version": f"contracts-{fingerprint}",
            "description": _DESCRIPTION.format(
                tenant=tenant.id,
                name=tenant.name,
                max_payload=tenant.max_payload_bytes,
                max_batch=tenant.max_batch,
                rate=tenant.rate_per_department,
                burst=tenant.burst_per_department,
            ),
            "license": {"name": "Apache-2.0"},
            "tags": [{"name": d} for d in tenant.departments],
        },
        "defaultContentType": ce.JSON,
        "servers": {
            "rabbitmq": {
                "host": "{host}:5672",
                "protocol": "amqp",
                "protocolVersion": "0-9-1",
                "pathname": f"/{tenant.id}",
                "title": "The county's bus",
                "description": f"Virtual host {tenant.id}; publish to the exchange {INTAKE} with publisher "
                f"confirms. As a URL, user, password and virtual host are percent-encoded: "
                f"{amqp_url(tenant.id, f'{tenant.id}.<department>', '<password>', '<host>')}",
                "variables": {"host": {"default": "localhost", "description": "The RabbitMQ host of the platform."}},
                "security": [{"$ref": "#/components/securitySchemes/departmentUser"}],
            },
            "intake-http": {
                "host": "{host}",
                "protocol": "http",
                "pathname": "/events",
                "title": "Intake over HTTP",
                "description": "POST one CloudEvent (binary or structured mode) or a "
                "batch (application/cloudevents-batch+json).",
                "variables": {"host": {"default": "localhost:8201", "description": "The county's intake service."}},
                "security": [{"$ref": "#/components/securitySchemes/departmentToken"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "CloudEventHeaders": _headers(tenant.id),
                "GridCode": {
                    "type": "string",
                    "description": "The grids of " + tenant.id + " (the `grid` field takes one of these codes): "
                    "street / community / grid, as named in the county's manifest.",
                    "oneOf": [
                        {"const": g.code, "title": " / ".join(tenant.nodes[a].name for a in _path(tenant, g.code))}
                        for g in tenant.grids()
                    ],
                },
                "WorkOrder": WORK_ORDER,
                "Receipt": RECEIPT,
                **{f"{COMMON}.{name}": common[name] for name in sorted(common)},
            },
            "securitySchemes": {
                "departmentUser": {
                    "type": "userPassword",
                    "description": (
                        f"The department's broker user {tenant.id}.<department>, from onboarding. Set the message "
                        f"property user_id to it: RabbitMQ refuses a user_id that is not the connection's user, and "
                        f"intake quarantines an event whose ce-department is not that department (spoofed)."
                    ),
                },
                "departmentToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "The department's HTTP token, from onboarding: Authorization: Bearer <token>. A missing, "
                        "unknown, rotated or revoked token gets 401."
                    ),
                },
            },
        },
    }


_DESCRIPTION = "\n\n".join(
    [
        "What the departments of {name} ({tenant}) publish to OneGrid. Each channel is a routing key "
        "`<department>.<event type>` on the topic exchange `onegrid.intake` of the virtual host `{tenant}`; each "
        "message is one version of the event type's contract. Intake checks the data against the version named by "
        "`ce-dataschema`, so several versions are accepted side by side during a migration.",
        "A department speaks only as itself: over AMQP as its broker user `{tenant}.<department>` with the `user_id` "
        "property set to it, over HTTP with its bearer token. An event claiming another department is quarantined as "
        "`spoofed`.",
        "Limits: {max_payload} bytes per event, {max_batch} events per HTTP batch, {rate} events/s per department over "
        "HTTP (bursts of {burst}); over that, 413 or 429 with Retry-After.",
        "Conventions. `ce-source` names the sending system: `/{tenant}/departments/<department>/<system>`; with "
        "`ce-id` and the department it is the event's identity, so a resend with the same `ce-id` and source is a "
        "duplicate of the same case, never a second one (send again freely after a lost confirm). A publisher "
        "confirm only says the bus has the event: whether it became a case is told by the receipt (over HTTP the "
        "answer to POST /events says it at once). Reports of the same category that happened close in time, a few "
        "metres apart and described alike, may be merged by routing into the earlier case: the receipt `event.merged` "
        "names it. Over HTTP in binary mode (`Content-Type: "
        "application/json` with `ce-*` headers) `ce-tenant` and `ce-department` are still required although the "
        "token names the department; structured mode (`application/cloudevents+json`) carries them as the "
        "attributes `tenant` and `department`. Every valid grid code is in `components.schemas.GridCode`.",
        "Receive. Each department reads two queues of its own, and only its own, as its broker user: "
        "`workorders.<department>` (the work orders routing dispatches to it, `work_order.dispatched`; work them "
        "with the departments HTTP API) and `receipts.<department>` (for every event it sent: `event.accepted` with "
        "the case id, `event.merged` into another case, or `event.quarantined` with the reason and the detail "
        "the operator sees). A receipt's `ce-subject` is the event's id and its `ce-id` is `<event id>.<outcome>`: "
        "a redelivered receipt has the same id. Consume with manual acknowledgements. The same over HTTP with the "
        "department's token: `GET /events/<event id>` (the latest receipt; 404 for an event it did not send) and "
        "`GET /quarantine` (what it sent that was quarantined, with the original bytes).",
    ]
)


def amqp_url(vhost: str, user: str, password: str, host: str, port: int = 5672) -> str:
    """The AMQP URL of a county's bus: user, password and vhost percent-encoded (a `/` too)."""
    return f"amqp://{quote(user, safe='<>')}:{quote(password, safe='<>')}@{host}:{port}/{quote(vhost, safe='')}"


def example(tenant, contract) -> dict:
    """One valid message of `contract`: its fake data with a seed of its own and a fixed clock,
    in the tenant's first grid, with the headers a department sends."""
    rng = random.Random(f"{contract.key}.v{contract.version}")
    fixed = {"grid": tenant.grids()[0].code} if "grid" in contract.fields else {}
    data = sample_object(contract.fields, rng, fixed, now=EXAMPLE_NOW)
    headers = {
        "ce-specversion": ce.SPECVERSION,
        "ce-id": f"example-{contract.key}-v{contract.version}",
        "ce-source": f"/{tenant.id}/departments/{contract.department}/example",
        "ce-type": contract.key,
        "ce-time": EXAMPLE_NOW.isoformat(timespec="seconds"),
        "ce-dataschema": ce.dataschema(contract.key, contract.version),
        "ce-tenant": tenant.id,
        "ce-department": contract.department,
    }
    return {"name": f"{contract.key}.v{contract.version}", "headers": headers, "payload": data}


def _path(tenant, code: str) -> list[str]:
    """The codes from the level below the root down to `code`."""
    out = []
    node = tenant.nodes[code]
    while node is not None and node.parent is not None:
        out.append(node.code)
        node = tenant.nodes.get(node.parent) if node.parent else None
    return out[::-1]


_STR = {"type": "string"}
_NUM = {"type": "number"}
WORK_ORDER = {
    "type": "object",
    "description": "A department's part of a case, as routing dispatched it (deadlines in epoch seconds).",
    "required": ["id", "case_id", "department", "status", "level", "unit", "ack_due", "resolve_due"],
    "properties": {
        "id": {**_STR, "description": "The work order's id: accept, return, resolve it with this."},
        "case_id": _STR,
        "department": _STR,
        "status": {**_STR, "const": "dispatched"},
        "level": {
            **_STR,
            "description": "A level of the county's ladder (its manifest's `ladder:`; by default "
            "grid, community, street, county).",
        },
        "unit": {**_STR, "description": "The grid-tree code of the unit at that level."},
        "category": _STR,
        "severity": _STR,
        "grid": {"$ref": "#/components/schemas/GridCode"},
        "summary": _STR,
        "reason": {**_STR, "description": "Why this department: the routing rule, a return, a whistle, a reopen."},
        "rule": {"type": ["integer", "null"]},
        "dispatched_at": {**_STR, "format": "date-time"},
        "event_id": {**_STR, "description": "The id of the event the case came from."},
        "ack_span": _NUM,
        "resolve_span": _NUM,
        "ack_due": {**_NUM, "description": "Accept it by then (epoch seconds)."},
        "resolve_due": {**_NUM, "description": "Resolve it by then (epoch seconds)."},
        "dispatched_epoch": _NUM,
    },
    "additionalProperties": True,
}
RECEIPT = {
    "type": "object",
    "description": "What became of one event the department sent.",
    "required": ["outcome", "department", "event_id", "at"],
    "properties": {
        "outcome": {**_STR, "enum": list(RECEIPT_OUTCOMES)},
        "department": _STR,
        "event_id": {**_STR, "description": "The event's ce-id (empty if the event had none readable)."},
        "source": {**_STR, "description": "The event's ce-source."},
        "at": {**_STR, "format": "date-time"},
        "case_id": {**_STR, "description": "accepted: the case it is; merged: the case it was."},
        "merged_into": {**_STR, "description": "merged: the case the work goes on in."},
        "reason": {**_STR, "description": "quarantined: why (docs/operations.md lists the reasons)."},
        "detail": {**_STR, "description": "quarantined: the whole detail, as the operator sees it."},
        "quarantine_id": {**_STR, "description": "quarantined: the entry, in GET /quarantine."},
    },
    "additionalProperties": False,
}


def _receive(tenant, channels: dict, operations: dict, messages: dict) -> None:
    """Each department's queues: its work orders and its receipts."""
    queue_binding = {"bindingVersion": AMQP_BINDING}
    base = {"$ref": "#/components/schemas/CloudEventHeaders"}
    messages["work_order.dispatched"] = {
        "name": "work_order.dispatched",
        "title": "A work order for the department",
        "contentType": ce.JSON,
        "headers": {
            "type": "object",
            "allOf": [
                base,
                {
                    "properties": {
                        "ce-type": {"const": "work_order.dispatched"},
                        "ce-chainhead": {
                            "type": "string",
                            "pattern": ce.CHAINHEAD_PATTERN,
                            "description": "The case's timeline hash-chain head after this dispatch: "
                            "<entries>:<sha256 hex of the last entry> (docs/lifecycle.md). Information; "
                            "a department need not read it.",
                        },
                    }
                },
            ],
        },
        "payload": {"$ref": "#/components/schemas/WorkOrder"},
        "correlationId": {"description": "ce-subject: the work order's id.", "location": "$message.header#/ce-subject"},
    }
    for outcome in RECEIPT_OUTCOMES:
        messages[f"event.{outcome}"] = {
            "name": f"event.{outcome}",
            "title": f"Receipt: the event was {outcome}",
            "contentType": ce.JSON,
            "headers": {
                "type": "object",
                "allOf": [base, {"properties": {"ce-type": {"const": f"event.{outcome}"}}}],
            },
            "payload": {"$ref": "#/components/schemas/Receipt"},
            "correlationId": {"description": "ce-subject: the event's id.", "location": "$message.header#/ce-subject"},
        }
    for dept in tenant.departments:
        user = f"{tenant.id}.{dept}"
        for queue, what, refs in (
            (topology.work_queue(dept), "work orders", ["work_order.dispatched"]),
            (topology.receipt_queue(dept), "receipts", [f"event.{o}" for o in RECEIPT_OUTCOMES]),
        ):
            channels[queue] = {
                "address": queue,
                "title": f"{dept}'s {what}",
                "description": f"The quorum queue {queue}; only the broker user {user} may read it.",
                "servers": [{"$ref": "#/servers/rabbitmq"}],
                "messages": {m: {"$ref": f"#/components/messages/{_pointer(m)}"} for m in refs},
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {
                            "name": queue,
                            "durable": True,
                            "exclusive": False,
                            "autoDelete": False,
                            "vhost": tenant.id,
                        },
                        **queue_binding,
                    }
                },
            }
            operations[f"receive.{queue}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{_pointer(queue)}"},
                "title": f"{dept} receives its {what}",
                "security": [{"$ref": "#/components/securitySchemes/departmentUser"}],
                "bindings": {"amqp": {"ack": True, **queue_binding}},
                "messages": [{"$ref": f"#/channels/{_pointer(queue)}/messages/{_pointer(m)}"} for m in refs],
            }


def _pointer(key: str) -> str:
    """A map key as a JSON Pointer segment."""
    return key.replace("~", "~0").replace("/", "~1")


class _Plain(yaml.SafeDumper):
    """Every repeated schema written out in full: no `&id` anchors for a reader to chase."""

    def ignore_aliases(self, data) -> bool:
        return True


def render(doc: dict) -> str:
    return yaml.dump(doc, Dumper=_Plain, allow_unicode=True, sort_keys=False, width=120)
