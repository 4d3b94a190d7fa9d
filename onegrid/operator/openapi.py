"""One OpenAPI 3.1 document per service and tenant: the service's HTTP surface as it answers.

Request schemas are not written here but derived: intake's event data from the tenant's
contracts (the JSON Schemas onegrid/contracts/asyncapi.py makes of them), bodies and query
strings from the marshmallow schemas the services validate with (onegrid/app/inputs.py). The
responses are the ones the handlers give, errors included (onegrid/adapters/nameko/httpjson.py and
intake's refusals). Deterministic: docs/openapi/<tenant>/<service>.json is checked for drift;
a running service serves its own at `GET /openapi.json`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from marshmallow import fields, missing, validate

from onegrid import catalogue
from onegrid.app import inputs
from onegrid.contracts import asyncapi, compat
from onegrid.domain.duplicates import SUGGESTION_STATES
from onegrid.domain.intake import REASONS
from onegrid.domain.ladder import ITEM_STATES
from onegrid.domain.lifecycle import CASE_STATES, WORK_ORDER_STATES
from onegrid.domain.reports import TABLES
from onegrid.domain.scoring import COLOURS
from onegrid.domain.timeline import HEAD_PATTERN
from onegrid.kernel import envelope as ce

OPENAPI = "3.1.0"
SERVICES = tuple(catalogue.SERVICES)
TOKEN = "departmentToken"
PERSON = "personToken"
SIGNED = "smsGatewaySignature"  # the SMS gateway's push: an HMAC signature, no token
# the services whose routes people call with their JWT (intake takes department tokens only)
PEOPLE_FACING = ("departments", "supervision", "scoring", "notify", "registry", "console")
_REF = "#/components/schemas/"
_STR, _INT, _NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}


def document(service: str, tenant, registry) -> dict:
    """The OpenAPI document of `service` as it runs for `tenant`."""
    paths: dict[str, dict] = {}
    schemas = dict(_SCHEMAS)
    _BUILD[service](paths, schemas, tenant, registry)
    if service in PEOPLE_FACING:
        _secure(paths, tenant, with_department=service in ("departments", "registry"))
    paths.update(_observable(service))
    components: dict[str, Any] = {"schemas": schemas, "responses": _responses()}
    if service in PEOPLE_FACING:
        components["securitySchemes"] = {PERSON: _PERSON_SCHEME(tenant)}
    if service == "notify":
        components["securitySchemes"][SIGNED] = {
            "type": "apiKey",
            "in": "header",
            "name": "X-OneGrid-Signature",
            "description": "`sha256=` and the hex HMAC-SHA256, keyed with the county's inbound SMS secret "
            "(notify.channels.sms.inbound_secret_env), of the X-OneGrid-Timestamp header (unix seconds), a dot and "
            "the exact body. Missing, stale (older than inbound_tolerance_s) or wrong: 401.",
        }
    if service in ("intake", "departments", "registry"):
        components.setdefault("securitySchemes", {})[TOKEN] = {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The department's HTTP token, from onboarding (`onegrid tenant onboard`, `onegrid tenant rotate`). "
                "A missing, unknown, rotated or revoked token gets 401."
            ),
        }
    doc = {"openapi": OPENAPI, "info": {}, "paths": paths, "components": components}
    _prune(doc)
    fingerprint = hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
    doc["info"] = {
        "title": f"OneGrid {service}: {tenant.name_zh} ({tenant.id})",
        "version": f"api-{fingerprint}",
        "description": _DESCRIPTION[service].format(tenant=tenant),
        "license": {"name": "Apache-2.0"},
    }
    return doc


def render(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


# -- from marshmallow -------------------------------------------------------------------------


def _spec(field: fields.Field) -> dict:
    """A marshmallow field as a contract field spec, for asyncapi.json_schema."""
    spec: dict = {}
    for v in field.validators:
        if isinstance(v, validate.OneOf):
            return {"type": "enum", "values": list(v.choices)}
        if isinstance(v, validate.Length):
            unit = "items" if isinstance(field, fields.List) else "length"
            spec.update({f"{k}_{unit}": n for k, n in (("min", v.min), ("max", v.max)) if n is not None})
        elif isinstance(v, validate.Range):
            spec.update({k: n for k, n in (("min", v.min), ("max", v.max)) if n is not None})
        elif isinstance(v, validate.Regexp):
            spec["pattern"] = v.regex.pattern
    if isinstance(field, fields.Url):
        return {"type": "url"}
    if isinstance(field, fields.List):
        return {**spec, "type": "list", "items": _spec(field.inner)}
    kinds = ((fields.Boolean, "boolean"), (fields.Integer, "integer"), (fields.Float, "number"))
    return {**spec, "type": next((name for cls, name in kinds if isinstance(field, cls)), "string")}


def _field_schema(field: fields.Field, nullable: bool) -> dict:
    out = asyncapi.json_schema(_spec(field))
    default = field.load_default() if callable(field.load_default) else field.load_default
    if default is not None and default is not missing:
        out["default"] = default
    return {"anyOf": [out, {"type": "null"}]} if nullable and field.allow_none else out


def _body(schema_cls, closed: bool = True, signed_in: tuple[str, ...] = ()) -> dict:
    """A request body schema; `closed`: the handler refuses undeclared fields (else it ignores them);
    `signed_in`: fields the signed-in person's token supplies (a body's value is ignored for a person)."""
    declared = schema_cls().fields
    out: dict[str, Any] = {"type": "object", "properties": {n: _field_schema(f, True) for n, f in declared.items()}}
    for name in signed_in:
        out["properties"][name]["description"] = (
            "Checked, then ignored for a signed-in person: the token's subject is recorded."
        )
    required = [n for n, f in declared.items() if f.required and n not in signed_in]
    if required:
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


def _adjustment_body() -> dict:
    """A person adjusts as themselves: `inspector` may be left out, and another one is refused."""
    body = _body(inputs.Adjustment, False, signed_in=("inspector",))
    body["properties"]["inspector"]["description"] = (
        "For a signed-in person: leave it out or give your own subject (another is a 400); "
        "a department system names the inspector."
    )
    return body


def _query(schema_cls) -> list[dict]:
    return [
        {"name": n, "in": "query", "required": f.required, "schema": _field_schema(f, False)}
        for n, f in schema_cls().fields.items()
    ]


# -- building blocks --------------------------------------------------------------------------


def _ref(name: str) -> dict:
    return {"$ref": _REF + name}  # names are ids, dots and digits: no JSON Pointer escapes


def _obj(required=(), closed=False, **props) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def _json(description: str, schema: dict, headers: dict | None = None) -> dict:
    out = {"description": description, "content": {ce.JSON: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _errors(*codes: int) -> dict:
    return {str(c): {"$ref": f"#/components/responses/{_RESPONSE_NAMES[c]}"} for c in codes}


def _path(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string", "minLength": 1, "pattern": "^[^/]+$"},
    }


def _op(op_id: str, summary: str, responses: dict, params=(), request=None, secured=None) -> dict:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary}
    if params:
        op["parameters"] = list(params)
    if request:
        op["requestBody"] = {"required": True, "content": request}
    if secured is not None:
        op["security"] = [{TOKEN: []}] + ([{}] if secured.trust_unauthenticated_http else [])
    op["responses"] = responses
    return op


def _ladder_levels(found, tenant):
    """A `level` (a query parameter or a body field) as the tenant's ladder's levels: the
    schema's pattern says only what a level name looks like."""
    params = found if isinstance(found, list) else [p for p in [found.get("properties", {}).get("level")] if p]
    for p in params:
        if isinstance(found, list) and p.get("name") != "level":
            continue
        schema = p["schema"] if isinstance(found, list) else p
        for alt in schema.get("anyOf", [schema]):
            if alt.get("type") == "string":
                alt.pop("pattern", None)
                alt["enum"] = list(tenant.levels)
    return found


def _PERSON_SCHEME(tenant) -> dict:
    idp = tenant.identity
    where = (
        f"from the county's identity provider {idp.issuer} (keys: {idp.jwks_url}; audience {idp.audience})"
        if idp
        else "from the county's embedded issuer (`onegrid people token`; keys: supervision's /.well-known/jwks.json)"
    )
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": f"A person's signed token {where}. Missing, expired, for another audience, issuer or county, "
        "badly signed or revoked: 401. A role or scope that does not fit the route and the case (docs/access.md): 403.",
    }


def _secure(paths: dict, tenant, with_department: bool) -> None:
    """Every operation but the public ones takes a person's token (departments': or the
    department's), and may answer 401 and 403."""
    schemes: list[dict[str, list]] = [{PERSON: []}] + ([{TOKEN: []}] if with_department else [])
    for url, item in paths.items():
        if url.startswith(("/.well-known/", "/asyncapi.")):  # public
            continue
        for op in item.values():
            if op.get("security") == [{SIGNED: []}]:  # a machine's signature, not a person's token
                continue
            op["security"] = schemes  # always: no tenant lets people in without a token
            op["responses"].update(_errors(401, 403))


def _refusal(*codes: str, **extra) -> dict:
    return _obj(("error", "detail"), error={"type": "string", "enum": list(codes)}, detail=_STR, **extra)


_SCHEMAS = {
    "Message": _obj(("error",), error={"type": "string", "description": "What is wrong, in words."}),
    "InvalidRequest": _obj(
        ("error", "fields"),
        error={"const": "invalid request"},
        fields={
            "description": "marshmallow's messages: field name to its problems, or the problems of the whole body."
        },
    ),
    "Step": _obj(
        ("at", "actor", "action"),
        at=_STR,
        actor=_STR,
        action=_STR,
        from_state=_STR,
        to_state=_STR,
        note=_STR,
        work_order=_STR,
        due={**_NUM, "description": "a supervise step: the deadline (epoch s) that fired"},
    ),
    "Case": _obj(
        ("id", "tenant", "department", "status", "category", "severity", "grid", "summary"),
        id=_STR,
        tenant=_STR,
        department=_STR,
        event_type=_STR,
        event_id=_STR,
        source=_STR,
        status={"type": "string", "enum": list(CASE_STATES)},
        category=_STR,
        severity=_STR,
        grid=_STR,
        summary=_STR,
        level=_STR,
        received_at=_STR,
        data={"type": "object"},
    ),
    "WorkOrder": _obj(
        ("id", "case_id", "department", "status"),
        id=_STR,
        case_id=_STR,
        department=_STR,
        status={"type": "string", "enum": list(WORK_ORDER_STATES)},
        level=_STR,
        unit=_STR,
        reason=_STR,
        dispatched_at=_STR,
        ack_due=_NUM,
        resolve_due=_NUM,
    ),
    "CaseRecord": {
        "allOf": [
            _ref("Case"),
            _obj(
                ("work_orders", "timeline"),
                work_orders={"type": "array", "items": _ref("WorkOrder")},
                timeline={"type": "array", "items": _ref("Step")},
            ),
        ]
    },
    "AdjustmentEntry": _obj(
        ("id", "worker", "points", "reason", "inspector", "month", "at"),
        id=_STR,
        worker=_STR,
        points=_INT,
        reason=_STR,
        inspector=_STR,
        month=_STR,
        at=_STR,
    ),
}
_RESPONSE_NAMES = {400: "InvalidRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Refused"}


def _responses() -> dict:
    return {
        "InvalidRequest": _json("The request is invalid: the body or a query parameter.", _ref("InvalidRequest")),
        "Unauthorized": _json(
            "No acceptable token.",
            _refusal("unauthenticated", "invalid_token"),
            headers={"WWW-Authenticate": {"schema": _STR, "description": 'Bearer realm="onegrid"'}},
        ),
        "Forbidden": _json(
            "The token's role or scope does not fit (docs/access.md), or it is another department's.", _ref("Message")
        ),
        "NotFound": {
            "description": "Nothing by that name (JSON); or no route at all, when a path parameter is "
            "outside its pattern (the web server's HTML page).",
            "content": {ce.JSON: {"schema": _ref("Message")}, "text/html": {"schema": _STR}},
        },
        "Refused": _json("The state does not allow it (the lifecycle's rules).", _ref("Message")),
    }


def _prune(doc: dict) -> None:
    """Keep the components the paths refer to, directly or through each other."""
    comps, seen, todo = doc["components"], set(), [doc["paths"]]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                seen.add(ref)
                _, _, kind, name = ref.split("/")
                todo.append(comps[kind][name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    for kind in ("schemas", "responses"):
        comps[kind] = {n: s for n, s in sorted(comps[kind].items()) if f"#/components/{kind}/{n}" in seen}
        if not comps[kind]:
            del comps[kind]


# -- the services -----------------------------------------------------------------------------


def _observable(service: str) -> dict:
    checks = {"type": "object", "additionalProperties": _STR}
    ready = _obj(("status", "checks"), status={"enum": ["ready", "not ready"]}, checks=checks)
    text = {"description": "Prometheus text exposition format.", "content": {"text/plain": {"schema": _STR}}}
    return {
        "/livez": {
            "get": _op(
                f"{service}.livez",
                "Liveness: the process's event loop answers. Asks no dependency.",
                {"200": _json("Alive.", _obj(("status",), status={"const": "alive"}))},
            )
        },
        "/health": {
            "get": _op(
                f"{service}.health",
                "Liveness, the old name of /livez.",
                {"200": _json("Alive.", _obj(("status",), status={"const": "alive"}))},
            )
        },
        "/readyz": {
            "get": _op(
                f"{service}.readyz",
                "Readiness: every broker consumer connected, Redis answering within a second.",
                {
                    "200": _json("Ready.", ready),
                    "503": _json("Not ready; `checks` says which dependency failed.", ready),
                },
            )
        },
        "/metrics": {"get": _op(f"{service}.metrics", "Prometheus metrics.", {"200": text})},
        "/openapi.json": {
            "get": _op(
                f"{service}.openapi",
                "This document.",
                {
                    "200": _json(
                        "The service's OpenAPI document for its tenant.", _obj(("openapi",), openapi={"const": OPENAPI})
                    )
                },
            )
        },
    }


def _intake(paths, schemas, tenant, registry) -> None:
    contracts = asyncapi.enabled_contracts(tenant, registry)
    attr = {"type": "string", "minLength": 1, "maxLength": 256}
    envelope = {
        "specversion": {"const": ce.SPECVERSION},
        "id": attr,
        "source": attr,
        "tenant": {"const": tenant.id},
        "time": {**attr, "format": "date-time"},
        "subject": {**attr, "minLength": 0},
        # media type parameters are accepted (ce.is_json): a charset, if named, is UTF-8
        "datacontenttype": {"type": "string", "pattern": r"^application/json\s*(;\s*charset=\"?(utf-8|UTF-8)\"?\s*)?$"},
    }
    variants, datas = [], []
    for c in contracts:
        shared = set(c.fields) - set(c.own_fields)
        for name in sorted(shared):
            schemas.setdefault(f"{asyncapi.COMMON}.{name}", asyncapi.json_schema(c.fields[name]))
        data = f"{c.key}.v{c.version}"
        datas.append(data)
        schemas[data] = {
            "title": f"{c.key} version {c.version}",
            "description": c.summary,
            **asyncapi.object_schema(c.fields, shared=shared),
        }
        variants.append(
            _obj(
                (*ce.REQUIRED, "dataschema", "data"),
                **envelope,
                type={"const": c.key},
                dataschema={"const": ce.dataschema(c.key, c.version)},
                department={"const": c.department},
                data=_ref(data),
            )
        )
    grid = f"{asyncapi.COMMON}.grid"
    schemas[grid] = {**schemas[grid], "enum": [g.code for g in tenant.grids()]}  # else unknown_grid
    schemas["EventData"] = {
        "description": "Binary mode: the data of one contract version, named by the ce-type and ce-dataschema headers.",
        "anyOf": [_ref(n) for n in datas],
    }
    schemas["StructuredEvent"] = {
        "description": "Structured mode: the CloudEvents attributes and the data of one "
        "contract version, in one JSON object.",
        "anyOf": variants,
    }
    schemas["Outcome"] = _obj(
        ("outcome",),
        True,
        outcome={"enum": ["registered", "duplicate", "quarantined"]},
        case_id=_STR,
        event_id=_STR,
        reason={"enum": sorted(REASONS)},
        detail=_STR,
        quarantine_id=_STR,
    )
    headers = [
        {
            "name": f"{ce.HEADER_PREFIX}{a}",
            "in": "header",
            "required": False,
            "description": f"Binary mode: the CloudEvents attribute {a}.",
            "schema": s,
        }
        for a, s in (
            ("specversion", {"const": ce.SPECVERSION}),
            ("id", attr),
            ("source", attr),
            ("type", {"enum": sorted({c.key for c in contracts})}),
            ("tenant", {"const": tenant.id}),
            ("department", {"enum": list(tenant.departments)}),
            ("dataschema", {"enum": [ce.dataschema(c.key, c.version) for c in contracts]}),
            ("time", {**attr, "format": "date-time"}),
            ("subject", attr),
        )
    ]
    quarantined = "Quarantined with its bytes and the reason (payload_too_large is a 413)."
    responses = {
        "200": _json(
            "A duplicate of a registered event (one event), or every event's outcome (a batch).",
            {
                "anyOf": [
                    _ref("Outcome"),
                    _obj(
                        ("counts", "results"),
                        True,
                        counts={"type": "object", "additionalProperties": _INT},
                        results={"type": "array", "items": _ref("Outcome")},
                    ),
                ]
            },
        ),
        "201": _json("Registered: a new case.", _ref("Outcome")),
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "411": _json("A chunked body without Content-Length.", _refusal("length_required")),
        "413": _json(
            f"Over the tenant's max_request_bytes ({tenant.max_request_bytes}) or max_batch "
            f"({tenant.max_batch}), refused unread; or one event over max_payload_bytes "
            f"({tenant.max_payload_bytes}), quarantined.",
            {"anyOf": [_refusal("request_too_large", "batch_too_large"), _ref("Outcome")]},
        ),
        "422": _json(
            quarantined + " A batch that is not a JSON array is malformed_batch.",
            {"anyOf": [_ref("Outcome"), _refusal("malformed_batch", quarantine_id=_STR)]},
        ),
        "429": _json(
            f"Over the department's rate ({tenant.rate_per_department:g} events/s, bursts of "
            f"{tenant.burst_per_department}).",
            _refusal("rate_limited"),
            headers={"Retry-After": {"schema": _INT, "description": "Seconds to wait.", "required": True}},
        ),
        "503": _json(
            "The bus cannot take events now (the broker's memory or disk alarm blocks publishers); "
            "send the same request again after Retry-After: an event already recorded is a duplicate, not lost.",
            _refusal("bus_blocked"),
            headers={"Retry-After": {"schema": _INT, "description": "Seconds to wait.", "required": True}},
        ),
    }
    paths["/events"] = {
        "post": _op(
            "intake.post_events",
            "Send one CloudEvent (binary or structured mode) or a batch.",
            responses,
            headers,
            secured=tenant,
            request={
                ce.JSON: {"schema": _ref("EventData")},
                ce.STRUCTURED: {"schema": _ref("StructuredEvent")},
                ce.BATCH: {"schema": {"type": "array", "items": _ref("StructuredEvent"), "maxItems": tenant.max_batch}},
            },
        )
    }
    schemas["Receipt"] = asyncapi.RECEIPT
    told = _op(
        "intake.get_event",
        "What became of an event the department sent: its latest receipt (accepted, merged, quarantined).",
        {
            "200": _json("The receipt.", _ref("Receipt")),
            **_errors(401, 404),
        },
        [_path("event_id", "The event's ce-id.", {"type": "string", "minLength": 1})],
    )
    told["security"] = [{TOKEN: []}]  # a receipt only to the department that sent the event
    paths["/events/{event_id}"] = {"get": told}
    entry = _obj(
        ("id", "reason", "detail", "transport", "received_at", "headers", "body_base64"),
        True,
        id=_STR,
        event_id=_STR,
        reason={"enum": sorted(REASONS)},
        detail=_STR,
        transport=_STR,
        received_at=_STR,
        content_type=_STR,
        routing_key=_STR,
        headers={"type": "object"},
        body=_STR,
        body_base64=_STR,
    )
    listed = _op(
        "intake.get_quarantine",
        "The department's own quarantined events, oldest first: the reason, the whole detail, the bytes.",
        {
            "200": _json(
                "One page; ask for the next with after=<the last id>.",
                _obj(("department", "entries"), department=_STR, entries={"type": "array", "items": entry}),
            ),
            **_errors(400, 401),
        },
        _query(inputs.QuarantinePage),
    )
    listed["security"] = [{TOKEN: []}]
    paths["/quarantine"] = {"get": listed}
    _intake_asyncapi(paths, "intake")


def _departments(paths, schemas, tenant, registry) -> None:
    department = _path("department", "An enabled department.", {"type": "string", "enum": list(tenant.departments)})
    paths["/departments/{department}/work-orders"] = {
        "get": _op(
            "departments.list",
            "The department's open work orders, oldest first.",
            {
                "200": _json(
                    "One page of the queue.",
                    _obj(
                        ("department", "total", "offset", "work_orders"),
                        department=_STR,
                        total=_INT,
                        offset=_INT,
                        work_orders={"type": "array", "items": _ref("WorkOrder")},
                    ),
                ),
                **_errors(400, 401, 403, 404),
            },
            [department, *_query(inputs.Page)],
            secured=tenant,
        )
    }
    paths["/departments/{department}/work-orders/{work_order_id}/{action}"] = {
        "post": _op(
            "departments.act",
            "Accept, return, resolve, or ask for more time (extension) on one work order.",
            {
                "200": _json(
                    "Done.",
                    _obj(
                        ("work_order", "case_status"),
                        work_order=_ref("WorkOrder"),
                        case_status={"type": "string", "enum": list(CASE_STATES)},
                    ),
                ),
                **_errors(400, 401, 403, 404, 409),
            },
            [
                department,
                _path("work_order_id", "A work order of the department."),
                _path("action", "What to do.", {"type": "string", "enum": list(inputs.WORK_ORDER_ACTIONS)}),
            ],
            {ce.JSON: {"schema": _body(inputs.ActionRequest)}},
            secured=tenant,
        )
    }
    paths["/cases/{case_id}"] = {"get": _case_get("departments")}


def _case_get(service: str) -> dict:
    return _op(
        f"{service}.get_case",
        "A case with its work orders and its timeline.",
        {"200": _json("The case.", _ref("CaseRecord")), **_errors(404)},
        [_path("case_id", "A case id.")],
    )


def _supervision(paths, schemas, tenant, registry) -> None:
    case_id = _path("case_id", "A case id.")
    paths["/cases"] = {
        "get": _op(
            "supervision.list_cases",
            "Cases matching every filter given, newest first.",
            {
                "200": _json(
                    "One page.",
                    _obj(
                        ("total", "offset", "limit", "cases"),
                        total=_INT,
                        offset=_INT,
                        limit=_INT,
                        cases={"type": "array", "items": _ref("Case")},
                    ),
                ),
                **_errors(400),
            },
            _ladder_levels(_query(inputs.Query), tenant),
        )
    }
    paths["/cases/{case_id}"] = {"get": _case_get("supervision")}
    done = _json("Done: the case as it is now.", _obj(("case",), case=_ref("Case")))
    finding = _obj(
        ("index", "kind", "detail"),
        index=_INT,
        kind={"type": "string", "enum": ["changed", "removed", "inserted", "reordered", "rewritten"]},
        detail=_STR,
    )
    paths["/cases/{case_id}/timeline/verify"] = {
        "get": _op(
            "supervision.verify_timeline",
            "Prove the case's hash-chained timeline untouched, or show the first entry altered and how: "
            "against the head on the case record and every head the bus carried for it (read from the "
            "county's history.lifecycle stream). For the supervisor and the auditor.",
            {
                "200": _json(
                    "The verdict.",
                    _obj(
                        ("tenant", "case_id", "intact", "entries", "head", "recorded_head", "published_heads_checked"),
                        tenant=_STR,
                        case_id=_STR,
                        intact={"type": "boolean"},
                        entries=_INT,
                        head={"type": "string", "pattern": HEAD_PATTERN},
                        recorded_head={"type": ["string", "null"]},
                        published_heads_checked={"type": "array", "items": _STR},
                        finding=finding,
                        history={
                            **_obj(
                                ("stream", "since", "heads"),
                                stream=_STR,
                                since={"type": ["string", "null"], "format": "date-time"},
                                heads=_INT,
                                unavailable=_STR,
                            ),
                            "type": ["object", "null"],
                            "description": "The heads the bus carried for the case, read from the county's "
                            "history.lifecycle stream from its registration on (null when not read).",
                        },
                    ),
                ),
                **_errors(400, 404),
            },
            [
                case_id,
                {
                    "name": "head",
                    "in": "query",
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "array", "items": {"type": "string", "pattern": HEAD_PATTERN}},
                    "description": "A chain head a lifecycle event carried (ce-chainhead): <entries>:<sha256 hex>. "
                    "Repeatable; checked beside the heads read from the county's history stream.",
                },
            ],
        )
    }
    paths["/cases/{case_id}/whistle"] = {
        "post": _op(
            "supervision.whistle",
            "Escalate by hand to a higher level and/or add departments (joint dispatch).",
            {"200": done, **_errors(400, 404, 409)},
            [case_id],
            {ce.JSON: {"schema": _ladder_levels(_body(inputs.Whistle, False, signed_in=("actor",)), tenant)}},
        )
    }
    _duplicates(paths, case_id)
    _escalations(paths, tenant)
    paths["/cases/{case_id}/check-in"] = {
        "post": _op(
            "supervision.check_in",
            "The grid worker of the case's grid is on site (time and place), against the arrival deadline "
            "(the manifest's lifecycle.arrival, 10 minutes by default): recorded on the timeline, late or not.",
            {"200": done, **_errors(400, 404, 409)},
            [case_id],
            {ce.JSON: {"schema": _body(inputs.CheckIn, False, signed_in=("actor",))}},
        )
    }
    paths["/cases/{case_id}/{action}"] = {
        "post": _op(
            "supervision.act",
            "Verify on site, record the citizen's word, reject, or close not fixed.",
            {"200": done, **_errors(400, 404, 409)},
            [case_id, _path("action", "What to do.", {"type": "string", "enum": list(inputs.CASE_ACTIONS)})],
            {ce.JSON: {"schema": _body(inputs.CaseAction, False, signed_in=("actor",))}},
        )
    }
    paths["/audit"] = {
        "get": _op(
            "supervision.audit",
            "The county's audit trail (refusals, reads of personal data), oldest first: for the auditor.",
            {
                "200": _json(
                    "Entries.",
                    _obj(
                        ("entries",),
                        entries={
                            "type": "array",
                            "items": _obj(
                                ("id", "at", "subject", "role", "action", "target", "outcome", "reason"),
                                id=_STR,
                                at=_STR,
                                subject=_STR,
                                role=_STR,
                                action=_STR,
                                target=_STR,
                                outcome={"type": "string", "enum": ["refused", "unauthenticated", "read"]},
                                reason=_STR,
                            ),
                        },
                    ),
                ),
                **_errors(400),
            },
            [
                {
                    "name": "after",
                    "in": "query",
                    "schema": {"type": "string", "pattern": "^(-|[0-9]{1,19}-[0-9]{1,19})$"},
                    "description": "An entry id: the entries after it.",
                },
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                {"name": "subject", "in": "query", "schema": _STR},
                {"name": "outcome", "in": "query", "schema": _STR},
            ],
        )
    }
    if tenant.identity is None:  # the embedded issuer's discovery
        paths["/.well-known/openid-configuration"] = {
            "get": _op(
                "supervision.openid_configuration",
                "The county's embedded issuer: OpenID Connect discovery.",
                {"200": _json("The configuration.", _obj(("issuer", "jwks_uri"), issuer=_STR, jwks_uri=_STR))},
            )
        }
        paths["/.well-known/jwks.json"] = {
            "get": _op(
                "supervision.jwks",
                "The embedded issuer's public keys (the current one and those still verifying).",
                {"200": _json("A JWK Set.", _obj(("keys",), keys={"type": "array", "items": {"type": "object"}}))},
            )
        }
    paths["/work-orders/{work_order_id}/extension/{decision}"] = {
        "post": _op(
            "supervision.decide_extension",
            "Grant or deny a department's request for more time.",
            {
                "200": _json("Decided.", _obj(("work_order", "case"), work_order=_ref("WorkOrder"), case=_ref("Case"))),
                **_errors(400, 404, 409),
            },
            [
                _path("work_order_id", "A work order id."),
                _path("decision", "grant or deny.", {"type": "string", "enum": ["grant", "deny"]}),
            ],
            {ce.JSON: {"schema": _body(inputs.ExtensionDecision, False, signed_in=("actor",))}},
        )
    }


def _duplicates(paths, case_id: dict) -> None:
    """The command centre's duplicates desk (onegrid/app/duplicates.py)."""
    score = {"type": ["number", "null"]}
    match = _obj(
        ("confidence", "text", "place", "time", "distance_m", "same_grid"),
        confidence=_NUM,
        text=_NUM,
        place=_NUM,
        time=_NUM,
        distance_m=score,
        same_grid={"type": "boolean"},
    )
    suggestion = _obj(
        ("case_id", "primary_id", "match", "status"),
        case_id=_STR,
        primary_id=_STR,
        match=match,
        status={"type": "string", "enum": list(SUGGESTION_STATES)},
        at=_STR,
        decided_by=_STR,
        decided_at=_STR,
        note=_STR,
    )
    counts = {"type": "object", "additionalProperties": _INT}
    brief = {"type": "object", "description": "The case's id, status, category, grid, summary, location."}
    paths["/duplicates"] = {
        "get": _op(
            "supervision.list_duplicates",
            "Likely duplicates routing did not merge on its own, oldest first, with the counts "
            "(auto_merged, suggested, confirmed, dismissed, unmerged, open).",
            {
                "200": _json(
                    "One page of open suggestions.",
                    _obj(
                        ("total", "offset", "limit", "suggestions", "counts"),
                        total=_INT,
                        offset=_INT,
                        limit=_INT,
                        suggestions={
                            "type": "array",
                            "items": {
                                **suggestion,
                                "properties": {**suggestion["properties"], "case": brief, "primary": brief},
                            },
                        },
                        counts=counts,
                    ),
                ),
                **_errors(400),
            },
            _query(inputs.Page),
        )
    }
    paths["/cases/{case_id}/duplicate/{decision}"] = {
        "post": _op(
            "supervision.duplicate",
            "confirm: merge the case into its suggested primary; dismiss: the two are distinct; "
            "unmerge: a merged case becomes its own again. The first decision stands; asking again answers it.",
            {
                "200": _json(
                    "Decided: the case as it is now (and the suggestion, or whether this call un-merged it).",
                    _obj(
                        ("case",),
                        case={"type": ["object", "null"]},
                        suggestion=suggestion,
                        unmerged={"type": "boolean"},
                    ),
                ),
                **_errors(400, 404, 409),
            },
            [
                case_id,
                _path("decision", "What to do.", {"type": "string", "enum": list(inputs.DUPLICATE_DECISIONS)}),
            ],
            {ce.JSON: {"schema": _body(inputs.DuplicateDecision, False, signed_in=("actor",))}},
        )
    }


def _escalations(paths, tenant) -> None:
    """The offices' escalation items (督办单, onegrid/domain/ladder.py)."""
    item = _obj(
        ("id", "case_id", "level", "unit", "office", "from_level", "reason", "status", "opened_at", "due"),
        id={"type": "string", "pattern": "^e-[0-9a-f]{16}-[a-z][a-z0-9_]{1,30}$"},
        case_id=_STR,
        level={"type": "string", "enum": list(tenant.levels)},
        unit=_STR,
        office=_STR,
        from_level=_STR,
        reason=_STR,
        status={"type": "string", "enum": list(ITEM_STATES)},
        opened_at=_STR,
        due={
            **_NUM,
            "description": "Epoch seconds: the acknowledge deadline while open, the act deadline once acknowledged.",
        },
        acknowledged_by=_STR,
        acknowledged_at=_STR,
        acted_by=_STR,
        acted_at=_STR,
        action=_STR,
        fired=_NUM,
        case={"type": "object", "description": "The case's grid, category, severity, summary, status and level."},
    )
    unit = {
        "name": "unit",
        "in": "query",
        "required": False,
        "description": "A node of the grid tree whose office's items to list (default: a street or community "
        "officer's own scope, the root for the command centre).",
        "schema": {"type": "string", "minLength": 1, "maxLength": 80},
    }
    paths["/escalations"] = {
        "get": _op(
            "supervision.list_escalations",
            "An office's escalation items still owed (open or acknowledged), oldest first.",
            {
                "200": _json(
                    "One page of the office's queue.",
                    _obj(
                        ("unit", "level", "office", "total", "items"),
                        unit=_STR,
                        level=_STR,
                        office=_STR,
                        total=_INT,
                        items={"type": "array", "items": item},
                    ),
                ),
                **_errors(400, 404),
            },
            [unit, *_query(inputs.Page)],
        )
    }
    paths["/escalations/{item_id}/{decision}"] = {
        "post": _op(
            "supervision.escalation",
            "The office acknowledges its item, or acts on it as the signed-in person: take_over, whistle "
            "(departments), extend (grant the work order's requested extension), close_not_fixed (note).",
            {
                "200": _json(
                    "Done: the case and the item as they are now.", _obj(("case", "item"), case=_ref("Case"), item=item)
                ),
                **_errors(400, 404, 409),
            },
            [
                _path("item_id", "The escalation item's id.", {"type": "string", "minLength": 1, "maxLength": 120}),
                _path("decision", "What the office does.", {"type": "string", "enum": list(inputs.OFFICE_DECISIONS)}),
            ],
            {ce.JSON: {"schema": _body(inputs.OfficeAction, False, signed_in=("actor",))}},
        )
    }


def _scoring(paths, schemas, tenant, registry) -> None:
    month = {
        "name": "month",
        "in": "query",
        "required": False,
        "description": "YYYY-MM (default: this month).",
        "schema": {"type": "string", "pattern": inputs.MONTH.regex.pattern},
    }
    rank = _obj(("rank", "name", "score"), rank=_INT, name=_STR, score=_NUM)
    ranks = {"type": "array", "items": rank}
    rate = {"type": ["number", "null"]}
    schemas["Assessment"] = {
        "type": "object",
        "additionalProperties": _obj(
            ("score",), score=rate, closure_rate=rate, on_time_rate=rate, satisfaction_rate=rate, received=_INT
        ),
    }
    bad = _errors(400)
    paths["/scoring/rankings"] = {
        "get": _op(
            "scoring.rankings",
            "每月排序通报: the month's rankings.",
            {
                "200": _json(
                    "Grid workers, grids, communities and departments, best first.",
                    _obj(
                        ("tenant", "month", "workers", "grids", "communities", "departments"),
                        tenant=_STR,
                        month=_STR,
                        workers=ranks,
                        grids=ranks,
                        communities=ranks,
                        departments=ranks,
                    ),
                ),
                **bad,
            },
            [
                month,
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "description": "Rows per table (1 to 1000).",
                    "schema": {"type": "integer", "default": 10},
                },
            ],
        )
    }
    paths["/scoring/assessment"] = {
        "get": _op(
            "scoring.assessment",
            "Every department's assessment for a period.",
            {
                "200": _json(
                    "Rates and the score per department.",
                    _obj(
                        ("tenant", "period", "key", "departments"),
                        tenant=_STR,
                        period={"enum": list(inputs.PERIODS)},
                        key=_STR,
                        departments=_ref("Assessment"),
                    ),
                ),
                **bad,
            },
            [
                {
                    "name": "period",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(inputs.PERIODS), "default": "month"},
                },
                {
                    "name": "key",
                    "in": "query",
                    "required": False,
                    "description": "The month (YYYY-MM) or ISO week (YYYY-Www) of the period; default: now.",
                    "schema": {
                        "type": "string",
                        "anyOf": [{"pattern": p.regex.pattern} for p in inputs.PERIODS.values()],
                    },
                },
            ],
        )
    }
    paths["/scoring/risk"] = {
        "get": _op(
            "scoring.risk",
            "The five-colour risk of every grid.",
            {
                "200": _json(
                    "Counts per colour and each grid's colour and score.",
                    _obj(
                        ("tenant", "counts", "grids"),
                        tenant=_STR,
                        counts=_obj(COLOURS, **{c: _INT for c in COLOURS}),
                        grids={
                            "type": "object",
                            "additionalProperties": _obj(
                                ("colour", "score"),
                                colour={"enum": list(COLOURS)},
                                score=_NUM,
                                label={
                                    **_obj(
                                        ("colour", "by", "case_id"),
                                        colour={"enum": list(COLOURS)},
                                        by=_STR,
                                        case_id=_STR,
                                    ),
                                    "description": "The worst risk_colour label reported on an unresolved case "
                                    "of the grid (who said so, on which case): the floor under its colour.",
                                },
                            ),
                        },
                    ),
                )
            },
        )
    }
    paths["/scoring/workers/{worker}"] = {
        "get": _op(
            "scoring.worker",
            "A grid worker's points for a month.",
            {
                "200": _json(
                    "Points by rule, adjustments and the total.",
                    _obj(
                        ("worker", "month", "rules", "adjusted", "points", "adjustments"),
                        worker=_STR,
                        month=_STR,
                        rules={"type": "object", "additionalProperties": _INT},
                        adjusted=_INT,
                        points=_INT,
                        adjustments={"type": "array", "items": _ref("AdjustmentEntry")},
                    ),
                ),
                **bad,
            },
            [_path("worker", "The grid worker."), month],
        )
    }
    entries = {"type": "array", "items": _ref("AdjustmentEntry")}
    adjusted = _obj(("created", "adjustment"), created={"type": "boolean"}, adjustment=_ref("AdjustmentEntry"))
    paths["/scoring/adjustments"] = {
        "get": _op(
            "scoring.audit",
            "The audit trail of adjustments.",
            {"200": _json("Oldest first.", entries), **bad},
            [month, {"name": "worker", "in": "query", "required": False, "schema": _STR}],
        ),
        "post": _op(
            "scoring.adjust",
            "An inspector adds or deducts points, with a reason (idempotent on id).",
            {
                "201": _json("Recorded.", adjusted),
                "200": _json("Recorded before, under this id: unchanged.", adjusted),
                **bad,
            },
            request={ce.JSON: {"schema": _adjustment_body()}},
        ),
    }
    _reports(paths, schemas)


def _reports(paths, schemas) -> None:
    """scoring's monthly report: JSON, and its files (CSV, XLSX, the bulletin's HTML)."""
    from onegrid.adapters import reports as files  # the file names and media types served

    rate = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    count = {"type": "integer", "minimum": 0}
    closure_row = _obj(
        ("category", "name", "reported", "merged", "rejected", "problems", "solved", "not_fixed", "open", "on_time")
        + ("on_site",),
        category=_STR,
        name=_STR,
        closure_rate=rate,
        on_time_rate=rate,
        **{
            k: count
            for k in ("reported", "merged", "rejected", "problems", "solved", "not_fixed", "open", "on_time", "on_site")
        },
    )
    ranked = _obj(("rank", "code", "name", "where", "points"), rank=_INT, code=_STR, name=_STR, where=_STR, points=_INT)
    schemas["MonthlyReport"] = _obj(
        ("tenant", "month", "scope", "generated_at", "closure", "closure_total", "departments", "workers", "grids")
        + ("communities", "colours", "watched"),
        tenant=_STR,
        tenant_name=_STR,
        month=_STR,
        scope={**_STR, "description": "The node of the grid tree reported on."},
        scope_name=_STR,
        scope_level=_STR,
        generated_at={**_STR, "description": "UTC: a month's figures fill in as its cases close."},
        timezone=_STR,
        closure={"type": "array", "items": closure_row, "description": "By category, most problems first."},
        closure_total=closure_row,
        departments={
            "type": "array",
            "items": _obj(
                ("department", "name", "received", "score"),
                rank={"type": ["integer", "null"]},
                department=_STR,
                name=_STR,
                received=count,
                closure_rate=rate,
                on_time_rate=rate,
                satisfaction_rate=rate,
                score={"type": ["number", "null"]},
            ),
        },
        workers={"type": "array", "items": ranked},
        grids={"type": "array", "items": ranked},
        communities={"type": "array", "items": ranked},
        colours={
            "type": "array",
            "items": _obj(("colour", "name", "grids"), colour={"enum": list(COLOURS)}, name=_STR, grids=count),
        },
        watched={"type": "array", "items": _obj(("grid", "colour"), grid=_STR, colour={"enum": ["red", "orange"]})},
    )
    month = _path(
        "month",
        "The month, YYYY-MM from 1970-01: the cases registered in it (docs/reports.md).",
        {"type": "string", "pattern": inputs.REPORT_MONTH.regex.pattern},
    )
    scope = {
        "name": "scope",
        "in": "query",
        "required": False,
        "description": "A node of the grid tree (default: the county; a street or community officer's own part). "
        "Unknown: 400; outside the person's part: 403.",
        "schema": {"type": "string", "pattern": r"^[0-9]{6}(-[0-9]{3}){0,3}$"},
    }
    paths["/reports/{month}"] = {
        "get": _op(
            "scoring.report",
            "月度通报: the month's closure table by category, department assessment, rankings and five colours.",
            {"200": _json("The report.", _ref("MonthlyReport")), **_errors(400, 404)},
            [month, scope],
        )
    }
    download = {
        "Content-Disposition": {
            "schema": _STR,
            "description": "attachment (the bulletin: inline), an ASCII filename and the Chinese one as "
            "filename* (RFC 6266, RFC 5987).",
        }
    }
    paths["/reports/{month}/{file}"] = {
        "get": _op(
            "scoring.report_file",
            "One table of the month's report as CSV (UTF-8 with a BOM) or XLSX, the whole report as one "
            "workbook (report.xlsx, a sheet per table), or the bulletin (通报) as a printable A4 HTML page.",
            {
                "200": {
                    "description": "The file: `<table>.csv`, `<table>.xlsx`, `report.xlsx` or `bulletin.html`.",
                    "headers": download,
                    "content": {
                        "text/csv": {"schema": _STR},
                        files.XLSX: {"schema": {"type": "string", "contentMediaType": files.XLSX}},
                        "text/html": {"schema": _STR},
                    },
                },
                **_errors(400, 404),
            },
            [
                month,
                _path(
                    "file",
                    f"The tables: {', '.join(TABLES)}.",
                    {"type": "string", "enum": list(files.FILES)},
                ),
                scope,
            ],
        )
    }


def _notify(paths, schemas, tenant, registry) -> None:
    paths["/notify/stats"] = {
        "get": _op(
            "notify.stats",
            "The outbox: pending, sent, retried, parked.",
            {
                "200": _json(
                    "Counters by outcome and channel.",
                    {**_obj(("tenant", "pending"), tenant=_STR, pending=_INT), "additionalProperties": _INT},
                )
            },
        )
    }
    paths["/notify/parked"] = {
        "get": _op(
            "notify.parked",
            "Notifications parked after their last attempt.",
            {
                "200": _json(
                    "Oldest first.",
                    {
                        "type": "array",
                        "items": _obj(
                            ("id", "kind", "channel", "reason"), id=_STR, kind=_STR, channel=_STR, reason=_STR
                        ),
                    },
                ),
                **_errors(400),
            },
            _query(inputs.Parked),
        )
    }

    paths["/notify/replies"] = {
        "get": _op(
            "notify.replies",
            "The citizens' SMS replies, newest first, with their numbers (a read is audited; masked for an auditor).",
            {
                "200": _json(
                    "Each reply and what became of it.",
                    _obj(
                        ("replies",),
                        replies={
                            "type": "array",
                            "items": _obj(
                                ("id", "message_id", "from", "text", "outcome", "reason"),
                                **dict.fromkeys(("id", "message_id", "from", "text", "received_at"), _STR),
                                outcome={"enum": ["matched", "ambiguous", "unmatched"]},
                                reason=_STR,
                                case_id=_STR,
                                verdict=_STR,
                            ),
                        },
                    ),
                ),
                **_errors(400),
            },
            _query(inputs.Replies),
        )
    }
    reply = _body(inputs.SmsReply)
    reply["properties"]["from"] = reply["properties"].pop("from_")
    reply["required"] = ["from" if n == "from_" else n for n in reply["required"]]
    pushed = _op(
        "notify.sms_reply",
        "The SMS gateway pushes a reply it received (上行短信); OneGrid's shape, or Aliyun SmsUp's names "
        "(sequence_id, phone_number, content, send_time, sign_name). 200 with the outcome; a retry of the same "
        "message_id gets the same outcome.",
        {
            "200": _json(
                "What the reply became: the citizen's verdict on a case, a question back, or kept unmatched.",
                _obj(
                    ("message_id", "outcome", "reason", "case_id", "verdict", "codes", "replayed"),
                    message_id=_STR,
                    outcome={"enum": ["matched", "ambiguous", "unmatched"]},
                    reason=_STR,
                    case_id=_STR,
                    verdict=_STR,
                    codes={"type": "array", "items": _STR},
                    replayed={"type": "boolean"},
                ),
            ),
            "401": _json(
                "Unsigned, stale or badly signed; or the county receives no replies (no inbound secret).",
                _refusal("invalid_signature", "not_configured"),
                headers={"WWW-Authenticate": {"schema": _STR, "description": 'OneGrid-HMAC-SHA256 realm="onegrid"'}},
            ),
            "503": _json("Another process is handling the same message_id now: try again.", _ref("Message")),
            **_errors(400),
        },
        request={ce.JSON: {"schema": reply}},
    )
    pushed["security"] = [{SIGNED: []}]
    paths["/notify/sms/replies"] = {"post": pushed}


def _console(paths, schemas, tenant, registry) -> None:
    """The page's data, fetched by its map; the pages themselves (HTML, forms with a CSRF
    token, a session cookie) are a browser's surface, described in docs/console.md, not API
    operations: they are not in this document, and the browser test drives them."""
    point = {"type": ["number", "null"]}
    marker = _obj(
        ("id", "status", "category", "grid", "summary", "overdue", "lat", "lon"),
        id=_STR,
        status={"enum": list(CASE_STATES)},
        category=_STR,
        grid=_STR,
        summary=_STR,
        overdue={"type": "boolean"},
        lat=point,
        lon=point,
    )
    paths["/console/map/grids.geojson"] = {
        "get": _op(
            "console.grids",
            "The county's grids as GeoJSON (WGS84 lon/lat), each with its five-colour risk.",
            {
                "200": {
                    "description": "A FeatureCollection; `crs_stated` says where the boundaries come from.",
                    "content": {
                        "application/geo+json": {
                            "schema": _obj(
                                ("type", "features"),
                                type={"const": "FeatureCollection"},
                                crs_stated=_STR,
                                features={
                                    "type": "array",
                                    "items": _obj(
                                        ("type", "id", "properties", "geometry"),
                                        type={"const": "Feature"},
                                        id=_STR,
                                        properties=_obj(
                                            ("code", "name", "colour"),
                                            code=_STR,
                                            name=_STR,
                                            colour={"enum": list(COLOURS)},
                                            label_colour={"enum": list(COLOURS)},
                                            label_by={**_STR, "description": "Who reported the label."},
                                        ),
                                        geometry={"type": "object"},
                                    ),
                                },
                            )
                        }
                    },
                }
            },
        )
    }
    paths["/console/map/cases.json"] = {
        "get": _op(
            "console.cases",
            "The open cases in the signed-in person's part of the county, for the map's markers.",
            {
                "200": _json(
                    "Open cases; lat/lon null where the report had no point.",
                    _obj(("cases",), cases={"type": "array", "items": marker}),
                )
            },
        )
    }


# -- the Open311 door ---------------------------------------------------------------------------

_XML = "text/xml"
_O311_ERRORS = {
    "type": "array",
    "minItems": 1,
    "items": _obj(("code", "description"), closed=True, code=_INT, description=_STR),
}
_NULLABLE_STR = {"type": ["string", "null"]}
_O311_REQUEST = _obj(
    ("service_request_id", "status", "service_code", "requested_datetime"),
    service_request_id=_STR,
    status={"type": "string", "enum": ["open", "closed"]},
    status_notes=_NULLABLE_STR,
    service_name=_NULLABLE_STR,
    service_code=_STR,
    description=_NULLABLE_STR,
    agency_responsible=_NULLABLE_STR,
    service_notice=_NULLABLE_STR,
    requested_datetime=_STR,
    updated_datetime=_NULLABLE_STR,
    expected_datetime=_NULLABLE_STR,
    address=_NULLABLE_STR,
    address_id=_NULLABLE_STR,
    zipcode=_NULLABLE_STR,
    lat={"type": ["number", "null"]},
    long={"type": ["number", "null"]},
    media_url=_NULLABLE_STR,
)
_FMT = _path("fmt", "The answer's format: json or xml (the spec's required one).", {"enum": ["json", "xml"]})
_JURISDICTION = {
    "name": "jurisdiction_id",
    "in": "query",
    "required": False,
    "description": "Optional: this county's tenant id; another is 404.",
    "schema": _STR,
}


def _o311(description: str, schema: dict) -> dict:
    """An answer in JSON or the spec's XML (the same content, as elements)."""
    return {"description": description, "content": {ce.JSON: {"schema": schema}, _XML: {"schema": _STR}}}


def _o311_errors(*codes: int) -> dict:
    why = {
        400: "Invalid: the spec's error array says what (a missing or unknown field, a point outside the county).",
        401: "No api_key (the form field, or Authorization: Bearer <api_key>).",
        403: "The api_key is unknown or revoked.",
        404: "No such service, request, token, format or jurisdiction.",
        429: "The client application sends faster than the county's rate_per_department: wait Retry-After.",
        503: "The bus is busy (a broker alarm): try again after Retry-After.",
    }
    out = {str(c): _o311(why[c], _O311_ERRORS) for c in codes}
    if "401" in out:
        out["401"]["headers"] = {"WWW-Authenticate": {"schema": _STR, "description": 'Bearer realm="open311"'}}
    for code in ("429", "503"):
        if code in out:
            out[code]["headers"] = {"Retry-After": {"schema": _STR, "description": "seconds"}}
    return out


def _open311(paths, schemas, tenant, registry) -> None:
    base = "/open311/v2"
    codes = sorted(registry.categories)
    service = _obj(
        ("service_code", "service_name", "metadata", "type"),
        service_code={"type": "string", "enum": codes},
        service_name=_STR,
        description=_STR,
        metadata={"type": "boolean"},
        type={"type": "string", "enum": ["realtime", "batch", "blackbox"]},
        keywords=_STR,
        group=_STR,
    )
    value = _obj(("key", "name"), key=_STR, name=_STR)
    attribute = {  # built by hand: one of its properties is called `required`
        "type": "object",
        "required": ["code", "datatype", "required"],
        "properties": {
            "variable": {"type": "boolean"},
            "code": _STR,
            "datatype": {"type": "string", "enum": ["string", "number", "datetime", "text", "singlevaluelist"]},
            "required": {"type": "boolean"},
            "datatype_description": _NULLABLE_STR,
            "order": _INT,
            "description": _STR,
            "values": {"type": "array", "items": value},
        },
    }
    list_of = {"type": "array"}
    paths[f"{base}/services.{{fmt}}"] = {
        "get": _op(
            "open311.services",
            "The county's case categories as Open311 services (public).",
            {"200": _o311("Every service.", {**list_of, "items": service}), **_o311_errors(404)},
            [_FMT, _JURISDICTION],
        )
    }
    paths[f"{base}/services/{{service_code}}.{{fmt}}"] = {
        "get": _op(
            "open311.service_definition",
            "A service's attributes: severity and callback_required, both optional (public).",
            {
                "200": _o311(
                    "The definition.",
                    _obj(("service_code", "attributes"), service_code=_STR, attributes={**list_of, "items": attribute}),
                ),
                **_o311_errors(404),
            },
            [_path("service_code", "A service_code of GET services."), _FMT, _JURISDICTION],
        )
    }
    form = _obj(
        ("service_code",),
        service_code={"type": "string", "description": "A service_code of GET services."},
        api_key={"type": "string", "description": "The client application's key (or Authorization: Bearer)."},
        lat={"type": "number", "minimum": -90, "maximum": 90, "description": "WGS84; with long."},
        long={"type": "number", "minimum": -180, "maximum": 180, "description": "WGS84; with lat."},
        address_string={
            "type": "string",
            "maxLength": 250,
            "description": "Without lat and long: must name a street, community or grid of the county.",
        },
        description={"type": "string", "maxLength": 480},
        media_url={"type": "string", "format": "uri", "maxLength": 500},
        phone={"type": "string", "pattern": "^1[3-9][0-9]{9}$", "description": "Kept, to call the citizen back."},
        email={"type": "string", "description": "Not kept."},
        first_name={"type": "string", "description": "Not kept."},
        last_name={"type": "string", "description": "Not kept."},
        device_id=_STR,
        account_id=_STR,
        **{
            "attribute[severity]": {"type": "string", "enum": ["minor", "general", "major", "critical"]},
            "attribute[callback_required]": {"type": "string", "enum": ["yes", "no"]},
        },
    )
    created = _obj((), service_request_id=_STR, token=_STR, service_notice=_NULLABLE_STR, account_id=_NULLABLE_STR)
    paths[f"{base}/requests.{{fmt}}"] = {
        "post": _op(
            "open311.post_request",
            "A citizen's request (form-encoded, with the client's api_key): published as "
            "governance.open311_request_received into intake, which places it in its grid and makes it a case.",
            {
                "201": _o311(
                    "The request id (the case's), or a token when intake has not registered it yet.",
                    {**list_of, "minItems": 1, "maxItems": 1, "items": created},
                ),
                **_o311_errors(400, 401, 403, 404, 429, 503),
            },
            [_FMT, _JURISDICTION],
            {"application/x-www-form-urlencoded": {"schema": form}},
        ),
        "get": _op(
            "open311.requests",
            "The requests taken through this door (public; no reporter data): the last 90 days unless dated.",
            {"200": _o311("Newest first.", {**list_of, "items": _O311_REQUEST}), **_o311_errors(400, 404)},
            [
                _FMT,
                _JURISDICTION,
                {
                    "name": "service_request_id",
                    "in": "query",
                    "required": False,
                    "schema": _STR,
                    "description": "Comma-separated ids (at most 100); overrides the other filters.",
                },
                {
                    "name": "service_code",
                    "in": "query",
                    "required": False,
                    "schema": _STR,
                    "description": "Comma-separated service codes.",
                },
                {
                    "name": "start_date",
                    "in": "query",
                    "required": False,
                    "schema": _STR,
                    "description": "w3 datetime with its zone.",
                },
                {
                    "name": "end_date",
                    "in": "query",
                    "required": False,
                    "schema": _STR,
                    "description": "w3 datetime with its zone; at most 90 days after start_date.",
                },
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": _STR,
                    "description": "open, closed, or open,closed.",
                },
            ],
        ),
    }
    paths[f"{base}/requests/{{request_id}}.{{fmt}}"] = {
        "get": _op(
            "open311.request",
            "One request taken through this door (public; no reporter data).",
            {
                "200": _o311("The request.", {**list_of, "minItems": 1, "maxItems": 1, "items": _O311_REQUEST}),
                **_o311_errors(404),
            },
            [_path("request_id", "The service_request_id POST requests or GET tokens gave."), _FMT, _JURISDICTION],
        )
    }
    paths[f"{base}/tokens/{{token}}.{{fmt}}"] = {
        "get": _op(
            "open311.token",
            "The service_request_id a token became (null while intake has not registered it).",
            {
                "200": _o311(
                    "The token and its request id.",
                    {
                        **list_of,
                        "minItems": 1,
                        "maxItems": 1,
                        "items": _obj(("token",), token=_STR, service_request_id=_NULLABLE_STR),
                    },
                ),
                **_o311_errors(404),
            },
            [_path("token", "The token POST requests gave."), _FMT, _JURISDICTION],
        )
    }


def _registry(paths, schemas, tenant, registry) -> None:
    keys = sorted({c.key for c in asyncapi.enabled_contracts(tenant, registry)})
    key = _path("key", "An event type of the county: `<department>.<type>`.", {"type": "string", "enum": keys})
    version = _path("version", "A version of the event type.", {"type": "integer", "minimum": 0})
    spec = {"type": "object", "description": "A field spec (docs/contracts.md, Field types).", "required": ["type"]}
    schemas["ProposedVersion"] = _obj(
        ("summary", "fields"),
        True,
        type={"type": "string", "description": "The event type; the path's when omitted."},
        version={"type": "integer", "minimum": 1, "description": "The next version when omitted."},
        summary={"type": "string", "minLength": 1},
        category={"type": "string", "description": "A fixed category (or declare a `category` enum field)."},
        fields={"type": "object", "minProperties": 1, "additionalProperties": spec},
        compatibility={"type": "string", "enum": list(compat.MODES)},
    )
    change = _obj(
        ("outcome", "revision"),
        outcome={"enum": ["published", "unchanged", "retired"]},
        revision=_INT,
        key=_STR,
        version=_INT,
        tenant=_STR,
    )
    versions = {
        "type": "array",
        "items": _obj(("version", "summary", "released"), version=_INT, summary=_STR, released={"type": "boolean"}),
    }
    listed = _obj(("key", "department", "type", "versions", "retired"), key=_STR, department=_STR, type=_STR)
    listed["properties"].update(versions=versions, retired={"type": "array", "items": _INT})
    paths["/contracts"] = {
        "get": _op(
            "registry.list",
            "The county's event types with their versions (released in the image's lock, published, retired).",
            {
                "200": _json(
                    "Every event type of the enabled departments.",
                    _obj(
                        ("tenant", "revision", "contracts"),
                        tenant=_STR,
                        revision=_INT,
                        contracts={"type": "array", "items": listed},
                    ),
                )
            },
        )
    }
    paths["/contracts/{key}/versions/{version}"] = {
        "get": _op(
            "registry.version",
            "One version: its definition and its data as a JSON Schema (draft-07).",
            {
                "200": _json(
                    "The version.",
                    _obj(
                        ("key", "version", "summary", "compatibility", "dataschema", "fields", "schema"),
                        key=_STR,
                        version=_INT,
                        summary=_STR,
                        category={"type": ["string", "null"]},
                        compatibility=_STR,
                        dataschema=_STR,
                        fields={"type": "object"},
                        schema={"type": "object"},
                    ),
                ),
                **_errors(404),
            },
            [key, version],
        )
    }
    paths["/contracts/{key}/usage"] = {
        "get": _op(
            "registry.usage",
            "How many events of each version each department sent (accepted by intake), and when last.",
            {
                "200": _json(
                    "Per version and department.",
                    _obj(
                        ("key", "recent_use_days", "uses"),
                        key=_STR,
                        recent_use_days=_INT,
                        uses={
                            "type": "array",
                            "items": _obj(
                                ("key", "version", "department", "events", "last_seen"),
                                key=_STR,
                                version=_INT,
                                department=_STR,
                                events=_INT,
                                last_seen=_NUM,
                            ),
                        },
                    ),
                ),
                **_errors(404),
            },
            [key],
        )
    }
    manifest = {"type": "object", "description": "A tenant manifest (docs/contracts.md, Tenant manifests), as JSON."}
    paths["/manifest"] = {
        "get": _op(
            "registry.manifest", "The county's manifest as it applies.", {"200": _json("The manifest.", manifest)}
        ),
        "put": _op(
            "registry.publish_manifest",
            "Publish the county's manifest (a tenant admin): checked like `onegrid contracts check`, stored, "
            "and the services reload it.",
            {"200": _json("Published.", change), **_errors(400)},
            request={ce.JSON: {"schema": _obj(("tenant",), tenant={"const": tenant.id})}},
        ),
    }
    _whatif(paths, schemas, tenant)
    verdict = _obj(
        ("outcome",),
        outcome={"enum": ["valid", "invalid"]},
        type=_STR,
        version=_INT,
        category=_STR,
        grid=_STR,
        reason={"enum": sorted(REASONS)},
        detail=_STR,
    )
    paths["/validate"] = {
        "post": _op(
            "registry.validate",
            "Judge one event as intake would (binary mode: the data with `ce-` headers; or structured), "
            "without recording or publishing it.",
            {"200": _json("Intake's verdict: valid, or the reason and detail it would quarantine it with.", verdict)}
            | _errors(400),
            # any object: what is wrong with it is the answer (a 200 `invalid`), not a refusal
            request={ce.JSON: {"schema": {"type": "object"}}, ce.STRUCTURED: {"schema": {"type": "object"}}},
        )
    }
    paths["/contracts/{key}/compatibility"] = {
        "post": _op(
            "registry.compatibility",
            "A proposed version's compatibility findings against the versions before it, in its mode.",
            {
                "200": _json(
                    "The findings; none: compatible.",
                    _obj(
                        ("key", "version", "mode", "against", "compatible", "findings"),
                        key=_STR,
                        version=_INT,
                        mode=_STR,
                        against={"type": "array", "items": _INT},
                        compatible={"type": "boolean"},
                        findings={
                            "type": "array",
                            "items": _obj(
                                ("direction", "path", "rule", "text", "against"),
                                direction={"enum": ["BACKWARD", "FORWARD"]},
                                path=_STR,
                                rule={"enum": sorted(compat.RULES)},
                                text=_STR,
                                against=_INT,
                            ),
                        },
                    ),
                ),
                **_errors(400, 404),
            },
            [key],
            {ce.JSON: {"schema": _ref("ProposedVersion")}},
        )
    }
    paths["/contracts/{key}/versions"] = {
        "post": _op(
            "registry.publish_version",
            "Publish the next version of an event type (a tenant admin): checked, stored for good, and "
            "the services accept it without a restart.",
            {
                "200": _json("Published (or the same version again: unchanged).", change),
                **_errors(400, 404, 409),
            },
            [key],
            {ce.JSON: {"schema": _ref("ProposedVersion")}},
        )
    }
    paths["/contracts/{key}/versions/{version}/retire"] = {
        "post": _op(
            "registry.retire",
            "Stop accepting a version in this county (a tenant admin); refused (409) while a department "
            "sent it in the recent-use window, or when it is the only version.",
            {"200": _json("Retired (or already).", change), **_errors(404, 409)},
            [key, version],
        )
    }
    _intake_asyncapi(paths, "registry")


def _whatif(paths, schemas, tenant) -> None:
    """POST /whatif/manifest: onegrid.app.whatif.ManifestWhatIf.as_dict."""
    orders = _obj(("department", "level", "work_orders"), True, department=_STR, level=_STR, work_orders=_INT)
    schemas["WhatIfFigures"] = _obj(
        ("cases", "work_orders", "overdue", "overdue_rate", "escalations", "points"),
        True,
        cases=_INT,
        work_orders={"type": "array", "items": orders},
        overdue=_INT,
        overdue_rate={"type": "number", "minimum": 0, "maximum": 1},
        escalations=_INT,
        points={"type": "object", "additionalProperties": _INT, "description": "grid worker -> points"},
    )
    change = {
        "type": "array",
        "items": _obj(
            ("what", "current", "proposed", "delta"), True, what=_STR, current=_NUM, proposed=_NUM, delta=_NUM
        ),
    }
    paths["/whatif/manifest"] = {
        "post": _op(
            "registry.whatif_manifest",
            "A proposed manifest (as PUT /manifest takes it) tried on the last `days` of the county's history "
            "streams, beside the current one: work orders per department and level, overdue rate, escalations, "
            "points per grid worker (`onegrid whatif manifest`). Nothing is published; 409 when the county has "
            "no history streams or this service may not read them.",
            {
                "200": _json(
                    "Both sides' figures; `work_orders` every department and level (biggest change first), "
                    "`points` the `top` grid workers whose points change most.",
                    _obj(
                        ("tenant", "days", "current", "proposed", "summary", "work_orders", "points"),
                        True,
                        tenant=_STR,
                        days=_INT,
                        current=_ref("WhatIfFigures"),
                        proposed=_ref("WhatIfFigures"),
                        summary=change,
                        work_orders=change,
                        points=change,
                    ),
                ),
                **_errors(400, 409),
            },
            _query(inputs.WhatIfQuery),
            {ce.JSON: {"schema": _obj(("tenant",), tenant={"const": tenant.id})}},
        )
    }


def _intake_asyncapi(paths, service: str) -> None:
    paths["/asyncapi.yaml"] = {
        "get": _op(
            f"{service}.asyncapi_yaml",
            "The tenant's AsyncAPI 3 document.",
            {"200": {"description": "AsyncAPI 3.0 as YAML.", "content": {"application/yaml": {"schema": {}}}}},
        )
    }
    paths["/asyncapi.json"] = {
        "get": _op(
            f"{service}.asyncapi_json",
            "The tenant's AsyncAPI 3 document.",
            {"200": _json("AsyncAPI 3.0 as JSON.", _obj(("asyncapi",), asyncapi={"const": asyncapi.ASYNCAPI}))},
        )
    }


_BUILD = {
    "intake": _intake,
    "routing": lambda *_: None,
    "departments": _departments,
    "supervision": _supervision,
    "scoring": _scoring,
    "notify": _notify,
    "open311": _open311,
    "registry": _registry,
    "console": _console,
}
_DESCRIPTION = {
    "intake": "Department systems, the grid workers' app and the 12345 hotline send events to {tenant.name} over "
    "HTTP: each is checked against its contract and becomes a case, or is quarantined with its bytes and "
    "the reason. The same events over AMQP: the AsyncAPI document (GET /asyncapi.yaml).",
    "routing": "Routing works on the bus only; over HTTP it answers its probes.",
    "departments": "A department system works its queue in {tenant.name}: list, accept, return, ask for more "
    "time, resolve. Only with its own token, and only as itself.",
    "supervision": "The command centre of {tenant.name}: case queries, the whistle, verification, the citizen's "
    "word, reject and close, extension decisions.",
    "scoring": "Grid workers' points, department assessment, five-colour risk and monthly rankings of "
    "{tenant.name}; inspectors' adjustments with an audit trail; the monthly report (JSON, CSV, XLSX, "
    "the printable bulletin).",
    "notify": "The notifications outbox of {tenant.name}: counters and what is parked.",
    "open311": "The Open311 GeoReport v2 door of {tenant.name} for citizens' apps and the 12345 system "
    "(docs/open311.md): services, requests, tokens, in JSON or XML; errors are the spec's arrays. Reads are "
    "public; a request takes a client application's api_key.",
    "registry": "The contracts registry of {tenant.name}: event types and their versions as JSON Schema, "
    "the AsyncAPI document, an event or a proposed version checked without touching the bus, usage per "
    "version; a tenant admin publishes versions and the manifest, and retires versions no one sends.",
    "console": "The command-centre page of {tenant.name} (/console: inbox, map, cases; docs/console.md). Its "
    "pages and forms are a browser's, signed in by a session cookie with CSRF tokens, and not listed here; "
    "the map's data is, for a person's token.",
}
