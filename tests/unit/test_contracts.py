"""The contracts loader: the real repository contracts, broken copies, and compiled schemas."""

import copy
from datetime import datetime

import pytest
from marshmallow import Schema, ValidationError

from onegrid.app.registry import load, load_strict
from onegrid.cli.main import main as cli
from onegrid.contracts import ContractsInvalid, Problem
from onegrid.contracts.fields import compile_schema

from .helpers import CONTRACTS, copy_contracts, edit_yaml, problems_of, read_yaml, registry, sample_data

COMMON = ("grid", "severity", "summary", "occurred_at", "location", "reporter", "evidence_urls")
MR = "departments/market_regulation.yaml"
GOV = "departments/governance.yaml"
WATER = "departments/water.yaml"


# -- the real contracts -------------------------------------------------------------


def test_real_contracts_load_without_problems():
    reg, problems = load(CONTRACTS)
    assert problems == []
    assert len(reg.departments) == 16
    assert len(reg.categories) == 20
    assert set(reg.tenants) == {"suining-jincheng", "zhongyuan-qinling", "penglai", "jifeng", "taiyuan"}


def test_every_department_has_at_least_two_compiled_event_types():
    reg = registry()
    for dept in reg.departments:
        contracts = reg.event_types(dept)
        assert len(contracts) >= 2, dept
        for c in contracts:
            assert isinstance(c.schema, Schema)
            assert reg.events[(c.key, c.version)] is c
            assert c.key == f"{dept}.{c.type}"


def test_every_department_yaml_file_is_registered():
    files = {p.stem for p in (CONTRACTS / "departments").glob("*.yaml")}
    assert files == set(registry().departments)
    declared = sum(len(read_yaml(CONTRACTS / "departments" / f"{d}.yaml")["events"]) for d in files)
    assert declared == len(registry().events)


def test_every_event_type_carries_the_common_fields_and_one_category_form():
    reg = registry()
    for c in reg.events.values():
        assert set(COMMON) <= set(c.fields), c.key
        if c.category is None:
            spec = c.fields["category"]
            assert spec["type"] == "enum" and spec["required"] is True
            assert set(spec["values"]) <= set(reg.categories)
        else:
            assert c.category in reg.categories and "category" not in c.fields


def test_general_reporters_choose_their_category():
    reg = registry()
    assert reg.events[("governance.grid_report_submitted", 1)].category is None
    assert reg.events[("governance.hotline_order_received", 1)].category is None
    assert reg.events[("market_regulation.unlicensed_business_reported", 1)].category == "illegal_business"


def test_versions_lists_known_versions():
    reg = registry()
    assert reg.versions("water.flood_risk_reported") == [1]
    assert reg.versions("water.no_such_event") == []


def test_load_strict_accepts_real_and_raises_on_broken(tmp_path):
    assert len(load_strict(CONTRACTS).events) == len(registry().events)
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][0].update(version=0))
    with pytest.raises(ContractsInvalid) as info:
        load_strict(root)
    assert [(p.file, p.path) for p in info.value.problems] == [(f"contracts/{WATER}", "events[0].version")]
    assert "events[0].version" in str(info.value)


def test_problem_str_is_file_path_reason():
    assert str(Problem("contracts/x.yaml", "events[0]", "bad")) == "contracts/x.yaml: events[0]: bad"


# -- broken copies: one problem each, in the right file at the right path --------------


def _only(root, file):
    """The problems of the whole tree; asserts they all belong to `file`."""
    problems = problems_of(root)
    assert problems, "expected a problem"
    assert {p.file for p in problems} == {f"contracts/{file}"}, problems
    return problems


def _field(name):
    return lambda d: d["events"][0]["fields"][name]


def test_unknown_field_type(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: _field("business_name")(d).update(type="text"))
    [p] = _only(root, MR)
    assert p.path == "events[0].fields.business_name.type" and "unknown type 'text'" in p.reason


def test_string_needs_max_length_or_pattern(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: _field("business_name")(d).pop("max_length"))
    [p] = _only(root, MR)
    assert p.path == "events[0].fields.business_name" and "max_length or pattern" in p.reason


def test_string_with_only_a_pattern_is_fine(tmp_path):
    root = copy_contracts(tmp_path)

    def pattern_instead_of_max_length(doc):
        spec = _field("business_name")(doc)
        del spec["max_length"]
        spec["pattern"] = "^[a-z]+$"

    edit_yaml(root / MR, pattern_instead_of_max_length)
    reg, problems = load(root)
    assert problems == []
    schema = reg.events[("market_regulation.unlicensed_business_reported", 1)].schema
    assert "business_name" in schema.validate({"business_name": "ABC"})


def test_list_needs_max_items(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(
        root / MR,
        lambda d: d["events"][0]["fields"].update(tags={"type": "list", "items": {"type": "string", "max_length": 5}}),
    )
    [p] = _only(root, MR)
    assert p.path == "events[0].fields.tags" and "max_items" in p.reason


def test_list_needs_items(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: d["events"][0]["fields"].update(tags={"type": "list", "max_items": 2}))
    [p] = _only(root, MR)
    assert p.path == "events[0].fields.tags.items"


def test_bad_list_item_spec_is_found_inside_the_list(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(
        root / MR,
        lambda d: d["events"][0]["fields"].update(tags={"type": "list", "max_items": 2, "items": {"type": "string"}}),
    )
    [p] = _only(root, MR)
    assert p.path == "events[0].fields.tags.items"


@pytest.mark.parametrize(
    "field,low,high,bounds",
    [
        ("workers_on_site", "min", "max", (10, 1)),
        ("product", "min_length", "max_length", (50, 10)),
    ],
)
def test_min_greater_than_max(tmp_path, field, low, high, bounds):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: d["events"][2]["fields"][field].update({low: bounds[0], high: bounds[1]}))
    [p] = _only(root, MR)
    assert p.path == f"events[2].fields.{field}.{low}" and "greater than" in p.reason


def test_non_numeric_bound(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: d["events"][2]["fields"]["workers_on_site"].update(max="lots"))
    [p] = _only(root, MR)
    assert p.path == "events[2].fields.workers_on_site.max" and "must be a number" in p.reason


def test_bad_regex(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: _field("licence_no")(d).update(pattern="^[0-9A-Z{18}$"))
    [p] = _only(root, MR)
    assert p.path == "events[0].fields.licence_no.pattern" and "regular expression" in p.reason


def test_unknown_fixed_category(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: d["events"][0].update(category="tourism"))
    [p] = _only(root, MR)
    assert p.path == "events[0].category" and "unknown category 'tourism'" in p.reason


def test_unknown_category_in_category_field(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / GOV, lambda d: _field("category")(d)["values"].append("tourism"))
    [p] = _only(root, GOV)
    assert p.path == "events[0].fields.category.values" and "tourism" in p.reason


def test_category_field_must_be_required_enum(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / GOV, lambda d: _field("category")(d).update(required=False))
    [p] = _only(root, GOV)
    assert p.path == "events[0].fields.category" and "required enum" in p.reason


def test_both_category_forms(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / GOV, lambda d: d["events"][0].update(category="other"))
    [p] = _only(root, GOV)
    assert p.path == "events[0]" and "exactly one" in p.reason


def test_neither_category_form(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: d["events"][1].pop("category"))
    [p] = _only(root, MR)
    assert p.path == "events[1]" and "exactly one" in p.reason


@pytest.mark.parametrize("common", ["grid", "severity", "reporter"])
def test_redeclared_common_field(tmp_path, common):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][1]["fields"].update({common: {"type": "string", "max_length": 5}}))
    [p] = _only(root, WATER)
    assert p.path == f"events[1].fields.{common}" and "common case field" in p.reason


def test_department_id_must_equal_file_name(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d.update(department="waterworks"))
    problems = problems_of(root, WATER)
    assert [(p.path, p.reason) for p in problems] == [("department", "'waterworks' must equal the file name 'water'")]


def test_duplicate_type_and_version(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"].append(copy.deepcopy(d["events"][0])))
    [p] = _only(root, WATER)
    assert p.path == "events[2]" and "declared twice" in p.reason


def test_same_type_other_version_is_fine(tmp_path):
    root = copy_contracts(tmp_path)

    def add_v2(d):
        v2 = copy.deepcopy(d["events"][0])
        v2["version"] = 2
        d["events"].append(v2)

    edit_yaml(root / WATER, add_v2)
    reg, problems = load(root)
    assert problems == []
    assert reg.versions("water.drainage_fault_reported") == [1, 2]


def test_yaml_syntax_error(tmp_path):
    root = copy_contracts(tmp_path)
    (root / WATER).write_text("department: water\nevents: [\n  {type: x\n", encoding="utf-8")
    problems = problems_of(root, WATER)
    assert len(problems) == 1
    assert problems[0].path == "$" and "cannot be read as YAML" in problems[0].reason
    assert "\n" not in problems[0].reason


@pytest.mark.parametrize("key", ["maxlength", "min"])
def test_unknown_key_in_field_spec(tmp_path, key):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: _field("business_name")(d).update({key: 10}))
    [p] = _only(root, MR)
    assert p.path == f"events[0].fields.business_name.{key}" and "not an attribute of a string field" in p.reason


def test_unknown_key_in_event(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][1].update(priority="high"))
    [p] = _only(root, WATER)
    assert p.path == "events[1].priority" and "unknown key" in p.reason


@pytest.mark.parametrize("version", [0, -1, "1", True, None])
def test_bad_version(tmp_path, version):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][1].update(version=version))
    [p] = _only(root, WATER)
    assert p.path == "events[1].version"


def test_bad_event_type_name(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][1].update(type="Flood-Risk"))
    [p] = _only(root, WATER)
    assert p.path == "events[1].type"


def test_enum_values_must_be_non_empty_and_unique(tmp_path):
    root = copy_contracts(tmp_path)

    def change(d):
        d["events"][0]["fields"]["facility"]["values"] = []
        d["events"][1]["fields"]["hazard"]["values"] = ["other", "other"]

    edit_yaml(root / WATER, change)
    problems = _only(root, WATER)
    assert [(p.path, "repeat" in p.reason) for p in problems] == [
        ("events[0].fields.facility.values", False),
        ("events[1].fields.hazard.values", True),
    ]


def test_a_department_declares_at_least_two_events(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"].pop())
    [p] = _only(root, WATER)
    assert p.path == "events" and "at least two" in p.reason


def test_broken_event_is_not_registered_but_its_sibling_is(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][0].update(category="tourism"))
    reg, problems = load(root)
    assert len(problems) == 1
    assert ("water.drainage_fault_reported", 1) not in reg.events
    assert ("water.flood_risk_reported", 1) in reg.events


def test_broken_common_fields(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / "common.yaml", lambda d: d["case_fields"]["grid"].pop("max_length"))  # no bound left
    problems = problems_of(root)
    assert [(p.file, p.path) for p in problems] == [("contracts/common.yaml", "case_fields.grid")]
    assert "max_length or pattern" in problems[0].reason


def test_unknown_type_in_common_fields_is_reported_not_a_crash(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / "common.yaml", lambda d: d["case_fields"]["grid"].update(type="strng"))
    problems = problems_of(root, "common.yaml")
    assert [p.path for p in problems] == ["case_fields.grid.type"]


def test_category_with_unknown_key(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / "categories.yaml", lambda d: d["categories"][0].update(colour="red"))
    problems = problems_of(root, "categories.yaml")
    assert [p.path for p in problems] == ["categories[0]"] and "unknown keys" in problems[0].reason


def test_event_fields_as_a_list_is_reported_not_a_crash(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / WATER, lambda d: d["events"][1].update(fields=["hazard", "water_depth_cm"]))
    problems = problems_of(root, WATER)
    assert [p.path for p in problems] == ["events[1].fields"]


def test_category_field_not_a_map_is_reported_not_a_crash(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / GOV, lambda d: d["events"][0]["fields"].update(category="enum"))
    problems = problems_of(root, GOV)
    assert problems and all(p.path.startswith("events[0].fields.category") for p in problems)


# -- the CLI check --------------------------------------------------------------------


def test_cli_check_on_real_contracts(capsys):
    assert cli(["--dir", str(CONTRACTS), "contracts", "check"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: 16 departments") and f"{len(registry().tenants)} tenants" in out
    assert err == ""


def test_cli_check_on_broken_copy(tmp_path, capsys):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: _field("business_name")(d).update(type="text"))
    edit_yaml(root / WATER, lambda d: d["events"][1].update(priority="high"))
    assert cli(["--dir", str(root), "contracts", "check"]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert f"contracts/{MR}: events[0].fields.business_name.type: unknown type 'text'" in err
    assert any(line.startswith(f"contracts/{WATER}: events[1].priority: unknown key") for line in lines)
    assert lines[-1] == f"2 problem(s) in {root}"
    assert out == ""


# -- compiled schemas -------------------------------------------------------------------


def _errors(specs, value):
    return compile_schema(specs).validate(value)


@pytest.mark.parametrize(
    "value,ok",
    [(5, True), (0, True), ("5", False), (5.5, False), (True, False), (False, False), (None, False), ([5], False)],
)
def test_integer_is_strict(value, ok):
    assert (_errors({"n": {"type": "integer"}}, {"n": value}) == {}) is ok


@pytest.mark.parametrize(
    "value,ok", [(1.5, True), (2, True), (-0.25, True), ("1.5", False), (True, False), (None, False)]
)
def test_number_is_strict(value, ok):
    assert (_errors({"x": {"type": "number"}}, {"x": value}) == {}) is ok


@pytest.mark.parametrize(
    "value,ok", [(True, True), (False, True), ("yes", False), ("true", False), (1, False), (0, False)]
)
def test_boolean_is_strict(value, ok):
    assert (_errors({"b": {"type": "boolean"}}, {"b": value}) == {}) is ok


def test_unknown_fields_refused_at_top_and_nested():
    specs = {"a": {"type": "integer"}, "o": {"type": "object", "fields": {"b": {"type": "integer"}}}}
    assert _errors(specs, {"a": 1, "typo": 2}) == {"typo": ["Unknown field."]}
    assert _errors(specs, {"o": {"b": 1, "c": 2}}) == {"o": {"c": ["Unknown field."]}}


def test_required_fields():
    specs = {"a": {"type": "integer", "required": True}, "b": {"type": "integer"}}
    assert set(_errors(specs, {})) == {"a"}
    assert _errors(specs, {"a": 1}) == {}


def test_enum():
    specs = {"e": {"type": "enum", "values": ["x", "y"]}}
    assert _errors(specs, {"e": "x"}) == {}
    assert "e" in _errors(specs, {"e": "z"})
    assert "e" in _errors(specs, {"e": "X"})
    assert "e" in _errors(specs, {"e": 1})


@pytest.mark.parametrize("value,ok", [("ab", True), ("abcd", True), ("a", False), ("abcde", False), (5, False)])
def test_string_lengths(value, ok):
    assert (_errors({"s": {"type": "string", "min_length": 2, "max_length": 4}}, {"s": value}) == {}) is ok


@pytest.mark.parametrize("value,ok", [(0, True), (10, True), (-1, False), (11, False)])
def test_ranges(value, ok):
    assert (_errors({"n": {"type": "integer", "min": 0, "max": 10}}, {"n": value}) == {}) is ok
    assert (_errors({"x": {"type": "number", "min": 0, "max": 10}}, {"x": value + 0.0}) == {}) is ok


@pytest.mark.parametrize("pattern", ["[0-9]{3}", "^[0-9]{3}", "[0-9]{3}$", "^[0-9]{3}$"])
@pytest.mark.parametrize("value,ok", [("123", True), ("1234", False), ("a123", False), ("123a", False), ("12", False)])
def test_pattern_must_match_the_whole_value(pattern, value, ok):
    assert (_errors({"s": {"type": "string", "pattern": pattern}}, {"s": value}) == {}) is ok


def test_real_grid_is_bounded_and_held_to_the_tree():
    """The grid code has as many parts as the tenant's ladder (Taiyuan's five), so the contract
    only bounds it; intake holds it to the tenant's tree (unknown_grid, test_intake.py)."""
    schema = registry().events[("water.flood_risk_reported", 1)].schema
    base = sample_data(registry().events[("water.flood_risk_reported", 1)], registry().tenants["zhongyuan-qinling"])
    assert schema.validate(base) == {}
    assert schema.validate({**base, "grid": "140100-06-001-002-001"}) == {}  # Taiyuan's five parts
    assert "grid" in schema.validate({**base, "grid": "4" * 65})


def test_pattern_with_alternation_matches_the_whole_value():
    assert "s" in _errors({"s": {"type": "string", "pattern": "cat|dog"}}, {"s": "caterpillar"})


def test_pattern_refuses_a_trailing_newline():
    contract = registry().events[("water.flood_risk_reported", 1)]
    data = sample_data(contract, registry().tenants["zhongyuan-qinling"])
    data["reporter"] = {"kind": "citizen", "id": "c-1", "phone": "13800138000\n"}
    assert "reporter" in contract.schema.validate(data)


def test_nested_object_errors_name_the_nested_field():
    contract = registry().events[("water.flood_risk_reported", 1)]
    data = sample_data(contract, registry().tenants["zhongyuan-qinling"])
    data["reporter"] = {"kind": "alien", "id": ""}
    data["location"] = {"lat": 91, "lon": 0}
    errors = contract.schema.validate(data)
    assert set(errors) == {"reporter", "location"}
    assert set(errors["reporter"]) == {"kind", "id"} and set(errors["location"]) == {"lat"}


@pytest.mark.parametrize(
    "url,ok",
    [
        ("http://a.example.com/x.jpg", True),
        ("https://a.example.com/x", True),
        ("ftp://a.example.com/x", False),
        ("file:///etc/passwd", False),
        ("javascript:alert(1)", False),
        ("/relative/x.jpg", False),
    ],
)
def test_url_schemes_http_and_https_only(url, ok):
    assert (_errors({"u": {"type": "url"}}, {"u": url}) == {}) is ok


def test_list_of_urls_errors_name_the_index():
    specs = {"l": {"type": "list", "max_items": 2, "items": {"type": "url"}}}
    assert _errors(specs, {"l": ["https://a.example.com/1"]}) == {}
    assert set(_errors(specs, {"l": ["https://a.example.com/1", "ftp://b.example.com/2"]})["l"]) == {1}
    assert "l" in _errors(specs, {"l": ["https://a.example.com/1"] * 3})


@pytest.mark.parametrize(
    "value,ok",
    [
        ("2024-05-01T08:00:00+08:00", True),
        ("2024-05-01T00:00:00Z", True),
        ("2024-05-01T08:00:00", False),
        ("2024-05-01", False),
        ("not a time", False),
        (1714521600, False),
    ],
)
def test_datetime_must_be_aware(value, ok):
    assert (_errors({"t": {"type": "datetime"}}, {"t": value}) == {}) is ok


def test_load_returns_parsed_aware_datetime():
    loaded = compile_schema({"t": {"type": "datetime"}}).load({"t": "2024-05-01T08:00:00+08:00"})
    assert isinstance(loaded["t"], datetime) and loaded["t"].utcoffset().total_seconds() == 8 * 3600


@pytest.mark.parametrize(
    "value,ok", [("2024-05-01", True), ("2024-5-1", False), ("2024-05-01T00:00:00", False), ("01/05/2024", False)]
)
def test_date(value, ok):
    assert (_errors({"d": {"type": "date"}}, {"d": value}) == {}) is ok


def test_date_is_only_yyyy_mm_dd():
    assert "d" in _errors({"d": {"type": "date"}}, {"d": "2024-W18-3"})


def test_number_refuses_nan():
    assert "x" in _errors({"x": {"type": "number", "min": -90, "max": 90}}, {"x": float("nan")})


def test_schema_load_raises_validation_error():
    with pytest.raises(ValidationError) as info:
        compile_schema({"a": {"type": "integer", "required": True}}).load({"a": "1"})
    assert "a" in info.value.messages
