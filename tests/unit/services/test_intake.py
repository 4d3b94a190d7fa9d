"""intake through fakes of its ports: admitted events become cases announced as
`case.registered`, rejected ones quarantine entries with their reason, a redelivery is the
same case; and the service's entrypoint keeps only the headers its transport vouches for."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from onegrid.adapters.nameko.reliable import USER_ID, Inbound
from onegrid.app.intake import Outcome
from onegrid.domain.cases import case_id
from onegrid.domain.intake import RawEvent, identity
from onegrid.kernel import topology, trace
from services.intake.service import IntakeService, http_status
from tests.unit.helpers import QINLING, registry

from .fakes import County, grid_report


@pytest.fixture
def county() -> County:
    return County(registry().tenants[QINLING], registry())


def _case_id(raw: RawEvent) -> str:
    return case_id(identity("governance", raw.headers["ce-source"], raw.headers["ce-id"]))


def test_an_admitted_event_becomes_a_case_and_is_announced(county):
    raw = grid_report(county, "evt-1")
    out = county.intake().ingest(raw, "governance")
    assert out.outcome == "registered" and out.case_id == _case_id(raw) and out.event_id == "evt-1"
    assert (out.department, out.category) == ("governance", "illegal_business")  # the metric labels
    assert out.public() == {"outcome": "registered", "case_id": out.case_id, "event_id": "evt-1"}
    case = county.store.case(out.case_id)
    assert case["status"] == "registered" and case["transport"] == "amqp"
    assert case["received_at"].endswith("Z") and county.store.timeline(out.case_id)[0]["action"] == "register"
    sent, told = county.bus.published
    assert (sent.exchange, sent.routing_key, sent.mandatory) == (topology.EVENTS, "case.registered", True)
    assert sent.env.id == f"{out.case_id}.registered" and sent.env.subject == out.case_id
    assert sent.env.source == f"/{QINLING}/intake" and sent.data == case
    assert not county.store.quarantined
    # the department that sent it is told: accepted, with the case, on its receipts queue
    assert (told.exchange, told.routing_key, told.mandatory) == (topology.RECEIPTS, "governance", True)
    assert (told.env.type, told.env.subject, told.env.id) == ("event.accepted", "evt-1", "evt-1.accepted")
    assert told.data["case_id"] == out.case_id and told.data["source"] == raw.headers["ce-source"]
    assert county.store.receipt("governance", "evt-1") == told.data


def _receipts(county: County) -> list:
    return [p for p in county.bus.published if p.exchange == topology.RECEIPTS]


def test_a_spoofed_event_is_quarantined_with_its_reason_and_nothing_else(county):
    raw = grid_report(county, "evt-2")
    out = county.intake().ingest(raw, "water")  # authenticated as water, claims governance
    assert (out.outcome, out.reason, out.department) == ("quarantined", "spoofed", "water")
    assert "claims department 'governance'" in out.detail
    assert out.public() == {"outcome": "quarantined", "reason": "spoofed", "detail": out.detail, "quarantine_id": "q-1"}
    [entry] = county.store.quarantined
    assert (entry["body"], entry["headers"], entry["reason"]) == (raw.body, raw.headers, "spoofed")
    assert entry["routing_key"] == raw.routing_key and entry["transport"] == "amqp"
    assert not county.store.records
    # the bus's history keeps the bytes with the reason (history.intake is bound to intake.quarantined)
    kept, told = county.bus.published
    assert (kept.exchange, kept.routing_key, kept.env.id) == (topology.EVENTS, topology.QUARANTINED, "q-1.quarantined")
    assert (kept.data["reason"], kept.data["department"], kept.data["routing_key"]) == (
        "spoofed",
        "water",
        raw.routing_key,
    )
    assert base64.b64decode(kept.data["body_base64"]) == raw.body and kept.data["headers"] == raw.headers
    # only the authenticated department is told, with the same detail the operator sees
    assert (told.exchange, told.routing_key, told.env.type) == (topology.RECEIPTS, "water", "event.quarantined")
    assert told.data == {
        "outcome": "quarantined",
        "department": "water",
        "event_id": "evt-2",
        "at": told.data["at"],
        "reason": "spoofed",
        "detail": entry["detail"],
        "quarantine_id": "q-1",
    }
    assert county.store.receipt("governance", "evt-2") is None


def test_an_event_no_department_authenticated_has_no_receipt(county):
    county.intake().ingest(grid_report(county, "evt-anon"), None)
    assert not _receipts(county) and not county.store.receipts


def test_an_expired_event_is_quarantined_unjudged_with_its_bytes_and_department(county):
    raw = grid_report(county, "evt-ttl")  # a good event: expired is about the broker, not the event
    out = county.intake().expired(raw, "governance", "5")
    assert (out.outcome, out.reason, out.department) == ("quarantined", "expired", "governance")
    [entry] = county.store.quarantined
    assert (entry["body"], entry["headers"], entry["reason"]) == (raw.body, raw.headers, "expired")
    assert not county.store.records
    [kept] = county.bus.published  # only the history's record, no case announced
    assert (kept.routing_key, kept.data["reason"]) == (topology.QUARANTINED, "expired")
    assert county.intake().expired(raw, "no_such_department").department == "unknown"  # a bounded label


def test_a_schema_violation_says_which_field(county):
    raw = grid_report(county, "evt-3", severity="catastrophic")
    out = county.intake().ingest(raw, "governance")
    assert (out.outcome, out.reason, out.department) == ("quarantined", "schema_violation", "governance")
    assert "severity" in out.detail


def test_the_same_bad_event_twice_is_one_quarantine_entry(county):
    raw = RawEvent(b"{not json", {"ce-id": "x"}, "application/json", "governance.grid_report_submitted")
    first, second = (county.intake().ingest(raw, "governance") for _ in range(2))
    assert first.reason == second.reason == "malformed_json"
    assert first.quarantine_id == second.quarantine_id and len(county.store.quarantined) == 1


def test_a_redelivered_event_is_the_same_case_announced_again_while_registered(county):
    raw = grid_report(county, "evt-4")
    first = county.intake().ingest(raw, "governance")
    again = county.intake().ingest(raw, "governance")
    assert (again.outcome, again.case_id, again.category) == ("duplicate", first.case_id, None)
    assert len(county.store.records) == 1
    # the first delivery may have died before announcing: the same announcement, same ce-id
    announced = [p.env.id for p in county.bus.published if p.exchange == topology.EVENTS]
    assert announced == [f"{first.case_id}.registered"] * 2
    # ... and before telling the department: the same receipt, same ce-id (the consumer dedups)
    assert [p.env.id for p in _receipts(county)] == ["evt-4.accepted"] * 2
    county.routing().case_registered(first.case_id)  # now dispatched: nothing more to announce
    county.bus.published.clear()
    assert county.intake().ingest(raw, "governance").outcome == "duplicate"
    assert [p.env.type for p in county.bus.published] == ["event.accepted"]


def test_an_id_reused_for_other_content_is_quarantined_and_the_case_untouched(county):
    first = county.intake().ingest(grid_report(county, "evt-5"), "governance")
    before = county.store.case(first.case_id)
    out = county.intake().ingest(grid_report(county, "evt-5", summary="something else entirely"), "governance")
    assert (out.outcome, out.reason) == ("quarantined", "id_reused")
    assert first.case_id in out.detail and county.store.case(first.case_id) == before


# -- a batch: judged first, registered with one store call, settled in order --------------


def test_the_same_event_twice_in_a_batch_is_one_case_and_a_duplicate(county):
    raw = grid_report(county, "evt-b1")
    first, again = county.intake().ingest_many([(raw, "governance"), (raw, "governance")])
    assert (first.outcome, again.outcome, again.case_id) == ("registered", "duplicate", first.case_id)
    assert len(county.store.records) == 1 and county.store.register_calls == [2]
    # as two deliveries one after the other: announced again while registered, told twice
    announced = [p.env.id for p in county.bus.published if p.exchange == topology.EVENTS]
    assert announced == [f"{first.case_id}.registered"] * 2
    assert [p.env.id for p in _receipts(county)] == ["evt-b1.accepted"] * 2


def test_an_id_reused_with_other_content_in_the_same_batch_is_quarantined(county):
    first, reused = county.intake().ingest_many(
        [
            (grid_report(county, "evt-b2"), "governance"),
            (grid_report(county, "evt-b2", summary="something else entirely"), "governance"),
        ]
    )
    assert first.outcome == "registered" and (reused.outcome, reused.reason) == ("quarantined", "id_reused")
    assert first.case_id in reused.detail and len(county.store.records) == 1
    assert county.store.case(first.case_id)["summary"] != "something else entirely"  # the case untouched
    [entry] = county.store.quarantined
    assert entry["reason"] == "id_reused"
    assert [p.env.type for p in county.bus.published] == [
        "case.registered",
        "event.accepted",
        topology.QUARANTINED,
        "event.quarantined",
    ]


def test_bad_and_good_events_in_a_batch_keep_their_order_and_only_the_good_are_registered(county):
    items = [
        (grid_report(county, "evt-b3", severity="catastrophic"), "governance"),
        (grid_report(county, "evt-b4"), "governance"),
        (grid_report(county, "evt-b5"), "water"),  # spoofed
        (grid_report(county, "evt-b6", seed=1), "governance"),
    ]
    outcomes = county.intake().ingest_many(items)
    assert [(o.outcome, o.reason) for o in outcomes] == [
        ("quarantined", "schema_violation"),
        ("registered", None),
        ("quarantined", "spoofed"),
        ("registered", None),
    ]
    assert [o.event_id for o in outcomes if o.outcome == "registered"] == ["evt-b4", "evt-b6"]
    assert county.store.register_calls == [2]  # the two accepted, in one call
    # each event's receipt in the batch's order, to the department that sent it
    assert [(p.routing_key, p.env.subject) for p in _receipts(county)] == [
        ("governance", "evt-b3"),
        ("governance", "evt-b4"),
        ("water", "evt-b5"),
        ("governance", "evt-b6"),
    ]


def test_a_batch_with_nothing_accepted_asks_the_store_to_register_nothing(county):
    [out] = county.intake().ingest_many([(grid_report(county, "evt-b7", severity="catastrophic"), "governance")])
    assert out.reason == "schema_violation" and county.store.register_calls == []
    assert county.intake().ingest_many([]) == []


def test_a_batch_of_one_is_ingest(monkeypatch):
    monkeypatch.setattr(trace, "child", lambda parent: "00-" + "1" * 32 + "-" + "2" * 16 + "-01")  # span ids are random
    raw, bad = grid_report(_fresh(), "evt-b8"), grid_report(_fresh(), "evt-b9", severity="catastrophic")
    alone, batched = _fresh(), _fresh()
    for event in (raw, raw, bad):
        assert alone.intake().ingest(event, "governance") == batched.intake().ingest_many([(event, "governance")])[0]
    assert alone.store.records == batched.store.records and alone.store.timelines == batched.store.timelines
    assert alone.store.quarantined == batched.store.quarantined and alone.store.receipts == batched.store.receipts
    assert _sent(alone) == _sent(batched)
    assert alone.usage.counts == batched.usage.counts


def _fresh() -> County:
    return County(registry().tenants[QINLING], registry())


def _sent(county: County) -> list:
    """What the county published, but for the envelopes' wall-clock time."""
    return [(replace(p.env, time=""), p.data, p.exchange, p.routing_key) for p in county.bus.published]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome("registered"), 201),
        (Outcome("duplicate"), 200),
        (Outcome("quarantined", reason="schema_violation"), 422),
        (Outcome("quarantined", reason="payload_too_large"), 413),
    ],
)
def test_the_http_answer_of_each_outcome(outcome, status):
    assert http_status(outcome) == status


# -- the entrypoint: transport in, use case, metrics out ------------------------------


def _service(county: County) -> Any:
    svc: Any = IntakeService()  # its dependencies: the fakes
    svc.ctx = SimpleNamespace(tenant=county.tenant, registry=county.registry, locator=None)
    svc.store, svc.bus, svc.usage = county.store, county.bus, county.usage
    return svc


def _count(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_amqp_entrypoint_keeps_what_the_broker_vouches_for_and_counts(county):
    raw = grid_report(county, "evt-6", severity="catastrophic")
    forged = {**raw.headers, USER_ID: f"{QINLING}.water", "x-delivery-count": 2, "x-og-attempt": 1}
    labels = {"tenant": QINLING, "department": "governance"}
    before = (
        _count("onegrid_intake_quarantined_total", **labels, reason="schema_violation"),
        _count("onegrid_intake_events_received_total", **labels, transport="amqp", outcome="quarantined"),
    )
    user = f"{QINLING}.governance"
    _service(county).on_department_event([Inbound(raw.body, forged, raw.content_type, raw.routing_key, True, user)])
    [entry] = county.store.quarantined
    assert entry["headers"] == {**raw.headers, USER_ID: user}  # the broker's user, not the forged one
    after = (
        _count("onegrid_intake_quarantined_total", **labels, reason="schema_violation"),
        _count("onegrid_intake_events_received_total", **labels, transport="amqp", outcome="quarantined"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1]


def test_the_entrypoint_counts_a_registered_case_once(county):
    raw = grid_report(county, "evt-7")
    labels = {"tenant": QINLING, "department": "governance"}
    before = _count("onegrid_cases_registered_total", **labels, category="illegal_business")
    svc = _service(county)
    for _ in range(2):
        svc.on_department_event(
            [Inbound(raw.body, raw.headers, raw.content_type, raw.routing_key, False, f"{QINLING}.governance")]
        )
    assert _count("onegrid_cases_registered_total", **labels, category="illegal_business") - before == 1
    assert json.loads(json.dumps(county.bus.published[0].data))["id"] == _case_id(raw)


def test_the_entrypoint_registers_a_batch_with_one_store_call(county):
    user = f"{QINLING}.governance"
    reports = [grid_report(county, f"evt-e{i}", seed=i) for i in range(3)]
    bad = grid_report(county, "evt-e-bad", severity="catastrophic")
    batch = [Inbound(r.body, r.headers, r.content_type, r.routing_key, False, user) for r in [*reports, bad]]
    _service(county).on_department_event(batch)
    assert county.store.register_calls == [3] and len(county.store.records) == 3
    assert [q["reason"] for q in county.store.quarantined] == ["schema_violation"]
    assert len(county.bus.of_type("case.registered")) == 3


def test_accepted_events_are_counted_per_contract_version_and_department(county):
    """Registered and resent: both are the department still sending that version; a quarantined
    event used no version."""
    raw = grid_report(county, "evt-9")
    key = raw.headers["ce-type"]
    labels = {"tenant": QINLING, "department": "governance", "event_type": key, "version": "1"}
    before = _count("onegrid_contract_events_total", **labels)
    svc = _service(county)
    for _ in range(2):
        svc.on_department_event(
            [Inbound(raw.body, raw.headers, raw.content_type, raw.routing_key, False, f"{QINLING}.governance")]
        )
    svc.on_department_event([Inbound(b"{}", raw.headers, raw.content_type, raw.routing_key, False, None)])
    assert _count("onegrid_contract_events_total", **labels) - before == 2
    assert county.usage.counts == {("governance", key, 1): 2}
    assert [u.events for u in county.usage.uses()] == [2]


def test_the_expired_entrypoint_quarantines_with_the_ttl_and_without_the_brokers_bookkeeping(county):
    raw = grid_report(county, "evt-8")
    death = [{"count": 1, "reason": "expired", "queue": "intake.events", "original-expiration": "1"}]
    dead = {**raw.headers, "x-death": death, "x-first-death-reason": "expired", "x-first-death-queue": "intake.events"}
    labels = {"tenant": QINLING, "department": "governance", "reason": "expired"}
    before = _count("onegrid_intake_quarantined_total", **labels)
    user = f"{QINLING}.governance"
    _service(county).on_expired_event(Inbound(raw.body, dead, raw.content_type, raw.routing_key, False, user))
    [entry] = county.store.quarantined
    assert entry["reason"] == "expired" and "of 1 ms" in entry["detail"] and entry["body"] == raw.body
    assert entry["headers"] == {**raw.headers, USER_ID: user}  # replayable as it was published, as its department
    assert _count("onegrid_intake_quarantined_total", **labels) - before == 1
