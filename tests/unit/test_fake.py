"""Sample data: every sample the fake makes must satisfy the contract it was made from."""

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onegrid.contracts.fields import compile_schema
from sim.fake import sample_field, sample_object, sample_regex

from .helpers import all_field_specs, registry

SEEDS = range(8)


def _contract_patterns() -> list[str]:
    patterns = {
        spec["pattern"] for c in registry().events.values() for spec in all_field_specs(c.fields) if "pattern" in spec
    }
    return sorted(patterns)


def test_contracts_use_patterns():
    patterns = _contract_patterns()
    assert "^1[3-9][0-9]{9}$" in patterns  # reporter.phone, nested (common.yaml)
    assert len(patterns) >= 4


@pytest.mark.parametrize("pattern", _contract_patterns())
def test_sample_regex_matches_every_contract_pattern(pattern):
    compiled = re.compile(pattern)
    samples = {sample_regex(pattern, random.Random(seed)) for seed in range(300)}
    for s in samples:
        assert compiled.fullmatch(s), (pattern, s)
    assert len(samples) > 1  # it varies with the seed


@pytest.mark.parametrize(
    "pattern",
    [
        r"[0-9]{3}",
        r"\d{2}-\d{4}",
        r"(ab|cd){2}x?",
        r"^(red|green|blue)$",
        r"[A-F0-9]{4}-[a-z]+",
        r"a*b+c?",
        r"(?:x|yz){1,3}",
        r"[-_a-z0-9]{6,32}",
        r"Q\.[0-9]{2}",
    ],
)
def test_sample_regex_matches_other_patterns(pattern):
    for seed in range(200):
        s = sample_regex(pattern, random.Random(seed))
        assert re.fullmatch(pattern.strip("^$"), s), (pattern, s)


def test_sample_regex_is_deterministic_per_seed():
    p = "^[0-9A-Za-z-]{6,32}$"
    assert sample_regex(p, random.Random(5)) == sample_regex(p, random.Random(5))


def test_sample_regex_handles_negated_classes():
    for pattern in (r"[^,]{3}", r"[^0-9]{2}"):
        for seed in range(20):
            s = sample_regex(pattern, random.Random(seed))
            assert re.fullmatch(pattern, s), (pattern, s)


@pytest.mark.parametrize("key", sorted(k for k, _ in registry().events))
def test_sample_object_validates_against_its_contract(key):
    contract = registry().events[(key, 1)]
    for seed in SEEDS:
        data = sample_object(contract.fields, random.Random(seed))
        assert contract.schema.validate(data) == {}, (key, seed, data)
        required = {n for n, s in contract.fields.items() if s.get("required")}
        assert required <= set(data)


def test_every_contract_is_sampled():
    assert len({k for k, _ in registry().events}) == 39
    assert len(registry().events) == 40  # market_regulation.food_safety_hazard_found has a version 2


def test_optional_fields_are_sometimes_present_and_sometimes_not():
    contract = registry().events[("governance.grid_report_submitted", 1)]
    present = [("location" in sample_object(contract.fields, random.Random(s))) for s in range(40)]
    assert any(present) and not all(present)


def test_sample_object_uses_fixed_values_only_for_declared_fields():
    contract = registry().events[("water.flood_risk_reported", 1)]
    fixed = {"grid": "410102-001-001-001", "severity": "critical", "category": "dispute"}
    data = sample_object(contract.fields, random.Random(1), fixed)
    assert data["grid"] == "410102-001-001-001" and data["severity"] == "critical"
    assert "category" not in data  # a fixed-category contract has no category field
    assert contract.schema.validate(data) == {}


def _without_times(specs, data):
    return {k: v for k, v in data.items() if specs[k]["type"] not in ("datetime", "date")}


def test_sample_object_is_deterministic_per_seed():
    contract = registry().events[("market_regulation.unlicensed_business_reported", 1)]
    a = sample_object(contract.fields, random.Random(9))
    b = sample_object(contract.fields, random.Random(9))
    assert _without_times(contract.fields, a) == _without_times(contract.fields, b)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**6), 10**6), st.integers(0, 10**6))
def test_sample_integer_within_bounds(lo, width):
    spec = {"type": "integer", "min": lo, "max": lo + width}
    value = sample_field(spec, random.Random(lo))
    assert lo <= value <= lo + width and compile_schema({"n": spec}).validate({"n": value}) == {}


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60))
def test_sample_string_within_lengths(lo, extra):
    spec = {"type": "string", "min_length": lo, "max_length": max(lo + extra, 1)}
    value = sample_field(spec, random.Random(extra))
    assert compile_schema({"s": spec}).validate({"s": value}) == {}, value


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3), st.integers(0, 6))
def test_sample_list_within_items(lo, extra):
    spec = {"type": "list", "min_items": lo, "max_items": lo + extra, "items": {"type": "url"}}
    value = sample_field(spec, random.Random(extra))
    assert compile_schema({"l": spec}).validate({"l": value}) == {}


@pytest.mark.parametrize("spec", [{"type": "integer", "min": 1900}, {"type": "integer", "max": -5}])
def test_sample_integer_with_one_bound(spec):
    value = sample_field(spec, random.Random(1))
    assert compile_schema({"n": spec}).validate({"n": value}) == {}


def test_sample_number_with_only_a_negative_max():
    spec = {"type": "number", "max": -5}
    assert all(sample_field(spec, random.Random(s)) <= -5 for s in range(20))


def test_sample_list_with_min_items_above_three():
    spec = {"type": "list", "min_items": 5, "max_items": 9, "items": {"type": "boolean"}}
    assert 5 <= len(sample_field(spec, random.Random(1))) <= 9
