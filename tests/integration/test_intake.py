"""intake over the real bus and over HTTP: cases, idempotency, quarantine with the original
bytes and a precise reason, and replay after a contract fix."""

import dataclasses
import json
import time

import pytest
import requests
import yaml

from onegrid.cli.main import main as cli
from onegrid.domain.cases import case_id, work_order_id
from onegrid.kernel import envelope as ce
from tests.support import drain, publish, wait_until

pytestmark = pytest.mark.integration


def _case_of(county, p):
    return county.store.case(case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}"))


def _messages_for(county, order):
    """The messages in the order's department queue that carry this work order."""
    return [m for m in drain(county.uri, f"workorders.{order['department']}") if m[0]["ce-subject"] == order["id"]]


def test_an_event_becomes_a_case_and_a_work_order_in_the_departments_queue(county):
    sim = county.simulator(seed=11)
    p = sim.good()
    publish(county.uri, [p])
    case = wait_until(lambda: (c := _case_of(county, p)) and c["status"] == "dispatched" and c, what="dispatch")
    assert case["category"] == p.category and case["department"] == p.department
    orders = county.store.work_orders_of(case["id"])
    assert orders and all(o["status"] == "dispatched" for o in orders)
    for order in orders:
        msgs = wait_until(lambda order=order: _messages_for(county, order), what="work order message")
        headers, body = msgs[0]
        assert headers["ce-type"] == "work_order.dispatched" and headers["ce-tenant"] == county.id
        assert headers["ce-specversion"] == "1.0" and headers["ce-dataschema"].startswith("urn:onegrid:contract:")
        assert json.loads(body)["case_id"] == case["id"]


def test_redelivered_or_resent_events_make_one_case(county):
    sim = county.simulator(seed=12)
    p = sim.good()
    before = county.store.stats().get("cases", 0)
    publish(county.uri, [p, p, p])
    wait_until(lambda: _case_of(county, p), what="case")
    wait_until(lambda: county.store.stats().get("cases", 0) == before + 1, what="count")
    data = json.loads(p.body)
    data["summary"] = "something else entirely"  # same identity, other content
    reused = dataclasses.replace(p, body=json.dumps(data).encode())
    publish(county.uri, [reused])
    wait_until(lambda: county.store.quarantined(reason="id_reused"), what="id_reused quarantine")
    assert county.store.stats()["cases"] == before + 1


def test_a_bad_event_delivered_again_is_one_quarantine_entry(county):
    """What the broker adds on a redelivery (x-delivery-count, the retry tiers' headers) is not
    the publisher's message: the same bad bytes come round again as the same entry."""
    sim = county.simulator(seed=13)
    bad, after = sim.bad("missing_attribute"), sim.good()
    again = dataclasses.replace(
        bad, headers={**bad.headers, "x-delivery-count": 1, "x-og-attempt": 1, "x-og-routing-key": bad.routing_key}
    )
    publish(county.uri, [bad, again, after])
    wait_until(lambda: _case_of(county, after), what="the event published after them")
    time.sleep(1)  # intake runs handlers concurrently: let the other two finish too
    mine = [
        e
        for e in county.store.quarantined(count=10_000, reason="missing_attribute")
        if json.loads(e["headers"]).get("ce-id") == bad.headers["ce-id"]
    ]
    assert len(mine) == 1, mine
    assert "x-delivery-count" not in json.loads(mine[0]["headers"])


def _post(county, body: bytes, headers: dict):
    return requests.post(county.services.url("intake") + "/events", data=body, headers=headers, timeout=10)


def test_http_binary_structured_and_batch(county):
    sim = county.simulator(seed=13)
    p = sim.good()
    first = _post(county, p.body, {**p.headers, "Content-Type": "application/json"})
    assert first.status_code == 201 and first.json()["outcome"] == "registered"
    again = _post(county, p.body, {**p.headers, "Content-Type": "application/json"})
    assert again.status_code == 200 and again.json() == {**first.json(), "outcome": "duplicate"}

    q = sim.good()
    structured = {k[3:]: v for k, v in q.headers.items()} | {"data": json.loads(q.body)}
    resp = _post(county, json.dumps(structured).encode(), {"Content-Type": ce.STRUCTURED})
    assert resp.status_code == 201

    good, bad = sim.good(), sim.bad("unknown_grid")
    batch = [{k[3:]: v for k, v in e.headers.items()} | {"data": json.loads(e.body)} for e in (good, bad)]
    resp = _post(county, json.dumps(batch).encode(), {"Content-Type": ce.BATCH})
    assert resp.status_code == 200
    assert resp.json()["counts"] == {"registered": 1, "quarantined": 1}
    assert resp.json()["results"][1]["reason"] == "unknown_grid"

    too_many = json.dumps([{}] * (county.tenant.max_batch + 1)).encode()
    assert _post(county, too_many, {"Content-Type": ce.BATCH}).status_code == 413


def test_http_bad_input_is_refused_and_quarantined_with_its_bytes(county):
    sim = county.simulator(seed=14)
    p = sim.good()
    broken = b'{"grid": "410102-001-001-001", "summary": '
    resp = _post(county, broken, {**p.headers, "Content-Type": "application/json"})
    assert resp.status_code == 422
    assert resp.json()["reason"] == "malformed_json" and "not JSON" in resp.json()["detail"]
    entry = [e for e in county.store.quarantined(count=10_000) if e["id"] == resp.json()["quarantine_id"]][0]
    assert entry["body"] == broken and entry["transport"] == "http"

    big = sim.bad("payload_too_large")
    resp = _post(county, big.body, {**big.headers, "Content-Type": "application/json"})
    assert resp.status_code == 413 and resp.json()["reason"] == "payload_too_large"

    wrong = sim.good()
    data = json.loads(wrong.body)
    data["severity"] = "apocalyptic"
    resp = _post(county, json.dumps(data).encode(), {**wrong.headers, "Content-Type": "application/json"})
    assert resp.status_code == 422 and "severity" in resp.json()["detail"]


def test_quarantined_events_replay_after_the_contract_is_fixed(county):
    sim = county.simulator(seed=15)
    p = sim.good()
    key, version2 = p.routing_key, ce.dataschema(p.routing_key, 2)
    p.headers["ce-dataschema"] = version2
    publish(county.uri, [p])
    wait_until(
        lambda: [
            e
            for e in county.store.quarantined(reason="unknown_version", count=10_000)
            if json.loads(e["headers"])["ce-id"] == p.event_id
        ],
        what="unknown_version",
    )

    # the department's contract gains version 2 (same fields), intake restarts with it
    dept, etype = key.split(".")
    path = county.contracts / "departments" / f"{dept}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    v1 = next(e for e in doc["events"] if e["type"] == etype and e["version"] == 1)
    doc["events"].append({**v1, "version": 2})
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    county.services.restart("intake")

    assert cli(["--dir", str(county.contracts), "quarantine", "replay", county.id, "--reason", "unknown_version"]) == 0
    case = wait_until(lambda: _case_of(county, p), what="replayed case")
    assert case["version"] == 2
    assert not [
        e for e in county.store.quarantined(count=10_000) if json.loads(e["headers"]).get("ce-id") == p.event_id
    ]
    assert work_order_id(case["id"], "x").startswith("w-")


def test_declared_content_encodings_neither_crash_intake_nor_change_the_bytes(county):
    # py-amqp hands a body over as str when the publisher declares a content_encoding it knows
    from kombu import Connection

    sim = county.simulator(seed=16)
    events = [sim.good() for _ in range(3)]
    with Connection(county.uri, transport_options={"confirm_publish": True}) as conn:
        for p, encoding in zip(events, ("utf-8", "latin-1", "gzip"), strict=True):
            conn.Producer().publish(
                p.body,
                exchange="onegrid.intake",
                routing_key=p.routing_key,
                headers=p.headers,
                content_type="application/json",
                content_encoding=encoding,
                delivery_mode=2,
            )
    for p in events:
        case = wait_until(lambda p=p: _case_of(county, p), what=f"case for {p.event_id}")
        assert case["summary"] == json.loads(p.body)["summary"]
    assert requests.get(county.services.url("intake") + "/health", timeout=5).ok


# -- the official CloudEvents SDK (PyPI `cloudevents`) as the sender --------------------------------


def _sdk_event(county, p, **attrs):
    """The SDK's CloudEvent for planned event `p`, its id and source with what the HTTP binding
    must percent-encode (a space, `%`, `"`, non-ASCII)."""
    from cloudevents.core.v1.event import CloudEvent

    headers = {k[3:]: v for k, v in p.headers.items()}
    headers.update(id=f'{headers["id"]} 100% "食安"', source=headers["source"] + "/食品 安全", **attrs)
    headers.pop("time", None)
    return CloudEvent(attributes=headers, data=json.loads(p.body))


def test_the_same_event_from_the_cloudevents_sdk_binary_structured_batch_and_amqp_is_one_case(county):
    from cloudevents.core.bindings import http as ce_http
    from cloudevents.core.bindings import rabbitmq as ce_amqp
    from cloudevents.core.formats.json import JSONFormat

    sim, fmt = county.simulator(seed=31), JSONFormat()
    p = sim.good()
    before = county.store.stats().get("cases", 0)
    event = _sdk_event(county, p, datacontenttype="application/json; charset=utf-8")
    binary = ce_http.to_binary(event, fmt)
    assert "%" in binary.headers["ce-id"] and "%" in binary.headers["ce-source"]  # the SDK did encode them
    first = _post(county, binary.body, binary.headers)
    assert first.status_code == 201, first.text
    case = county.store.case(first.json()["case_id"])
    assert case["source"] == event.get_source() and first.json()["event_id"] == event.get_id()  # stored decoded

    structured = ce_http.to_structured(event, fmt)
    again = _post(county, structured.body, structured.headers)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate", again.text
    assert again.json()["case_id"] == case["id"]

    batch = _post(county, b"[" + structured.body + b"]", {"Content-Type": ce.BATCH})
    assert batch.status_code == 200 and batch.json()["results"][0]["case_id"] == case["id"], batch.text

    amqp = ce_amqp.to_binary(event, fmt)
    amqp_structured = ce_amqp.to_structured(event, fmt)
    for message in (amqp, amqp_structured):
        publish(
            county.uri,
            [dataclasses.replace(p, headers=message.headers, body=message.body, content_type=message.content_type)],
        )
    other = sim.good()  # published after them: once it is a case, intake has judged the two before it
    publish(county.uri, [other])
    wait_until(lambda: _case_of(county, other), what="the event published after them")
    time.sleep(1)  # intake runs handlers concurrently
    mine = [
        e
        for e in county.store.quarantined(count=10_000)
        if p.event_id in e["headers"] or p.event_id.encode() in e["body"]
    ]
    assert not mine, mine  # the AMQP binding's binary and structured messages were duplicates, not bad
    assert county.store.stats()["cases"] == before + 2  # this event's case and `other`'s


def test_a_json_media_type_with_parameters_is_json_in_both_modes(county):
    sim = county.simulator(seed=32)
    for mode in ("binary", "structured"):
        p = sim.good()
        if mode == "binary":
            resp = _post(county, p.body, {**p.headers, "Content-Type": "application/json; charset=utf-8"})
        else:
            doc = {k[3:]: v for k, v in p.headers.items()} | {
                "data": json.loads(p.body),
                "datacontenttype": "Application/JSON; charset=UTF-8",
            }
            resp = _post(county, json.dumps(doc).encode(), {"Content-Type": ce.STRUCTURED + "; charset=utf-8"})
        assert resp.status_code == 201, (mode, resp.text)
    p = sim.good()
    doc = {k[3:]: v for k, v in p.headers.items()} | {
        "data": json.loads(p.body),
        "datacontenttype": "application/json; charset=latin-1",
    }
    resp = _post(county, json.dumps(doc).encode(), {"Content-Type": ce.STRUCTURED})
    assert resp.status_code == 422 and resp.json()["reason"] == "invalid_attribute", resp.text


def _located(p, lat: float, lon: float):
    """The simulator's event without its grid, at (lat, lon) WGS84."""
    data = {k: v for k, v in json.loads(p.body).items() if k != "grid"}
    data["location"] = {"lat": lat, "lon": lon}
    return dataclasses.replace(p, body=json.dumps(data, ensure_ascii=False).encode())


def test_an_event_with_a_location_and_no_grid_is_placed_and_one_outside_is_quarantined_then_replayed(county):
    from onegrid.adapters.geo import shape_of

    geo = county.tenant.geography
    assert geo is not None
    spot = shape_of(geo.areas["410102-001-007-003"]).representative_point()
    sim = county.simulator(seed=21)
    inside, outside = _located(sim.good(), spot.y, spot.x), _located(sim.good(), 34.80, 113.70)
    resp = _post(county, inside.body, {**inside.headers, "Content-Type": "application/json"})
    assert resp.status_code == 201 and resp.json()["outcome"] == "registered", resp.text
    case = wait_until(lambda: _case_of(county, inside), what="the placed case")
    assert case["grid"] == "410102-001-007-003" and case["location"] == {"lat": spot.y, "lon": spot.x}

    publish(county.uri, [outside])  # over AMQP too: the same judgement
    entry = wait_until(
        lambda: [
            e
            for e in county.store.quarantined(reason="outside_county", count=10_000)
            if json.loads(e["headers"])["ce-id"] == outside.event_id
        ],
        what="outside_county",
    )[0]
    assert entry["body"] == outside.body and "lat 34.800000, lon 113.700000" in entry["detail"]

    # the county redraws a grid to take in the spot (an annexed block), intake restarts with it
    path = county.contracts / "tenants" / "zhongyuan-qinling.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    feature = next(f for f in doc["features"] if f["properties"].get("code") == "410102-001-011-004")
    block = [[[113.69, 34.79], [113.71, 34.79], [113.71, 34.81], [113.69, 34.81], [113.69, 34.79]]]
    feature["geometry"] = {"type": "MultiPolygon", "coordinates": [feature["geometry"]["coordinates"], block]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    county.services.restart("intake")
    assert cli(["--dir", str(county.contracts), "quarantine", "replay", county.id, "--reason", "outside_county"]) == 0
    case = wait_until(lambda: _case_of(county, outside), what="the replayed case")
    assert case["grid"] == "410102-001-011-004"
