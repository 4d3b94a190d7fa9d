"""The registry's use cases through fakes of their ports: reads, intake's verdict without the
bus, compatibility findings, publishing (checked, stored once, announced), retiring (refused
while in use), and the retirement decision itself."""

from __future__ import annotations

import json

import pytest
from marshmallow import ValidationError

from onegrid.app.publishing import ContractRegistry, split_key
from onegrid.app.registry import load
from onegrid.contracts import Overlay
from onegrid.domain.intake import RawEvent
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.versions import DAY, Use, parse_field, retire_refusal
from onegrid.kernel import envelope as ce
from tests.unit.helpers import CONTRACTS, QINLING
from tests.unit.services.fakes import FakeBus, FakeClock, FakeUsage

KEY = "market_regulation.food_safety_hazard_found"


class FakePublished(FakeUsage):
    """The PublishedStore port in memory."""

    def __init__(self):
        super().__init__()
        self.rev, self.events, self.manifests, self.retired = 0, {}, {}, set()

    def revision(self) -> int:
        return self.rev

    def overlay(self) -> Overlay:
        by_dept: dict[str, list] = {}
        for _, (dept, entry) in sorted(self.events.items()):
            by_dept.setdefault(dept, []).append(entry)
        return Overlay(
            {d: tuple(e) for d, e in by_dept.items()}, dict(self.manifests), frozenset(self.retired), self.rev
        )

    def published_version(self, key, version):
        found = self.events.get((key, version))
        return found[1] if found else None

    def add_version(self, department, key, version, entry):
        if (key, version) in self.events:
            return False, self.rev
        self.events[(key, version)] = (department, json.loads(json.dumps(entry)))
        self.rev += 1
        return True, self.rev

    def put_manifest(self, doc):
        self.manifests[QINLING] = doc
        self.rev += 1
        return self.rev

    def retire(self, key, version):
        if (key, version) in self.retired:
            return False, self.rev
        self.retired.add((key, version))
        self.rev += 1
        return True, self.rev


@pytest.fixture
def reg():
    published, bus, clock = FakePublished(), FakeBus(), FakeClock()
    registry, problems = load(CONTRACTS)
    assert problems == []
    return ContractRegistry(QINLING, CONTRACTS, registry, published, bus, clock)


def _reload(reg: ContractRegistry) -> ContractRegistry:
    """What the services do on `registry.changed`: load again with what is published."""
    registry, problems = load(CONTRACTS, reg.published.overlay())
    assert problems == []
    reg.registry = registry
    return reg


def _v3(**fields) -> dict:
    v2 = reg_fields()
    return {"summary": "With the inspector's id.", "category": "food_safety", "fields": {**v2, **fields}}


def reg_fields() -> dict:
    registry, _ = load(CONTRACTS)
    return json.loads(json.dumps(registry.events[(KEY, 2)].own_fields))


def test_contracts_list_every_enabled_event_type_with_its_versions(reg):
    listed = {c["key"]: c for c in reg.contracts()["contracts"]}
    assert [v["version"] for v in listed[KEY]["versions"]] == [1, 2]
    assert all(v["released"] for v in listed[KEY]["versions"])
    one = reg.version(KEY, 2)
    assert one["dataschema"] == ce.dataschema(KEY, 2)
    assert one["schema"]["additionalProperties"] is False and "batch_no" in one["schema"]["properties"]
    with pytest.raises(LookupError, match="known: \\[1, 2\\]"):
        reg.version(KEY, 9)
    with pytest.raises(LookupError):
        split_key("no-dots")


def test_validate_gives_intakes_reasons_and_touches_nothing(reg):
    contract = reg.registry.events[(KEY, 1)]
    grid = reg.tenant.grids()[0].code
    data = {
        "grid": grid,
        "severity": "minor",
        "summary": "expired milk",
        "occurred_at": "2024-05-01T08:00:00+08:00",
        "reporter": {"kind": "department_staff", "id": "mr-7"},
        "business_name": "shop",
        "hazard": "expired",
    }
    env = ce.new(tenant=QINLING, department="market_regulation", type=KEY, source="/mr", version=1)
    raw = RawEvent(json.dumps(data).encode(), env.headers(), ce.JSON, None, "http")
    assert reg.validate(raw, "market_regulation")["outcome"] == "valid"
    assert reg.validate(raw, None)["outcome"] == "valid"  # a person checks the content only
    spoofed = reg.validate(raw, "water")
    assert (spoofed["outcome"], spoofed["reason"]) == ("invalid", "spoofed")
    bad = RawEvent(json.dumps({**data, "hazard": "mould"}).encode(), env.headers(), ce.JSON, None, "http")
    verdict = reg.validate(bad, "market_regulation")
    assert verdict["reason"] == "schema_violation" and "hazard" in verdict["detail"]
    assert reg.bus.published == [] and contract.version == 1


def test_compatibility_finds_a_required_field_added(reg):
    found = reg.compatibility(KEY, _v3(inspector={"type": "string", "required": True, "max_length": 20}))
    assert (found["version"], found["mode"], found["against"], found["compatible"]) == (3, "BACKWARD", [2], False)
    assert [(f["rule"], f["path"]) for f in found["findings"]] == [("required_field_added", "inspector")]
    fine = reg.compatibility(KEY, _v3(inspector={"type": "string", "required": False, "max_length": 20}))
    assert fine["compatible"] and fine["findings"] == []
    with pytest.raises(ValidationError):
        reg.compatibility(KEY, {"summary": "x", "fields": {"a": {"type": "text"}}})


def test_publish_stores_once_announces_and_refuses_a_break_or_a_change(reg):
    with pytest.raises(ValidationError) as refused:
        reg.publish_version(KEY, _v3(inspector={"type": "string", "required": True, "max_length": 20}), "admin-1")
    assert "adds required field 'inspector'" in json.dumps(refused.value.messages)
    assert reg.published.rev == 0 and reg.bus.published == []

    proposal = _v3(inspector={"type": "string", "required": False, "max_length": 20})
    change = reg.publish_version(KEY, proposal, "admin-1")
    assert (change.outcome, change.revision, change.detail) == ("published", 1, {"key": KEY, "version": 3})
    (sent,) = reg.bus.published
    assert sent.env.type == "registry.changed" and sent.data["revision"] == 1 and sent.data["actor"] == "admin-1"
    assert sent.mandatory is False
    _reload(reg)
    assert reg.registry.versions(KEY) == [1, 2, 3]
    assert reg.publish_version(KEY, {**proposal, "version": 3}, "admin-1").outcome == "unchanged"
    with pytest.raises(TransitionRefused, match="immutable"):
        reg.publish_version(KEY, {**proposal, "version": 3, "summary": "edited"}, "admin-1")
    with pytest.raises(ValidationError, match="next version"):
        reg.publish_version(KEY, {**proposal, "version": 7}, "admin-1")
    with pytest.raises(LookupError):
        reg.publish_version("market_regulation.nothing_like_it", proposal, "admin-1")


def test_retire_is_refused_while_a_department_sent_the_version_recently(reg):
    reg.published.record_use("market_regulation", KEY, 1, reg.clock.now() - 2 * DAY)
    with pytest.raises(TransitionRefused, match="in use: market_regulation sent it within the last 30 days"):
        reg.retire(KEY, 1, "admin-1")
    assert [u["events"] for u in reg.usage(KEY)["uses"]] == [1]
    with pytest.raises(LookupError):
        reg.usage("market_regulation.not_an_event_type")
    reg.published.last[("market_regulation", KEY, 1)] = reg.clock.now() - 31 * DAY
    assert reg.retire(KEY, 1, "admin-1").outcome == "retired"
    _reload(reg)
    assert reg.registry.versions(KEY) == [2] and (KEY, 1) in reg.registry.retired
    assert reg.retire(KEY, 1, "admin-1").outcome == "unchanged"
    with pytest.raises(TransitionRefused, match="only version"):
        reg.retire(KEY, 2, "admin-1")


def test_a_published_manifest_must_load_and_be_this_countys(reg):
    with pytest.raises(ValidationError):
        reg.publish_manifest({"tenant": "suining-jincheng"}, "admin-1")
    with pytest.raises(ValidationError) as refused:
        reg.publish_manifest({"tenant": QINLING, "name": "x"}, "admin-1")
    assert refused.value.messages["problems"]
    assert reg.published.rev == 0


def test_retire_refusal_and_the_counter_names():
    now = 1_000_000.0
    uses = [Use(KEY, 1, "market_regulation", 5, now - 40 * DAY), Use(KEY, 2, "water", 1, now - DAY)]
    assert retire_refusal(uses, KEY, 1, now) is None
    assert "water" in (retire_refusal(uses, KEY, 2, now) or "")
    assert retire_refusal(uses, KEY, 2, now, days=0) is None
    assert parse_field(f"{KEY}:2|water") == (KEY, 2, "water")
    assert parse_field("junk") is None


class AskedHistory:
    """A HistoryReader with nothing kept that remembers from when each stream was read."""

    def __init__(self):
        self.asked: list[tuple[str, float | None]] = []

    def read(self, stream, since=None, offset=None):
        self.asked.append((stream, since))
        return iter(())


def test_whatif_manifest_checks_like_publishing_reads_the_window_and_publishes_nothing(reg):
    history = AskedHistory()
    with pytest.raises(ValidationError):
        reg.whatif_manifest({"tenant": "suining-jincheng"}, history, 30)
    with pytest.raises(ValidationError) as refused:
        reg.whatif_manifest({"tenant": QINLING, "name": "x"}, history, 30)
    assert refused.value.messages["problems"] and history.asked == []
    doc = reg.manifest()
    for rule in doc["routing"]:
        rule["departments"], rule["alternates"] = ["health"], []
    result = reg.whatif_manifest(doc, history, 7)
    assert result.current.cases == result.proposed.cases == 0
    assert {since for _, since in history.asked} == {reg.clock.now() - 7 * DAY}
    assert set(result.as_dict()) == {"current", "proposed", "summary", "work_orders", "points"}
    assert reg.published.rev == 0 and reg.bus.published == []
