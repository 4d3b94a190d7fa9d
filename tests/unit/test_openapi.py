"""The OpenAPI 3.1 documents of the services' HTTP surfaces: committed, in step with the
contracts and the services' request schemas, and valid OpenAPI (tests/fuzz runs schemathesis
against the running services with them)."""

import json
import random
import re

import jsonschema
import pytest
import schemathesis
from schemathesis.core.result import Ok

from onegrid.app import inputs
from onegrid.catalogue import COMMON_ROUTES
from onegrid.cli.main import main as cli
from onegrid.contracts import asyncapi
from onegrid.kernel import envelope as ce
from onegrid.operator.openapi import SERVICES, document, render
from sim.fake import sample_object

from .helpers import JINCHENG, QINLING, ROOT, registry

EVERY = [(t, s) for t in (QINLING, JINCHENG) for s in SERVICES]


def _doc(service, tid=QINLING):
    return document(service, registry().tenants[tid], registry())


def _validator(doc, name):
    """A validator of components.schemas[name], its references resolved in `doc`."""
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


@pytest.mark.parametrize("tid, service", EVERY)
def test_committed_document_is_what_the_code_generates(tid, service):
    committed = (ROOT / "docs" / "openapi" / tid / f"{service}.json").read_text(encoding="utf-8")
    assert committed == render(_doc(service, tid)), (
        f"docs/openapi/{tid}/{service}.json is stale: onegrid openapi {tid} --out docs/openapi"
    )


@pytest.mark.parametrize("tid, service", EVERY)
def test_valid_openapi_3_1(tid, service):
    doc = _doc(service, tid)
    loaded = schemathesis.openapi.from_dict(doc)
    loaded.validate()  # the OpenAPI 3.1 meta-schema
    operations = list(loaded.get_all_operations())
    assert operations and all(isinstance(op, Ok) for op in operations), [
        op for op in operations if not isinstance(op, Ok)
    ]
    for schema in doc["components"].get("schemas", {}).values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for item in doc["paths"].values():
        for op in item.values():
            assert "200" in op["responses"] or "201" in op["responses"]
            for response in op["responses"].values():
                assert "$ref" in response or "content" in response


def test_every_reference_resolves_and_every_component_is_used():
    for service in SERVICES:
        doc = _doc(service)
        refs = set(re.findall(r'"\$ref": "([^"]+)"', render(doc)))
        for ref in refs:
            node = doc
            for part in ref.removeprefix("#/").split("/"):
                node = node[part]
        named = {
            f"#/components/{kind}/{name}"
            for kind in ("schemas", "responses")
            for name in doc["components"].get(kind, {})
        }
        assert named <= refs, f"{service}: unused {named - refs}"


def test_every_service_has_its_probes_and_this_document():
    for service in SERVICES:
        assert {"/health", "/metrics", "/openapi.json"} <= set(_doc(service)["paths"])


def test_event_data_is_the_contracts_json_schema():
    doc, reg, tenant = _doc("intake"), registry(), registry().tenants[QINLING]
    schemas = doc["components"]["schemas"]
    for c in asyncapi.enabled_contracts(tenant, reg):
        mine = schemas[f"{c.key}.v{c.version}"]
        assert (
            mine["properties"]
            == asyncapi.object_schema(c.fields, shared=set(c.fields) - set(c.own_fields))["properties"]
        )
        assert mine["additionalProperties"] is False
    assert set(schemas["CaseField.grid"]["enum"]) == {g.code for g in tenant.grids()}


def test_sample_events_satisfy_the_request_schemas_in_both_modes():
    doc, tenant = _doc("intake"), registry().tenants[QINLING]
    binary, structured = _validator(doc, "EventData"), _validator(doc, "StructuredEvent")
    for c in asyncapi.enabled_contracts(tenant, registry()):
        data = sample_object(c.fields, random.Random(c.version), {"grid": tenant.grids()[0].code})
        binary.validate(data)
        env = ce.new(
            tenant=tenant.id, department=c.department, type=c.key, version=c.version, source=f"/{tenant.id}/test"
        )
        structured.validate(env.structured(data))
        with pytest.raises(jsonschema.ValidationError):
            structured.validate(env.structured({**data, "not_in_the_contract": 1}))
        with pytest.raises(jsonschema.ValidationError):
            structured.validate({**env.structured(data), "tenant": "another-county"})


def test_request_bodies_and_queries_come_from_the_services_marshmallow_schemas():
    whistle = _doc("supervision")["paths"]["/cases/{case_id}/whistle"]["post"]["requestBody"]["content"][ce.JSON]
    schema = whistle["schema"]
    # the actor is the signed-in person's token, not a required body field
    assert schema["required"] == ["note"] and "additionalProperties" not in schema  # others ignored
    assert "ignored for a signed-in person" in schema["properties"]["actor"]["description"]
    assert schema["properties"]["level"]["anyOf"] == [
        {"type": "string", "enum": ["grid", "community", "street", "county"]},
        {"type": "null"},
    ]
    assert schema["properties"]["departments"] == {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": 32},
        "maxItems": 16,
        "default": [],
    }
    act = _doc("departments")["paths"]["/departments/{department}/work-orders/{work_order_id}/{action}"]["post"]
    body = act["requestBody"]["content"][ce.JSON]["schema"]
    assert body["additionalProperties"] is False and body["required"] == ["actor"]
    assert body["properties"]["evidence_urls"]["items"] == {"type": "string", "format": "uri", "pattern": "^https?://"}
    assert [p["schema"]["enum"] for p in act["parameters"] if p["name"] == "action"] == [
        list(inputs.WORK_ORDER_ACTIONS)
    ]
    cases = {p["name"]: p for p in _doc("supervision")["paths"]["/cases"]["get"]["parameters"]}
    assert set(cases) == set(inputs.Query().fields)
    assert cases["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}
    adjust = _doc("scoring")["paths"]["/scoring/adjustments"]["post"]["requestBody"]["content"][ce.JSON]["schema"]
    assert adjust["properties"]["month"]["anyOf"][0]["pattern"] == inputs.MONTH.regex.pattern


def test_the_token_is_asked_for_where_the_service_checks_it():
    """Intake takes department tokens; the people-facing services a person's JWT (departments:
    or the department's token). The demo counties trust unauthenticated HTTP: optional there,
    never for a department's receipts."""
    intake = _doc("intake")
    scheme = intake["components"]["securitySchemes"]["departmentToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert intake["paths"]["/events"]["post"]["security"] == [{"departmentToken": []}, {}]
    for path in ("/events/{event_id}", "/quarantine"):  # a department's receipts: never without its token
        op = intake["paths"][path]["get"]
        assert op["security"] == [{"departmentToken": []}] and "401" in op["responses"]
    for service in ("departments", "supervision", "scoring", "notify"):
        doc = _doc(service)
        scheme = doc["components"]["securitySchemes"]["personToken"]
        assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
        for path, item in doc["paths"].items():
            for op in item.values():
                if path in COMMON_ROUTES or path.startswith("/.well-known/"):
                    assert "security" not in op
                    continue
                if path == "/notify/sms/replies":  # the SMS gateway signs its push: a signature, no token
                    assert op["security"] == [{"smsGatewaySignature": []}] and "401" in op["responses"]
                    scheme = doc["components"]["securitySchemes"]["smsGatewaySignature"]
                    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-OneGrid-Signature")
                    continue
                expected = [{"personToken": []}] + ([{"departmentToken": []}] if service == "departments" else [])
                assert op["security"] == expected, (service, path)  # never anonymous, demo tenants included
                assert {"401", "403"} <= set(op["responses"])


def test_an_untrusting_tenant_requires_the_token():
    tenant = registry().tenants[QINLING]
    strict = type(tenant)(**{**tenant.__dict__, "trust_unauthenticated_http": False})
    doc = document("intake", strict, registry())
    assert doc["paths"]["/events"]["post"]["security"] == [{"departmentToken": []}]


def test_cli_writes_each_service_and_reports_unchanged(tmp_path, capsys):
    assert cli(["openapi", QINLING, "--out", str(tmp_path)]) == 0
    assert cli(["openapi", QINLING, "--out", str(tmp_path), "--service", "notify"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"wrote {tmp_path / QINLING / s}.json" for s in SERVICES] + [
        f"unchanged {tmp_path / QINLING / 'notify'}.json"
    ]
    assert json.loads((tmp_path / QINLING / "intake.json").read_text(encoding="utf-8"))["openapi"] == "3.1.0"
    assert cli(["openapi", QINLING, "--service", "routing"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"].startswith("OneGrid routing")
    assert cli(["openapi", "nowhere-county", "--out", str(tmp_path)]) == 2
    assert cli(["openapi", QINLING]) == 2
