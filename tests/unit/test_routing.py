"""Routing: the first matching rule wins, the unit is the grid's ancestor, returns reroute."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onegrid.domain.routing import Decision, command_centre, reroute, route
from onegrid.kernel.tenant import LEVELS, SEVERITIES, Rule

from .helpers import JINCHENG, QINLING, registry

GRID = "410102-001-003-002"


def _tenant(tid=QINLING):
    return registry().tenants[tid]


@pytest.mark.parametrize(
    "severity,level,unit",
    [
        ("minor", "grid", GRID),
        ("general", "community", "410102-001-003"),
        ("major", "street", "410102-001"),
        ("critical", "county", "410102"),
    ],
)
def test_severity_decides_the_level_and_unit(severity, level, unit):
    d = route(_tenant(), "work_safety", severity, GRID)
    assert (d.level, d.unit, d.reason) == (level, unit, "rule")
    assert d.departments[0] == "emergency_management"


def test_decision_carries_rule_index_departments_and_alternates():
    t = _tenant()
    d = route(t, "illegal_construction", "minor", GRID)
    rule = t.routing[d.rule]
    assert rule.matches("illegal_construction", "minor")
    assert d.departments == ("urban_management",)
    assert d.alternates == ("housing_construction", "natural_resources")
    joint = route(t, "work_safety", "critical", GRID)
    assert joint.departments == ("emergency_management", "fire_rescue", "housing_construction")
    assert joint.alternates == ()


def test_first_matching_rule_wins():
    t = _tenant()
    catch_all = Rule(None, None, {"level": "county", "departments": ["governance"]})
    specific = Rule(
        frozenset({"dispute"}), None, {"level": "grid", "departments": ["justice"], "alternates": ["water"]}
    )
    first = dataclasses.replace(t, routing=[specific, catch_all])
    d = route(first, "dispute", "critical", GRID)
    assert (d.rule, d.level, d.unit, d.departments, d.alternates) == (0, "grid", GRID, ("justice",), ("water",))
    assert route(first, "pollution", "minor", GRID).rule == 1
    shadowed = dataclasses.replace(t, routing=[catch_all, specific])
    d = route(shadowed, "dispute", "critical", GRID)
    assert (d.rule, d.departments, d.unit) == (0, ("governance",), t.root)


def test_every_decided_rule_is_the_first_that_matches():
    t = _tenant()
    for category in registry().categories:
        for severity in SEVERITIES:
            d = route(t, category, severity, GRID)
            matching = [i for i, r in enumerate(t.routing) if r.matches(category, severity)]
            assert d.rule == (matching[0] if matching else None)


def test_same_input_same_decision():
    t = _tenant()
    for category in registry().categories:
        for severity in SEVERITIES:
            assert route(t, category, severity, GRID) == route(t, category, severity, GRID)


@pytest.mark.parametrize("tid", [QINLING, JINCHENG])
@pytest.mark.parametrize("severity", SEVERITIES)
def test_other_goes_to_the_command_centre(tid, severity):
    t = _tenant(tid)
    grid = t.grids()[5].code
    d = route(t, "other", severity, grid)
    assert d == Decision("county", t.root, ("governance",), (), None, "no_rule_matched")


def test_command_centre_decision():
    t = _tenant()
    assert command_centre(t, "returned_by_all") == Decision(
        "county", "410102", ("governance",), (), None, "returned_by_all"
    )


def test_reroute_tries_alternates_in_order_then_the_command_centre():
    t = _tenant()
    d = route(t, "illegal_construction", "minor", GRID)
    assert d.alternates == ("housing_construction", "natural_resources")
    assert reroute(t, d, {"urban_management"}) == ("housing_construction", "alternate")
    assert reroute(t, d, {"urban_management", "housing_construction"}) == ("natural_resources", "alternate")
    assert reroute(t, d, {"housing_construction"}) == ("natural_resources", "alternate")
    assert reroute(t, d, {"urban_management", "housing_construction", "natural_resources"}) == (
        "governance",
        "returned_by_all",
    )


def test_reroute_without_alternates_goes_to_the_command_centre():
    t = _tenant()
    d = route(t, "public_order", "minor", GRID)
    assert d.alternates == ()
    assert reroute(t, d, {"public_security"}) == ("governance", "returned_by_all")
    assert reroute(t, route(t, "other", "minor", GRID), {"governance"}) == ("governance", "returned_by_all")


_TENANTS = [QINLING, JINCHENG]


@st.composite
def _cases(draw):
    tenant = registry().tenants[draw(st.sampled_from(_TENANTS))]
    category = draw(st.sampled_from(sorted(registry().categories)))
    severity = draw(st.sampled_from(SEVERITIES))
    grid = draw(st.sampled_from([g.code for g in tenant.grids()]))
    return tenant, category, severity, grid


@settings(max_examples=300, deadline=None)
@given(_cases())
def test_route_property_departments_enabled_and_unit_is_an_ancestor(case):
    tenant, category, severity, grid = case
    d = route(tenant, category, severity, grid)
    assert d.departments and all(dept in tenant.departments for dept in d.departments)
    assert all(dept in tenant.departments for dept in d.alternates)
    assert d.level in LEVELS
    chain, code = [], grid
    while code is not None:
        chain.append(code)
        code = tenant.nodes[code].parent
    assert d.unit in chain
    assert tenant.nodes[d.unit].level == d.level
    assert d.unit == tenant.ancestor(grid, d.level).code
    assert route(tenant, category, severity, grid) == d
    tried = set(d.departments)
    seen = []
    while True:
        dept, why = reroute(tenant, d, tried)
        if why == "returned_by_all":
            assert dept == "governance"
            break
        assert why == "alternate" and dept not in tried and dept in tenant.departments
        seen.append(dept)
        tried.add(dept)
    assert seen == [a for a in d.alternates if a not in d.departments]
