"""The AsyncAPI 3 documents for department integrators: committed, in step with the
contracts, and shaped as AsyncAPI 3.0 says (channels = routing keys, operations, messages
with the contract as a JSON Schema payload and the CloudEvents headers)."""

import json
import random

import pytest
import yaml

from onegrid.cli.main import main as cli
from onegrid.contracts import asyncapi
from onegrid.contracts.asyncapi import document, json_schema, render
from onegrid.domain import receipts
from onegrid.domain.intake import Accepted, RawEvent, admit
from onegrid.kernel import envelope as ce
from sim.fake import sample_object

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
        f"docs/asyncapi/{tid}.yaml is stale: onegrid contracts asyncapi {tid} --out docs/asyncapi/{tid}.yaml"
    )


def test_rendering_is_deterministic():
    assert render(_doc()) == render(_doc())


@pytest.mark.parametrize("tid", DEMO)
def test_structure(tid):
    doc, tenant, reg = _doc(tid), registry().tenants[tid], registry()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"].startswith("contracts-")
    assert doc["servers"]["rabbitmq"]["protocol"] == "amqp" and doc["servers"]["rabbitmq"]["pathname"] == f"/{tid}"
    keys = {c.key for c in reg.events.values() if c.department in tenant.departments}
    queues = {f"{q}.{d}" for d in tenant.departments for q in ("workorders", "receipts")}
    assert set(doc["channels"]) == keys | queues
    messages = doc["components"]["messages"]
    received = {"work_order.dispatched", "event.accepted", "event.merged", "event.quarantined"}
    assert set(messages) == {f"{k}.v{v}" for k, v in reg.events if k in keys} | received
    for key, channel in doc["channels"].items():
        if key in queues:
            continue
        assert channel["address"] == key
        assert channel["bindings"]["amqp"]["exchange"] == {
            "name": "onegrid.intake",
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": tid,
        }
        assert set(channel["messages"]) == {f"v{v}" for v in reg.versions(key)}
        op = doc["operations"][f"publish.{key}"]
        assert op["action"] == "send" and _resolve(doc, op["channel"]["$ref"]) is channel
        dept = key.split(".")[0]
        assert op["bindings"]["amqp"]["userId"] == f"{tid}.{dept}"
        for ref in op["messages"]:
            msg = _resolve(doc, _resolve(doc, ref["$ref"])["$ref"])
            assert msg["contentType"] == ce.JSON and msg["payload"]["type"] == "object"
    headers = doc["components"]["schemas"]["CloudEventHeaders"]
    assert set(headers["required"]) >= {
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-specversion",
        "ce-dataschema",
        "ce-tenant",
        "ce-department",
    }
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
        "type": "string",
        "maxLength": 5,
        "pattern": "^(?:[a-z]+)$",
    }
    assert json_schema({"type": "integer", "min": 0, "max": 9}) == {"type": "integer", "minimum": 0, "maximum": 9}
    assert json_schema({"type": "enum", "values": ["a"]}) == {"type": "string", "enum": ["a"]}
    assert json_schema({"type": "datetime"}) == {"type": "string", "format": "date-time"}
    assert json_schema({"type": "list", "max_items": 2, "items": {"type": "url"}})["items"]["format"] == "uri"
    obj = json_schema({"type": "object", "fields": {"a": {"type": "boolean", "required": True}}})
    assert obj == {
        "type": "object",
        "properties": {"a": {"type": "boolean"}},
        "required": ["a"],
        "additionalProperties": False,
    }


def test_sample_events_satisfy_their_payload_schema():
    jsonschema = pytest.importorskip("jsonschema")
    doc = _doc()
    tenant = registry().tenants[QINLING]
    for (key, version), contract in registry().events.items():
        schema = {**doc["components"]["messages"][f"{key}.v{version}"]["payload"], "components": doc["components"]}
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


@pytest.mark.parametrize("tid", DEMO)
def test_every_example_is_an_event_intake_accepts(tid):
    """The examples an integrator copies are events admission registers, as the department."""
    doc, tenant, reg = _doc(tid), registry().tenants[tid], registry()
    examples = 0
    for name, message in doc["components"]["messages"].items():
        if "examples" not in message:
            continue
        [example] = message["examples"]
        headers = example["headers"]
        raw = RawEvent(
            json.dumps(example["payload"], ensure_ascii=False).encode(), headers, ce.JSON, headers["ce-type"], "amqp"
        )
        verdict = admit(raw, tenant, reg, headers["ce-department"])
        assert isinstance(verdict, Accepted), (name, verdict)
        assert verdict.grid in {g.code for g in tenant.grids()}
        examples += 1
    sent = {c.key for c in reg.events.values() if c.department in tenant.departments}
    assert examples == sum(len(reg.versions(k)) for k in sent)


@pytest.mark.parametrize("tid", DEMO)
def test_each_department_has_its_receive_operations(tid):
    doc, tenant = _doc(tid), registry().tenants[tid]
    for dept in tenant.departments:
        work = doc["operations"][f"receive.workorders.{dept}"]
        told = doc["operations"][f"receive.receipts.{dept}"]
        assert work["action"] == told["action"] == "receive"
        assert _resolve(doc, told["channel"]["$ref"])["bindings"]["amqp"]["queue"]["name"] == f"receipts.{dept}"
        types = {_resolve(doc, _resolve(doc, m["$ref"])["$ref"])["name"] for m in told["messages"]}
        assert types == {f"event.{o}" for o in receipts.OUTCOMES}
        [wo] = work["messages"]
        assert _resolve(doc, _resolve(doc, wo["$ref"])["$ref"])["payload"] == {"$ref": "#/components/schemas/WorkOrder"}
    assert asyncapi.RECEIPT_OUTCOMES == receipts.OUTCOMES


def test_the_grid_codes_are_listed_not_only_their_pattern():
    doc, tenant = _doc(), registry().tenants[QINLING]
    codes = [g.code for g in tenant.grids()]
    assert doc["components"]["schemas"]["CaseField.grid"]["enum"] == codes
    assert [g["const"] for g in doc["components"]["schemas"]["GridCode"]["oneOf"]] == codes


def test_the_conventions_are_written_down():
    text = _doc()["info"]["description"]
    for convention in ("ce-source", "publisher confirm", "merged", "ce-tenant", "receipts.<department>"):
        assert convention in text, convention
    url = _doc()["servers"]["rabbitmq"]["description"]
    assert f"amqp://{QINLING}.<department>:<password>@<host>:5672/{QINLING}" in url


def test_the_amqp_url_percent_encodes_user_password_and_vhost():
    assert asyncapi.amqp_url("/", "a b", "p@ss/word", "h") == "amqp://a%20b:p%40ss%2Fword@h:5672/%2F"


def test_receipts_and_work_orders_satisfy_their_schemas():
    """What intake and routing really publish (through the fakes) is what the document says."""
    jsonschema = pytest.importorskip("jsonschema")
    from tests.unit.services.fakes import County, grid_report

    county = County(registry().tenants[QINLING], registry())
    good = county.intake().ingest(grid_report(county, "evt-a"), "governance")
    county.intake().ingest(grid_report(county, "evt-b", severity="catastrophic"), "governance")
    county.routing().case_registered(good.case_id)
    doc = _doc()
    checked = set()
    for published in county.bus.published:
        name = "Receipt" if published.env.type.startswith("event.") else "WorkOrder"
        if published.env.type not in ("event.accepted", "event.quarantined", "work_order.dispatched"):
            continue
        schema = {**doc["components"]["schemas"][name], "components": doc["components"]}
        jsonschema.Draft7Validator(schema).validate(published.data)
        checked.add(published.env.type)
    assert checked == {"event.accepted", "event.quarantined", "work_order.dispatched"}
