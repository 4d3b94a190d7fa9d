"""The release lock: a released version is immutable, a new one is held to the last released."""

import json

from onegrid.app.registry import load
from onegrid.cli.main import main as cli
from onegrid.contracts import release

from .helpers import CONTRACTS, copy_contracts, edit_yaml

MR = "departments/market_regulation.yaml"
KEY = "market_regulation.food_safety_hazard_found"


def _event(doc, etype, version):
    return next(e for e in doc["events"] if e["type"] == etype and e["version"] == version)


def _lock_problems(root):
    reg, problems = load(root)
    assert problems == []
    lock = release.read(root)
    assert lock is not None
    return release.check(reg, reg.common, lock, lambda d: f"contracts/departments/{d}.yaml")


def test_the_repository_lock_holds_every_version_as_it_is():
    reg, _ = load(CONTRACTS)
    lock = release.read(CONTRACTS)
    assert lock is not None and set(lock.versions) == set(reg.events)
    assert release.check(reg, reg.common, lock, str) == []
    assert cli(["--dir", str(CONTRACTS), "contracts", "check"]) == 0


def test_making_an_optional_field_of_a_released_version_required_fails(tmp_path, capsys):
    root = copy_contracts(tmp_path)
    edit_yaml(
        root / MR, lambda d: _event(d, "food_safety_hazard_found", 1)["fields"]["people_affected"].update(required=True)
    )
    found = _lock_problems(root)
    assert [(p.path, p.reason.split(" (")[0]) for p in found] == [(f"{KEY} v1", "released version changed")]
    assert "fields.people_affected.required: false → true" in found[0].reason
    assert cli(["--dir", str(root), "contracts", "check"]) == 1
    assert f"{KEY} v1: released version changed" in capsys.readouterr().err


def test_adding_a_required_field_to_a_released_version_fails(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(
        root / MR,
        lambda d: _event(d, "food_safety_hazard_found", 1)["fields"].update(
            lot={"type": "string", "required": True, "max_length": 10}
        ),
    )
    (problem,) = _lock_problems(root)
    assert problem.file == f"contracts/{MR}" and problem.path == f"{KEY} v1"
    assert 'fields.lot: added {"max_length":10,"required":true,"type":"string"}' in problem.reason
    assert "add version 3 instead" in problem.reason


def test_whitespace_comments_and_key_order_are_not_a_change(tmp_path):
    root = copy_contracts(tmp_path)
    text = (root / MR).read_text(encoding="utf-8")
    text = text.replace(
        "people_affected: {type: integer, required: false, min: 0, max: 100000}",
        "people_affected:   {max: 100000, min: 0,  type: integer, required: false}  # reordered",
    )
    (root / MR).write_text("# a comment\n" + text, encoding="utf-8")
    assert _lock_problems(root) == []


def test_a_deleted_released_version_fails(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / MR, lambda d: d["events"].remove(_event(d, "food_safety_hazard_found", 2)))
    (problem,) = _lock_problems(root)
    assert problem.path == f"{KEY} v2" and "was released and is gone" in problem.reason


def test_a_new_version_is_checked_against_the_last_released_one_not_its_neighbour(tmp_path):
    """v2 unreleased (taken out of the lock), v3 compatible with the tree's v2 but not with the
    released v1 under BACKWARD_TRANSITIVE... and under plain BACKWARD it is held to v1 too,
    because v2 was never released."""
    root = copy_contracts(tmp_path)
    lock_path = root / release.LOCK_FILE
    doc = json.loads(lock_path.read_text())
    del doc["versions"][f"{KEY}:2"]
    lock_path.write_text(json.dumps(doc))

    def add_v3(d):
        v2 = _event(d, "food_safety_hazard_found", 2)
        v2["fields"]["batch_no"]["required"] = True  # unreleased: the tree's neighbour check sees it
        v3 = json.loads(json.dumps(v2))
        v3["version"] = 3
        d["events"].append(v3)

    edit_yaml(root / MR, add_v3)
    reg, problems = load(root)
    # the neighbour check: v2 against v1 (breaks), v3 against v2 (same fields, fine)
    assert [p.reason.split(";")[0] for p in problems] == ["BACKWARD: adds required field 'batch_no'"]
    found = release.check(reg, reg.common, release.read(root), str)
    # v2 and v3 are each held to the released v1
    assert sorted((p.path, p.reason.split(";")[0]) for p in found) == [
        (f"{KEY} v2", "BACKWARD: adds required field 'batch_no'"),
        (f"{KEY} v3", "BACKWARD: adds required field 'batch_no'"),
    ]
    assert all("(against released version 1)" in p.reason for p in found)


def test_release_records_new_versions_and_refuses_on_a_problem(tmp_path, capsys):
    root = copy_contracts(tmp_path)

    def add_v3(d):
        v3 = json.loads(json.dumps(_event(d, "food_safety_hazard_found", 2)))
        v3["version"] = 3
        v3["fields"]["inspector"] = {"type": "string", "required": False, "max_length": 40}
        d["events"].append(v3)

    edit_yaml(root / MR, add_v3)
    assert cli(["--dir", str(root), "contracts", "release"]) == 0
    assert f"released {KEY} v3" in capsys.readouterr().out
    assert (KEY, 3) in release.read(root).versions
    assert cli(["--dir", str(root), "contracts", "release"]) == 0
    assert "nothing new" in capsys.readouterr().out
    # now v3 is released: changing it is refused, by check and by release
    edit_yaml(
        root / MR, lambda d: _event(d, "food_safety_hazard_found", 3)["fields"]["inspector"].update(max_length=20)
    )
    assert cli(["--dir", str(root), "contracts", "release"]) == 1
    assert "nothing released" in capsys.readouterr().err


def test_a_changed_common_field_is_a_change_of_every_released_version(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / "common.yaml", lambda d: d["case_fields"]["summary"].update(max_length=100))
    (problem,) = _lock_problems(root)
    assert problem.file == "contracts/common.yaml" and "every released version carries them" in problem.reason


def test_changes_names_each_difference():
    assert release.changes({"a": 1, "b": {"c": True}}, {"a": 1, "b": {"c": False}, "d": 2}) == [
        "b.c: true → false",
        "d: added 2",
    ]
    assert release.changes({"a": 1}, {}) == ["a: removed"]
    assert release.digest({"b": 1, "a": [1, 2]}) == release.digest({"a": [1, 2], "b": 1})


def test_a_common_field_change_is_released_only_on_purpose_and_only_when_compatible(tmp_path, capsys):
    root = copy_contracts(tmp_path)
    # a required common field made optional: compatible (BACKWARD), still not released silently
    edit_yaml(root / "common.yaml", lambda d: d["case_fields"]["severity"].update(required=False))
    [found] = _lock_problems(root)
    assert "severity.required: true → false" in found.reason and "release --common" in found.reason
    assert cli(["--dir", str(root), "contracts", "release"]) == 1
    assert cli(["--dir", str(root), "contracts", "release", "--common"]) == 0
    assert _lock_problems(root) == []
    # an optional common field made required breaks every released version: never released
    edit_yaml(root / "common.yaml", lambda d: d["case_fields"]["location"].update(required=True))
    [found] = _lock_problems(root)
    assert "it breaks BACKWARD" in found.reason
    assert cli(["--dir", str(root), "contracts", "release", "--common"]) == 1
    assert "location" in capsys.readouterr().err
