"""The AsyncAPI 3 documents for department integrators: committed, in step with the
contracts, and shaped as AsyncAPI 3.0 says (channels = routing keys, operations, messages
with the contract as a JSON Schema payload and the CloudEvents headers)."""
import random

import pytest
import yaml

from onegrid import envelope as ce
from onegrid.cli import main as cli
from onegrid.contracts.asyncapi import document, json_schema, render
from onegrid.fake import sample_object

from .helpers import JINCHENG, QINLING, ROOT, registry

DEMO = (QINLING, JINCHENG)


def _doc(tid=QINLING):
    return document(registry().tenants[tid], registry())


def _resolve(doc, ref: str):
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize("tid", DEMO)
def test_committed_document_is_what_the_contracts_generate(tid):
    committed = (ROOT / "docs" / "asyncapi" / f"{tid}.yaml").read_text(encoding="utf-8")
    assert committed == render(_doc(tid)), (
        f"docs/asyncapi/{tid}.yaml is stale: onegrid contracts asyncapi {tid} --out docs/asyncapi/{tid}.yaml")


def test_rendering_is_deterministic():
    assert render(_doc()) == render(_doc())


@pytest.mark.parametrize("tid", DEMO)
def test_structure(tid):
    doc, tenant, reg = _doc(tid), registry().tenants[tid], registry()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"].startswith("contracts-")
    assert doc["servers"]["rabbitmq"]["protocol"] == "amqp" and doc["servers"]["rabbitmq"]["pathname"] == f"/{tid}"
    keys = {c.key for c in reg.events.values() if c.department in tenant.departments}
    assert set(doc["channels"]) == keys
    messages = doc["components"]["messages"]
    assert set(messages) == {f"{k}.v{v}" for k, v in reg.events if k in keys}
    for key, channel in doc["channels"].items():
        assert channel["address"] == key
        assert channel["bindings"]["amqp"]["exchange"] == {"name": "onegrid.intake", "type": "topic", "durable": True,
                                                          "autoDelete": False, "vhost": tid}
        assert set(channel["messages"]) == {f"v{v}" for v in reg.versions(key)}
        op = doc["operations"][f"publish.{key}"]
        assert op["action"] == "send" and _resolve(doc, op["channel"]["$ref"]) is channel
        dept = key.split(".")[0]
        assert op["bindings"]["amqp"]["userId"] == f"{tid}.{dept}"
        for ref in op["messages"]:
            msg = _resolve(doc, _resolve(doc, ref["$ref"])["$ref"])
            assert msg["contentType"] == ce.JSON and msg["payload"]["type"] == "object"
    headers = doc["components"]["schemas"]["CloudEventHeaders"]
    assert set(headers["required"]) >= {"ce-id", "ce-source", "ce-type", "ce-specversion", "ce-dataschema",
                                        "ce-tenant", "ce-department"}
    assert headers["properties"]["ce-tenant"] == {"type": "string", "const": tid}
    for scheme in doc["components"]["securitySchemes"].values():
        assert scheme["type"] in ("userPassword", "http")


def test_every_reference_resolves():
    doc = _doc()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                assert _resolve(doc, node["$ref"]) is not None, node["$ref"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(doc)


def test_two_versions_are_two_messages_on_one_channel():
    doc = _doc()
    key = "market_regulation.food_safety_hazard_found"
    assert set(doc["channels"][key]["messages"]) == {"v1", "v2"}
    v1, v2 = (doc["components"]["messages"][f"{key}.v{v}"] for v in (1, 2))
    assert "batch_no" in v2["payload"]["properties"] and "batch_no" not in v1["payload"]["properties"]
    assert v2["headers"]["allOf"][1]["properties"]["ce-dataschema"] == {"const": ce.dataschema(key, 2)}


def test_payload_schema_follows_the_field_specs():
    assert json_schema({"type": "string", "max_length": 5, "pattern": "[a-z]+"}) == {
        "type": "string", "maxLength": 5, "pattern": "^(?:[a-z]+)$"}
    assert json_schema({"type": "integer", "min": 0, "max": 9}) == {"type": "integer", "minimum": 0, "maximum": 9}
    assert json_schema({"type": "enum", "values": ["a"]}) == {"type": "string", "enum": ["a"]}
    assert json_schema({"type": "datetime"}) == {"type": "string", "format": "date-time"}
    assert json_schema({"type": "list", "max_items": 2, "items": {"type": "url"}})["items"]["format"] == "uri"
    obj = json_schema({"type": "object", "fields": {"a": {"type": "boolean", "required": True}}})
    assert obj == {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"],
                   "additionalProperties": False}


def test_sample_events_satisfy_their_payload_schema():
    jsonschema = pytest.importorskip("jsonschema")
    doc = _doc()
    tenant = registry().tenants[QINLING]
    for (key, version), contract in registry().events.items():
        schema = {**doc["components"]["messages"][f"{key}.v{version}"]["payload"],
                  "components": doc["components"]}
        jsonschema.Draft7Validator.check_schema(schema)
        data = sample_object(contract.fields, random.Random(version), {"grid": tenant.grids()[0].code})
        jsonschema.Draft7Validator(schema).validate(data)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft7Validator(schema).validate({**data, "not_in_the_contract": 1})


def test_cli_writes_and_reports_unchanged(tmp_path, capsys):
    out = tmp_path / "qinling.yaml"
    assert cli(["contracts", "asyncapi", QINLING, "--out", str(out)]) == 0
    assert cli(["contracts", "asyncapi", QINLING, "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"wrote {out}", f"unchanged {out}"]
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["asyncapi"] == "3.0.0"
    assert cli(["contracts", "asyncapi", "nowhere-county"]) == 2
