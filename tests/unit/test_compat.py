"""Contract evolution: each rule of BACKWARD (and its mirror FORWARD), the modes, and how
`onegrid contracts check` reports a breaking version: file, field path, rule, versions."""

import copy

import pytest

from onegrid.app.registry import load
from onegrid.cli.main import main as cli
from onegrid.contracts.compat import MODES, findings, reader_breaks

from .helpers import CONTRACTS, copy_contracts, edit_yaml, registry

MR = "departments/market_regulation.yaml"
V1 = {
    "name": {"type": "string", "required": True, "min_length": 1, "max_length": 200},
    "code": {"type": "string", "required": False, "pattern": "^[0-9]{6}$"},
    "kind": {"type": "enum", "required": True, "values": ["a", "b", "c"]},
    "count": {"type": "integer", "required": False, "min": 0, "max": 100},
    "note": {"type": "string", "required": False, "max_length": 50},
    "tags": {"type": "list", "required": False, "max_items": 5, "items": {"type": "string", "max_length": 10}},
    "where": {
        "type": "object",
        "required": False,
        "fields": {"lat": {"type": "number", "required": True, "min": -90, "max": 90}},
    },
}


def _v2(**changes):
    new = copy.deepcopy(V1)
    for path, value in changes.items():
        *parents, last = path.split("__")
        spec = new
        for p in parents:
            spec = spec[p]
        if value is None:
            del spec[last]
        else:
            spec[last] = value
    return new


def _rules(new, mode="BACKWARD"):
    return [(direction, f.path, f.rule) for direction, _, f in findings(V1, new, mode)]


# -- what BACKWARD allows -----------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"extra": {"type": "string", "required": False, "max_length": 5}},  # add an optional field
        {"note": None},  # delete a field
        {"kind__values": ["a", "b", "c", "d"]},  # widen an enum
        {"name__max_length": 300},
        {"name__min_length": None},  # loosen string bounds
        {"count__max": 1000},
        {"count__min": None},  # loosen a range
        {"tags__max_items": 9},
        {"code__pattern": None},  # loosen a list, drop a pattern
        {"name__required": False},  # required -> optional
        {"count__type": "number"},  # integer -> number
        {"where__fields__lon": {"type": "number", "required": False}},  # optional nested field
    ],
)
def test_backward_allows(change):
    assert _rules(_v2(**change)) == []


# -- what BACKWARD refuses, one rule each ---------------------------------------------------


@pytest.mark.parametrize(
    "change,path,rule",
    [
        ({"extra": {"type": "string", "required": True, "max_length": 5}}, "extra", "required_field_added"),
        ({"note__required": True}, "note", "made_required"),
        ({"count__type": "string", "count__max_length": 3}, "count", "type_changed"),
        ({"kind__values": ["a", "b"]}, "kind", "enum_narrowed"),
        ({"name__min_length": 2}, "name", "bound_tightened"),
        ({"name__max_length": 100}, "name", "bound_tightened"),
        ({"count__min": 1}, "count", "bound_tightened"),
        ({"count__max": 99}, "count", "bound_tightened"),
        ({"tags__min_items": 1}, "tags", "bound_tightened"),
        ({"tags__items__max_length": 5}, "tags.items", "bound_tightened"),
        ({"note__pattern": "^[a-z]*$"}, "note", "pattern_added"),
        ({"code__pattern": "^[0-9]{7}$"}, "code", "pattern_changed"),
        ({"where__fields__lat__max": 80}, "where.fields.lat", "bound_tightened"),
        ({"where__fields__alt": {"type": "number", "required": True}}, "where.fields.alt", "required_field_added"),
    ],
)
def test_backward_refuses(change, path, rule):
    assert _rules(_v2(**change)) == [("BACKWARD", path, rule)]


def test_a_changed_type_is_one_finding_not_a_cascade():
    [found] = reader_breaks(V1, _v2(name={"type": "integer", "required": True, "min": 5}))
    assert (found.path, found.rule, found.writer, found.reader) == ("name", "type_changed", "string", "integer")


# -- the other modes ------------------------------------------------------------------------


def test_forward_is_the_mirror_image():
    widened = _v2(kind__values=["a", "b", "c", "d"], extra={"type": "boolean", "required": False})
    assert _rules(widened, "FORWARD") == [("FORWARD", "kind", "enum_narrowed")]
    [(_, text, _)] = findings(V1, widened, "FORWARD")
    assert text.startswith("adds enum values ['d']") and "old version cannot read" in text
    assert _rules(_v2(name=None), "FORWARD") == [("FORWARD", "name", "required_field_added")]
    assert findings(V1, _v2(name=None), "FORWARD")[0][1].startswith("deletes required field 'name'")


def test_full_checks_both_ways_and_none_checks_nothing():
    change = _v2(kind__values=["a", "b", "c", "d"], note__max_length=10)
    assert sorted(_rules(change, "FULL")) == [
        ("BACKWARD", "note", "bound_tightened"),
        ("FORWARD", "kind", "enum_narrowed"),
    ]
    assert _rules(change, "NONE") == []
    assert set(MODES) >= {"BACKWARD", "FORWARD", "FULL", "NONE", "BACKWARD_TRANSITIVE"}


# -- through the registry and the CLI ------------------------------------------------------------


def test_the_real_contracts_have_two_versions_side_by_side():
    reg = registry()
    assert reg.versions("market_regulation.food_safety_hazard_found") == [1, 2]
    v1, v2 = (reg.events[("market_regulation.food_safety_hazard_found", v)] for v in (1, 2))
    assert v2.compatibility == "BACKWARD" and findings(v1.own_fields, v2.own_fields) == []
    assert set(v2.fields) - set(v1.fields) == {"product", "batch_no", "samples_taken"}


def _edit_v2(root, change):
    def edit(doc):
        v2 = next(e for e in doc["events"] if e["type"] == "food_safety_hazard_found" and e["version"] == 2)
        change(v2)

    edit_yaml(root / MR, edit)


def _v2_index(root):
    from .helpers import read_yaml

    events = read_yaml(root / MR)["events"]
    return next(i for i, e in enumerate(events) if e["type"] == "food_safety_hazard_found" and e["version"] == 2)


def test_a_breaking_version_is_reported_with_file_path_rule_and_versions(tmp_path, capsys):
    root = copy_contracts(tmp_path)
    _edit_v2(
        root,
        lambda v2: (
            v2["fields"]["batch_no"].update(required=True),
            v2["fields"]["hazard"].update(values=["expired", "other"]),
        ),
    )
    i = _v2_index(root)
    _, problems = load(root)
    assert [(p.file, p.path) for p in problems] == [
        (f"contracts/{MR}", f"events[{i}].fields.hazard"),
        (f"contracts/{MR}", f"events[{i}].fields.batch_no"),
    ]
    assert "removes enum values ['adulterated', 'unsafe_storage', 'no_health_certificate']" in problems[0].reason
    assert problems[1].reason.startswith("BACKWARD: adds required field 'batch_no'")
    assert problems[1].reason.endswith("(version 1 → 2)")
    assert cli(["--dir", str(root), "contracts", "check"]) == 1
    err = capsys.readouterr().err
    assert f"contracts/{MR}: events[{i}].fields.batch_no: BACKWARD: adds required field 'batch_no'" in err


def test_compatibility_can_be_set_per_event_or_per_department(tmp_path):
    root = copy_contracts(tmp_path)
    _edit_v2(root, lambda v2: (v2["fields"]["batch_no"].update(required=True), v2.update(compatibility="NONE")))
    assert load(root)[1] == []
    root2 = copy_contracts(tmp_path / "two")
    edit_yaml(root2 / MR, lambda d: d.update(compatibility="FORWARD"))
    _, problems = load(root2)  # version 2 adds an enum value: fine BACKWARD, breaks FORWARD
    assert [p.reason.split(":")[0] for p in problems] == ["FORWARD"]
    assert "adds enum values ['counterfeit']" in problems[0].reason
    edit_yaml(root2 / MR, lambda d: d.update(compatibility="SIDEWAYS"))
    assert any(p.path == "compatibility" for p in load(root2)[1])


def test_transitive_checks_every_earlier_version(tmp_path):
    root = copy_contracts(tmp_path)

    def add_v3(doc):
        v2 = next(e for e in doc["events"] if e["type"] == "food_safety_hazard_found" and e["version"] == 2)
        v2["fields"].pop("people_affected")  # deleting a field is BACKWARD compatible
        v3 = copy.deepcopy(v2)
        v3.update(version=3)  # brings it back as a string: new to version 2, a changed type to version 1
        v3["fields"]["people_affected"] = {"type": "string", "required": False, "max_length": 10}
        doc["events"].append(v3)

    edit_yaml(root / MR, add_v3)
    assert load(root)[1] == []  # BACKWARD: version 3 against version 2 only
    edit_yaml(root / MR, lambda d: d["events"][-1].update(compatibility="BACKWARD_TRANSITIVE"))
    [problem] = load(root)[1]
    assert problem.path.endswith(".fields.people_affected")
    assert problem.reason == (
        "BACKWARD: changes the type from integer to string; consumers on the new version "
        "cannot read data written under the old one (version 1 → 3)"
    )


def test_the_repository_contracts_check_clean():
    assert load(CONTRACTS)[1] == []
