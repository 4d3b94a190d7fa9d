"""Tenant manifests, through the registry: the demo counties' grid trees and broken manifests."""

import pytest

from onegrid.app.registry import load
from onegrid.kernel.spans import parse_span
from onegrid.kernel.tenant import LEVELS, SEVERITIES, Rule, parse_duration

from .helpers import JINCHENG, QINLING, copy_contracts, edit_yaml, registry

Q_FILE = f"tenants/{QINLING}.yaml"


def _tenant(tid):
    return registry().tenants[tid]


@pytest.mark.parametrize(
    "tid,root,communities,grids",
    [
        (JINCHENG, "320324", 13, 54),
        (QINLING, "410102", 11, 44),
    ],
)
def test_demo_tenant_tree_sizes(tid, root, communities, grids):
    t = _tenant(tid)
    by_level = {lvl: [n for n in t.nodes.values() if n.level == lvl] for lvl in LEVELS}
    assert len(by_level["community"]) == communities
    assert len(by_level["grid"]) == grids == len(t.grids())
    assert len(by_level["street"]) == 1 and [n.code for n in by_level["county"]] == [root]
    assert t.root == root and t.nodes[root].parent is None


@pytest.mark.parametrize("tid", [JINCHENG, QINLING])
def test_demo_tenants_enable_every_department(tid):
    t = _tenant(tid)
    assert set(t.departments) == set(registry().departments)
    assert "governance" in t.departments
    assert t.max_payload_bytes == 65536 and t.max_batch == 500


@pytest.mark.parametrize("tid", [JINCHENG, QINLING])
def test_every_code_nests_in_its_parents(tid):
    t = _tenant(tid)
    for node in t.nodes.values():
        if node.parent is None:
            assert node.level == "county" and len(node.code) == 6 and node.code.isdigit()
            continue
        parent = t.nodes[node.parent]
        assert LEVELS.index(parent.level) == LEVELS.index(node.level) + 1
        assert node.code.startswith(parent.code + "-")
        suffix = node.code[len(parent.code) + 1 :]
        assert len(suffix) == 3 and suffix.isdigit()


@pytest.mark.parametrize("tid", [JINCHENG, QINLING])
def test_ancestor_walks_up(tid):
    t = _tenant(tid)
    for grid in t.grids():
        assert t.ancestor(grid.code, "grid") is grid
        community = t.ancestor(grid.code, "community")
        street = t.ancestor(grid.code, "street")
        assert community.level == "community" and community.code == grid.parent
        assert grid.code.startswith(community.code + "-")
        assert street.level == "street" and community.code.startswith(street.code + "-")
        assert t.ancestor(grid.code, "county").code == t.root
        assert t.ancestor(community.code, "street") is street


def test_ancestor_of_a_specific_grid():
    t = _tenant(QINLING)
    assert t.ancestor("410102-001-003-002", "community").code == "410102-001-003"
    assert t.ancestor("410102-001-003-002", "street").code == "410102-001"
    assert t.ancestor("410102-001-003-002", "county").code == "410102"


def test_demo_routing_and_deadline_tables_parse():
    t = _tenant(QINLING)
    assert t.routing and t.deadlines
    assert all(r.values["level"] in LEVELS for r in t.routing)
    assert all(parse_span(r.values["acknowledge"]) and parse_span(r.values["resolve"]) for r in t.deadlines)
    # The last deadline row is the catch-all.
    assert t.deadlines[-1].categories is None and t.deadlines[-1].severities is None


@pytest.mark.parametrize("text,seconds", [("10s", 10), ("10m", 600), ("4h", 14400), ("3d", 259200)])
def test_parse_duration_good(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["10x", "0m", "m", "10", "1.5h", "-1h", " 4h", "4H", 10, None, ""])
def test_parse_duration_bad(text):
    assert parse_duration(text) is None


def test_rule_matches():
    any_rule = Rule(None, None, {})
    assert all(any_rule.matches(c, s) for c in ("work_safety", "other") for s in SEVERITIES)
    rule = Rule(frozenset({"work_safety"}), frozenset({"major", "critical"}), {})
    assert rule.matches("work_safety", "major") and rule.matches("work_safety", "critical")
    assert not rule.matches("work_safety", "minor") and not rule.matches("fire_hazard", "major")


# -- broken manifests ---------------------------------------------------------------------


def _problems(tmp_path, change):
    root = copy_contracts(tmp_path)
    edit_yaml(root / Q_FILE, change)
    reg, reg_problems = load(root)
    assert {p.file for p in reg_problems} == {f"contracts/{Q_FILE}"}, reg_problems
    assert QINLING not in reg.tenants and JINCHENG in reg.tenants  # the broken one only is left out
    return [(p.path, p.reason) for p in reg_problems]


def _community(doc, i=0):
    return doc["grid_tree"]["children"][0]["children"][i]


def test_grid_code_must_nest_in_its_community(tmp_path):
    found = _problems(tmp_path, lambda d: _community(d)["children"][1].update(code="410102-001-002-009"))
    assert [p for p, _ in found] == ["grid_tree.children[0].children[0].children[1].code"]
    assert "parent's code" in found[0][1]


def test_grid_code_needs_three_digits(tmp_path):
    found = _problems(tmp_path, lambda d: _community(d)["children"][0].update(code="410102-001-001-1"))
    assert [p for p, _ in found] == ["grid_tree.children[0].children[0].children[0].code"]


def test_county_code_is_six_digits(tmp_path):
    found = _problems(tmp_path, lambda d: d["grid_tree"].update(code="41010"))
    assert found == [("grid_tree.code", "'41010' must be the county's code, [0-9]{6} (the six-digit division code)")]


def test_duplicate_code(tmp_path):
    found = _problems(tmp_path, lambda d: _community(d)["children"][1].update(code="410102-001-001-001"))
    assert found == [("grid_tree.children[0].children[0].children[1].code", "410102-001-001-001 appears twice")]


def test_levels_in_order(tmp_path):
    def change(d):
        _community(d, 2)["level"] = "grid"

    found = _problems(tmp_path, change)
    assert found == [
        (
            "grid_tree.children[0].children[2].level",
            "expected 'community', got 'grid' (a grid under a street is marked dedicated: true)",
        )
    ]


def test_grid_has_no_children(tmp_path):
    def change(d):
        grid = _community(d)["children"][0]
        grid["children"] = [{"level": "grid", "code": grid["code"] + "-001", "name": "x"}]

    found = _problems(tmp_path, change)
    assert [p for p, _ in found] == ["grid_tree.children[0].children[0].children[0].children"]


def test_community_needs_a_grid(tmp_path):
    found = _problems(tmp_path, lambda d: _community(d).update(children=[]))
    assert [p for p, _ in found] == ["grid_tree.children[0].children[0].children"]


@pytest.mark.parametrize("key", ["departments", "alternates"])
def test_routing_rule_names_department_not_enabled(tmp_path, key):
    found = _problems(tmp_path, lambda d: d["routing"][3].update({key: ["tourism"]}))
    assert found == [(f"routing[3].{key}", "department 'tourism' is not enabled for this tenant")]


def test_routing_rule_names_a_known_but_disabled_department(tmp_path):
    def change(d):
        d["departments"].remove("party_building")

    found = _problems(tmp_path, change)
    paths = {p for p, _ in found}
    assert paths and all(p.startswith("routing[") for p in paths)
    assert all("'party_building' is not enabled" in r for _, r in found)


def test_routing_rule_unknown_category(tmp_path):
    found = _problems(tmp_path, lambda d: d["routing"][0].update(category="tourism"))
    assert [p for p, _ in found] == ["routing[0].category"] and "tourism" in found[0][1]


def test_routing_rule_list_with_one_unknown_category(tmp_path):
    found = _problems(tmp_path, lambda d: d["routing"][0].update(category=["work_safety", "tourism"]))
    assert [p for p, _ in found] == ["routing[0].category"] and "tourism" in found[0][1]


@pytest.mark.parametrize("table", ["routing", "deadlines"])
def test_unknown_severity(tmp_path, table):
    found = _problems(tmp_path, lambda d: d[table][0].update(severity="urgent"))
    assert [p for p, _ in found] == [f"{table}[0].severity"] and "urgent" in found[0][1]


def test_routing_bad_level_and_unknown_key(tmp_path):
    found = _problems(tmp_path, lambda d: d["routing"][0].update(level="province", owner="x"))
    assert sorted(p for p, _ in found) == ["routing[0].level", "routing[0].owner"]


@pytest.mark.parametrize("key", ["acknowledge", "resolve"])
def test_bad_duration(tmp_path, key):
    found = _problems(tmp_path, lambda d: d["deadlines"][0].update({key: "10x"}))
    why = "'10x': unknown unit 'x'; use s, m, h, d (clock time), wh (working hours) or wd (working days)"
    assert found == [(f"deadlines[0].{key}", why)]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2w", "'2w': unknown unit 'w'; use s, m, h, d (clock time), wh (working hours) or wd (working days)"),
        ("0wd", "'0wd': the number must be a whole number from 1, without leading zeros"),
        ("wd", "'wd' is not <number><unit>; units: s, m, h, d (clock time), wh (working hours) or wd (working days)"),
        (3, "must be a duration like 10m, 4h, 3d, 8wh or 2wd, not 3"),
    ],
)
def test_bad_span_says_why(tmp_path, text, why):
    found = _problems(tmp_path, lambda d: d["deadlines"][0].update({"resolve": text}))
    assert found == [("deadlines[0].resolve", why)]


@pytest.mark.parametrize("text", ["8wh", "2wd", "10m"])
def test_working_spans_are_deadlines(tmp_path, text):
    root = copy_contracts(tmp_path)
    edit_yaml(root / Q_FILE, lambda d: d["deadlines"][0].update({"resolve": text}))
    reg, problems = load(root)
    assert problems == [] and str(reg.tenants[QINLING].deadlines[0].values["resolve"]) == text


def test_governance_must_be_enabled(tmp_path):
    found = _problems(tmp_path, lambda d: d["departments"].remove("governance"))
    assert found == [("departments", "'governance', the command centre, must be enabled")]


def test_unknown_enabled_department(tmp_path):
    found = _problems(tmp_path, lambda d: d["departments"].append("tourism"))
    assert found == [("departments[16]", "unknown department 'tourism' (contracts/departments/)")]


def test_tenant_id_must_equal_file_name(tmp_path):
    found = _problems(tmp_path, lambda d: d.update(tenant="zhongyuan-other"))
    assert found == [("tenant", f"'zhongyuan-other' must equal the file name '{QINLING}'")]


@pytest.mark.parametrize("tid", ["Zhongyuan", "zy", "zhongyuan_qinling"])
def test_tenant_id_pattern(tmp_path, tid):
    found = _problems(tmp_path, lambda d: d.update(tenant=tid))
    assert [p for p, _ in found] == ["tenant"] and "must match" in found[0][1]


@pytest.mark.parametrize("value", [0, -5, "big", True])
def test_limits_must_be_positive_integers(tmp_path, value):
    found = _problems(tmp_path, lambda d: d["limits"].update(max_batch=value))
    assert found == [("limits.max_batch", "must be a positive integer")]


def test_empty_tables(tmp_path):
    found = _problems(tmp_path, lambda d: d.update(routing=[], deadlines=None))
    assert sorted(p for p, _ in found) == ["deadlines", "routing"]


def test_custom_limits_are_read(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / Q_FILE, lambda d: d["limits"].update(max_payload_bytes=1024, max_batch=7))
    reg, problems = load(root)
    assert problems == []
    assert (reg.tenants[QINLING].max_payload_bytes, reg.tenants[QINLING].max_batch) == (1024, 7)


def test_a_bad_calendar_section_is_a_problem_of_the_manifest(tmp_path):
    root = copy_contracts(tmp_path)
    edit_yaml(root / Q_FILE, lambda d: d.update(calendar={"working_hours": ["8:30-12"], "utc_offset": "+8"}))
    _, problems = load(root)
    assert [(p.file, p.path, p.reason) for p in problems] == [
        (f"contracts/{Q_FILE}", path, reason)
        for path, reason in [
            ("calendar.working_hours[0]", "'8:30-12' is not a session like '08:30-12:00'"),
            ("calendar.utc_offset", "'+8' is not an offset from UTC like '+08:00'"),
        ]
    ]
