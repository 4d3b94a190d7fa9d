"""One OpenAPI 3.1 document per service and tenant: the service's HTTP surface as it answers.

Request schemas are not written here but derived: intake's event data from the tenant's
contracts (the JSON Schemas onegrid/contracts/asyncapi.py makes of them), bodies and query
strings from the marshmallow schemas the services validate with (onegrid/inputs.py). The
responses are the ones the handlers give, errors included (onegrid/adapters/httpjson.py and
intake's refusals). Deterministic: docs/openapi/<tenant>/<service>.json is checked for drift;
a running service serves its own at `GET /openapi.json`.
"""
from __future__ import annotations

import hashlib
import json

from marshmallow import fields, missing, validate

from onegrid import envelope as ce
from onegrid import inputs, runner
from onegrid.contracts import asyncapi
from onegrid.domain.intake import REASONS
from onegrid.domain.lifecycle import CASE_STATES, WORK_ORDER_STATES
from onegrid.domain.scoring import COLOURS

OPENAPI = "3.1.0"
SERVICES = tuple(runner.SERVICES)
TOKEN = "departmentToken"
_REF = "#/components/schemas/"
_STR, _INT, _NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}


def document(service: str, tenant, registry) -> dict:
    """The OpenAPI document of `service` as it runs for `tenant`."""
    paths, schemas = {}, dict(_SCHEMAS)
    _BUILD[service](paths, schemas, tenant, registry)
    paths.update(_observable(service))
    components = {"schemas": schemas, "responses": _responses()}
    if service in ("intake", "departments"):
        components["securitySchemes"] = {TOKEN: {"type": "http", "scheme": "bearer", "description": (
            "The department's HTTP token, from onboarding (`onegrid tenant onboard`, `onegrid tenant rotate`). "
            "A missing, unknown, rotated or revoked token gets 401.")}}
    doc = {"openapi": OPENAPI, "info": {}, "paths": paths, "components": components}
    _prune(doc)
    fingerprint = hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:12]
    doc["info"] = {"title": f"OneGrid {service}: {tenant.name_zh} ({tenant.id})", "version": f"api-{fingerprint}",
                   "description": _DESCRIPTION[service].format(tenant=tenant), "license": {"name": "Apache-2.0"}}
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


def _body(schema_cls, closed: bool = True) -> dict:
    """A request body schema; `closed`: the handler refuses undeclared fields (else it ignores them)."""
    declared = schema_cls().fields
    out = {"type": "object", "properties": {n: _field_schema(f, True) for n, f in declared.items()}}
    required = [n for n, f in declared.items() if f.required]
    if required:
        out["required"] = required
    if closed:
        out["additionalProperties"] = False
    return out


def _query(schema_cls) -> list[dict]:
    return [{"name": n, "in": "query", "required": f.required, "schema": _field_schema(f, False)}
            for n, f in schema_cls().fields.items()]


# -- building blocks --------------------------------------------------------------------------

def _ref(name: str) -> dict:
    return {"$ref": _REF + name}  # names are ids, dots and digits: no JSON Pointer escapes


def _obj(required=(), closed=False, **props) -> dict:
    out = {"type": "object", "properties": props}
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
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema or {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}}


def _op(op_id: str, summary: str, responses: dict, params=(), request=None, secured=None) -> dict:
    op = {"operationId": op_id, "summary": summary}
    if params:
        op["parameters"] = list(params)
    if request:
        op["requestBody"] = {"required": True, "content": request}
    if secured is not None:
        op["security"] = [{TOKEN: []}] + ([{}] if secured.trust_unauthenticated_http else [])
    op["responses"] = responses
    return op


def _refusal(*codes: str, **extra) -> dict:
    return _obj(("error", "detail"), error={"type": "string", "enum": list(codes)}, detail=_STR, **extra)


_SCHEMAS = {
    "Message": _obj(("error",), error={"type": "string", "description": "What is wrong, in words."}),
    "InvalidRequest": _obj(("error", "fields"), error={"const": "invalid request"}, fields={
        "description": "marshmallow's messages: field name to its problems, or the problems of the whole body."}),
    "Step": _obj(("at", "actor", "action"), at=_STR, actor=_STR, action=_STR, from_state=_STR, to_state=_STR,
                 note=_STR, work_order=_STR, due={**_NUM, "description": "a supervise step: the deadline (epoch s) that fired"}),
    "Case": _obj(("id", "tenant", "department", "status", "category", "severity", "grid", "summary"),
                 id=_STR, tenant=_STR, department=_STR, event_type=_STR, event_id=_STR, source=_STR,
                 status={"type": "string", "enum": list(CASE_STATES)}, category=_STR, severity=_STR, grid=_STR,
                 summary=_STR, level=_STR, received_at=_STR, data={"type": "object"}),
    "WorkOrder": _obj(("id", "case_id", "department", "status"), id=_STR, case_id=_STR, department=_STR,
                      status={"type": "string", "enum": list(WORK_ORDER_STATES)}, level=_STR, unit=_STR,
                      reason=_STR, dispatched_at=_STR, ack_due=_NUM, resolve_due=_NUM),
    "CaseRecord": {"allOf": [_ref("Case"), _obj(("work_orders", "timeline"), work_orders={
        "type": "array", "items": _ref("WorkOrder")}, timeline={"type": "array", "items": _ref("Step")})]},
    "AdjustmentEntry": _obj(("id", "worker", "points", "reason", "inspector", "month", "at"), id=_STR, worker=_STR,
                            points=_INT, reason=_STR, inspector=_STR, month=_STR, at=_STR),
}
_RESPONSE_NAMES = {400: "InvalidRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Refused"}


def _responses() -> dict:
    return {
        "InvalidRequest": _json("The request is invalid: the body or a query parameter.", _ref("InvalidRequest")),
        "Unauthorized": _json("No acceptable token.", _refusal("unauthenticated", "invalid_token"), headers={
            "WWW-Authenticate": {"schema": _STR, "description": 'Bearer realm="onegrid"'}}),
        "Forbidden": _json("The token is another department's.", _ref("Message")),
        "NotFound": {"description": "Nothing by that name (JSON); or no route at all, when a path parameter is "
                                    "outside its pattern (the web server's HTML page).",
                     "content": {ce.JSON: {"schema": _ref("Message")}, "text/html": {"schema": _STR}}},
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
        comps[kind] = {n: s for n, s in sorted(comps[kind].items())
                       if f"#/components/{kind}/{n}" in seen}
        if not comps[kind]:
            del comps[kind]


# -- the services -----------------------------------------------------------------------------

def _observable(service: str) -> dict:
    text = {"description": "Prometheus text exposition format.", "content": {"text/plain": {"schema": _STR}}}
    return {
        "/health": {"get": _op(f"{service}.health", "Liveness and readiness probe.",
                               {"200": _json("Serving.", _obj(("status",), status={"const": "ok"}))})},
        "/metrics": {"get": _op(f"{service}.metrics", "Prometheus metrics.", {"200": text})},
        "/openapi.json": {"get": _op(f"{service}.openapi", "This document.", {"200": _json(
            "The service's OpenAPI document for its tenant.", _obj(("openapi",), openapi={"const": OPENAPI}))})},
    }


def _intake(paths, schemas, tenant, registry) -> None:
    contracts = asyncapi.enabled_contracts(tenant, registry)
    attr = {"type": "string", "minLength": 1, "maxLength": 256}
    envelope = {"specversion": {"const": ce.SPECVERSION}, "id": attr, "source": attr, "tenant": {"const": tenant.id},
                "time": {**attr, "format": "date-time"}, "subject": {**attr, "minLength": 0},
                "datacontenttype": {"const": ce.JSON}}
    variants, datas = [], []
    for c in contracts:
        shared = set(c.fields) - set(c.own_fields)
        for name in sorted(shared):
            schemas.setdefault(f"{asyncapi.COMMON}.{name}", asyncapi.json_schema(c.fields[name]))
        data = f"{c.key}.v{c.version}"
        datas.append(data)
        schemas[data] = {"title": f"{c.key} version {c.version}", "description": c.summary,
                         **asyncapi.object_schema(c.fields, shared=shared)}
        variants.append(_obj((*ce.REQUIRED, "dataschema", "data"), **envelope, type={"const": c.key},
                             dataschema={"const": ce.dataschema(c.key, c.version)},
                             department={"const": c.department}, data=_ref(data)))
    grid = f"{asyncapi.COMMON}.grid"
    schemas[grid] = {**schemas[grid], "enum": [g.code for g in tenant.grids()]}  # else unknown_grid
    schemas["EventData"] = {"description": "Binary mode: the data of one contract version, named by the ce-type "
                                           "and ce-dataschema headers.", "anyOf": [_ref(n) for n in datas]}
    schemas["StructuredEvent"] = {"description": "Structured mode: the CloudEvents attributes and the data of one "
                                                 "contract version, in one JSON object.", "anyOf": variants}
    schemas["Outcome"] = _obj(("outcome",), True, outcome={"enum": ["registered", "duplicate", "quarantined"]},
                              case_id=_STR, event_id=_STR, reason={"enum": sorted(REASONS)}, detail=_STR,
                              quarantine_id=_STR)
    headers = [{"name": f"{ce.HEADER_PREFIX}{a}", "in": "header", "required": False,
                "description": f"Binary mode: the CloudEvents attribute {a}.", "schema": s} for a, s in (
        ("specversion", {"const": ce.SPECVERSION}), ("id", attr), ("source", attr),
        ("type", {"enum": sorted({c.key for c in contracts})}), ("tenant", {"const": tenant.id}),
        ("department", {"enum": list(tenant.departments)}),
        ("dataschema", {"enum": [ce.dataschema(c.key, c.version) for c in contracts]}),
        ("time", {**attr, "format": "date-time"}), ("subject", attr))]
    quarantined = "Quarantined with its bytes and the reason (payload_too_large is a 413)."
    responses = {
        "200": _json("A duplicate of a registered event (one event), or every event's outcome (a batch).", {"anyOf": [
            _ref("Outcome"), _obj(("counts", "results"), True, counts={"type": "object", "additionalProperties": _INT},
                                  results={"type": "array", "items": _ref("Outcome")})]}),
        "201": _json("Registered: a new case.", _ref("Outcome")),
        "401": {"$ref": "#/components/responses/Unauthorized"},
        "411": _json("A chunked body without Content-Length.", _refusal("length_required")),
        "413": _json(f"Over the tenant's max_request_bytes ({tenant.max_request_bytes}) or max_batch "
                     f"({tenant.max_batch}), refused unread; or one event over max_payload_bytes "
                     f"({tenant.max_payload_bytes}), quarantined.",
                     {"anyOf": [_refusal("request_too_large", "batch_too_large"), _ref("Outcome")]}),
        "422": _json(quarantined + " A batch that is not a JSON array is malformed_batch.", {"anyOf": [
            _ref("Outcome"), _refusal("malformed_batch", quarantine_id=_STR)]}),
        "429": _json(f"Over the department's rate ({tenant.rate_per_department:g} events/s, bursts of "
                     f"{tenant.burst_per_department}).", _refusal("rate_limited"),
                     headers={"Retry-After": {"schema": _INT, "description": "Seconds to wait.", "required": True}}),
    }
    paths["/events"] = {"post": _op("intake.post_events", "Send one CloudEvent (binary or structured mode) or a batch.",
                                    responses, headers, secured=tenant, request={
        ce.JSON: {"schema": _ref("EventData")},
        ce.STRUCTURED: {"schema": _ref("StructuredEvent")},
        ce.BATCH: {"schema": {"type": "array", "items": _ref("StructuredEvent"), "maxItems": tenant.max_batch}}})}
    paths["/asyncapi.yaml"] = {"get": _op("intake.asyncapi_yaml", "The tenant's AsyncAPI 3 document.", {
        "200": {"description": "AsyncAPI 3.0 as YAML.", "content": {"application/yaml": {"schema": {}}}}})}
    paths["/asyncapi.json"] = {"get": _op("intake.asyncapi_json", "The tenant's AsyncAPI 3 document.", {
        "200": _json("AsyncAPI 3.0 as JSON.", _obj(("asyncapi",), asyncapi={"const": asyncapi.ASYNCAPI}))})}


def _departments(paths, schemas, tenant, registry) -> None:
    department = _path("department", "An enabled department.", {"type": "string", "enum": list(tenant.departments)})
    paths["/departments/{department}/work-orders"] = {"get": _op(
        "departments.list", "The department's open work orders, oldest first.", {
            "200": _json("One page of the queue.", _obj(("department", "total", "offset", "work_orders"),
                                                         department=_STR, total=_INT, offset=_INT,
                                                         work_orders={"type": "array", "items": _ref("WorkOrder")})),
            **_errors(400, 401, 403, 404)}, [department, *_query(inputs.Page)], secured=tenant)}
    paths["/departments/{department}/work-orders/{work_order_id}/{action}"] = {"post": _op(
        "departments.act", "Accept, return, resolve, or ask for more time (extension) on one work order.", {
            "200": _json("Done.", _obj(("work_order", "case_status"), work_order=_ref("WorkOrder"),
                                       case_status={"type": "string", "enum": list(CASE_STATES)})),
            **_errors(400, 401, 403, 404, 409)},
        [department, _path("work_order_id", "A work order of the department."),
         _path("action", "What to do.", {"type": "string", "enum": list(inputs.WORK_ORDER_ACTIONS)})],
        {ce.JSON: {"schema": _body(inputs.ActionRequest)}}, secured=tenant)}
    paths["/cases/{case_id}"] = {"get": _case_get("departments")}


def _case_get(service: str) -> dict:
    return _op(f"{service}.get_case", "A case with its work orders and its timeline.", {
        "200": _json("The case.", _ref("CaseRecord")), **_errors(404)}, [_path("case_id", "A case id.")])


def _supervision(paths, schemas, tenant, registry) -> None:
    case_id = _path("case_id", "A case id.")
    paths["/cases"] = {"get": _op("supervision.list_cases", "Cases matching every filter given, newest first.", {
        "200": _json("One page.", _obj(("total", "offset", "limit", "cases"), total=_INT, offset=_INT, limit=_INT,
                                       cases={"type": "array", "items": _ref("Case")})),
        **_errors(400)}, _query(inputs.Query))}
    paths["/cases/{case_id}"] = {"get": _case_get("supervision")}
    done = _json("Done: the case as it is now.", _obj(("case",), case=_ref("Case")))
    paths["/cases/{case_id}/whistle"] = {"post": _op(
        "supervision.whistle", "Escalate by hand to a higher level and/or add departments (joint dispatch).",
        {"200": done, **_errors(400, 404, 409)}, [case_id], {ce.JSON: {"schema": _body(inputs.Whistle, False)}})}
    paths["/cases/{case_id}/{action}"] = {"post": _op(
        "supervision.act", "Verify on site, record the citizen's word, reject, or close not fixed.",
        {"200": done, **_errors(400, 404, 409)},
        [case_id, _path("action", "What to do.", {"type": "string", "enum": list(inputs.CASE_ACTIONS)})],
        {ce.JSON: {"schema": _body(inputs.CaseAction, False)}})}
    paths["/work-orders/{work_order_id}/extension/{decision}"] = {"post": _op(
        "supervision.decide_extension", "Grant or deny a department's request for more time.",
        {"200": _json("Decided.", _obj(("work_order", "case"), work_order=_ref("WorkOrder"), case=_ref("Case"))),
         **_errors(400, 404, 409)},
        [_path("work_order_id", "A work order id."),
         _path("decision", "grant or deny.", {"type": "string", "enum": ["grant", "deny"]})],
        {ce.JSON: {"schema": _body(inputs.ExtensionDecision, False)}})}


def _scoring(paths, schemas, tenant, registry) -> None:
    month = {"name": "month", "in": "query", "required": False, "description": "YYYY-MM (default: this month).",
             "schema": {"type": "string", "pattern": inputs.MONTH.regex.pattern}}
    rank = _obj(("rank", "name", "score"), rank=_INT, name=_STR, score=_NUM)
    ranks = {"type": "array", "items": rank}
    rate = {"type": ["number", "null"]}
    schemas["Assessment"] = {"type": "object", "additionalProperties": _obj(
        ("score",), score=rate, closure_rate=rate, on_time_rate=rate, satisfaction_rate=rate, received=_INT)}
    bad = _errors(400)
    paths["/scoring/rankings"] = {"get": _op("scoring.rankings", "每月排序通报: the month's rankings.", {
        "200": _json("Grid workers, grids, communities and departments, best first.", _obj(
            ("tenant", "month", "workers", "grids", "communities", "departments"), tenant=_STR, month=_STR,
            workers=ranks, grids=ranks, communities=ranks, departments=ranks)), **bad},
        [month, {"name": "limit", "in": "query", "required": False, "description": "Rows per table (1 to 1000).",
                 "schema": {"type": "integer", "default": 10}}])}
    paths["/scoring/assessment"] = {"get": _op("scoring.assessment", "Every department's assessment for a period.", {
        "200": _json("Rates and the score per department.", _obj(
            ("tenant", "period", "key", "departments"), tenant=_STR, period={"enum": list(inputs.PERIODS)}, key=_STR,
            departments=_ref("Assessment"))), **bad},
        [{"name": "period", "in": "query", "required": False,
          "schema": {"type": "string", "enum": list(inputs.PERIODS), "default": "month"}},
         {"name": "key", "in": "query", "required": False, "description": "The month (YYYY-MM) or ISO week "
                                                                          "(YYYY-Www) of the period; default: now.",
          "schema": {"type": "string", "anyOf": [{"pattern": p.regex.pattern} for p in inputs.PERIODS.values()]}}])}
    paths["/scoring/risk"] = {"get": _op("scoring.risk", "The five-colour risk of every grid.", {"200": _json(
        "Counts per colour and each grid's colour and score.", _obj(
            ("tenant", "counts", "grids"), tenant=_STR, counts=_obj(COLOURS, **{c: _INT for c in COLOURS}),
            grids={"type": "object", "additionalProperties": _obj(("colour", "score"), colour={"enum": list(COLOURS)},
                                                                  score=_NUM)}))})}
    paths["/scoring/workers/{worker}"] = {"get": _op("scoring.worker", "A grid worker's points for a month.", {
        "200": _json("Points by rule, adjustments and the total.", _obj(
            ("worker", "month", "rules", "adjusted", "points", "adjustments"), worker=_STR, month=_STR,
            rules={"type": "object", "additionalProperties": _INT}, adjusted=_INT, points=_INT,
            adjustments={"type": "array", "items": _ref("AdjustmentEntry")})), **bad},
        [_path("worker", "The grid worker."), month])}
    entries = {"type": "array", "items": _ref("AdjustmentEntry")}
    adjusted = _obj(("created", "adjustment"), created={"type": "boolean"}, adjustment=_ref("AdjustmentEntry"))
    paths["/scoring/adjustments"] = {
        "get": _op("scoring.audit", "The audit trail of adjustments.", {"200": _json("Oldest first.", entries), **bad},
                   [month, {"name": "worker", "in": "query", "required": False, "schema": _STR}]),
        "post": _op("scoring.adjust", "An inspector adds or deducts points, with a reason (idempotent on id).", {
            "201": _json("Recorded.", adjusted), "200": _json("Recorded before, under this id: unchanged.", adjusted),
            **bad}, request={ce.JSON: {"schema": _body(inputs.Adjustment, False)}})}


def _notify(paths, schemas, tenant, registry) -> None:
    paths["/notify/stats"] = {"get": _op("notify.stats", "The outbox: pending, sent, retried, parked.", {
        "200": _json("Counters by outcome and channel.", {**_obj(("tenant", "pending"), tenant=_STR, pending=_INT),
                                                          "additionalProperties": _INT})})}
    paths["/notify/parked"] = {"get": _op("notify.parked", "Notifications parked after their last attempt.", {
        "200": _json("Oldest first.", {"type": "array", "items": _obj(
            ("id", "kind", "channel", "reason"), id=_STR, kind=_STR, channel=_STR, reason=_STR)}),
        **_errors(400)}, _query(inputs.Parked))}


_BUILD = {"intake": _intake, "routing": lambda *_: None, "departments": _departments, "supervision": _supervision,
          "scoring": _scoring, "notify": _notify}
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
               "{tenant.name}; inspectors' adjustments with an audit trail.",
    "notify": "The notifications outbox of {tenant.name}: counters and what is parked.",
}
