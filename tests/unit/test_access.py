"""The access policy as a pure function (onegrid/domain/access.py), the manifest's identity
section, and docs/access.md kept current."""

from __future__ import annotations

from pathlib import Path

import pytest

from onegrid.app.registry import load
from onegrid.domain import access
from onegrid.domain.access import Principal, Resource, case_resource, check_scope, decide, redact, within
from onegrid.operator import access_doc

from .helpers import QINLING, copy_contracts, edit_yaml, registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tenant():
    return registry().tenants[QINLING]


@pytest.fixture(scope="module")
def places(tenant):
    """A grid, its community and street, and a grid of another street (when the tree has one)."""
    grid = tenant.grids()[0]
    community = tenant.ancestor(grid.code, "community").code
    street = tenant.ancestor(grid.code, "street").code
    elsewhere = next(g.code for g in tenant.grids() if tenant.ancestor(g.code, "community").code != community)
    return grid.code, community, street, elsewhere


def test_scoped_roles_act_only_inside_their_subtree(tenant, places):
    grid, community, street, elsewhere = places
    here, there = Resource(grid=grid), Resource(grid=elsewhere)  # another community's grid
    officer = Principal("s", access.STREET_OFFICER, street)
    assert decide(tenant, officer, "case.whistle", here).allowed
    assert not decide(tenant, officer, "case.whistle", Resource(grid="999999-999-999-999")).allowed
    for who in (
        Principal("c", access.COMMUNITY_OFFICER, community),
        Principal("g", access.GRID_WORKER, grid),
    ):
        assert decide(tenant, who, "case.act", here).allowed
        refused = decide(tenant, who, "case.act", there)
        assert not refused.allowed and "outside" in refused.reason
    assert within(tenant, grid, street) and not within(tenant, street, grid)


def test_department_staff_work_their_own_department_only(tenant):
    staff = Principal("d", access.DEPARTMENT_STAFF, "market_regulation")
    assert decide(tenant, staff, "work_order.act", Resource(departments=("market_regulation",))).allowed
    assert not decide(tenant, staff, "work_order.act", Resource(departments=("public_security",))).allowed
    case = {"grid": "x", "reporter": {"id": "r"}, "work_orders": [{"department": "market_regulation"}]}
    assert decide(tenant, staff, "case.read", case_resource(case)).allowed
    assert not decide(tenant, staff, "case.act", case_resource(case)).allowed


def test_a_citizen_reads_only_what_they_reported(tenant):
    me = Principal("citizen-1", access.CITIZEN)
    assert decide(tenant, me, "case.read", Resource(reporter="citizen-1")).allowed
    assert not decide(tenant, me, "case.read", Resource(reporter="citizen-2")).allowed
    assert not decide(tenant, me, "cases.list").allowed


def test_points_are_adjusted_by_supervisors_only_and_the_audit_read_by_auditors_only(tenant):
    for role in access.ROLES:
        who = Principal("x", role, "")
        assert decide(tenant, who, "scoring.adjust").allowed == (role == access.SUPERVISOR)
        assert decide(tenant, who, "audit.read").allowed == (role == access.AUDITOR)
    assert not decide(tenant, Principal("x", access.AUDITOR), "case.act", Resource(grid="g")).allowed


def test_unknown_actions_and_roles_are_refused(tenant):
    assert not decide(tenant, Principal("x", access.OPERATOR), "cases.delete").allowed
    assert not decide(tenant, Principal("x", "root"), "case.read").allowed
    assert not hasattr(access, "TRUSTED")  # no role lets a caller without a token in, demo tenants included


def test_phones_are_masked_for_those_who_do_not_call_back():
    case = {"id": "c", "reporter": {"id": "r", "phone": "13812345678"}}
    assert redact(Principal("x", access.SUPERVISOR), case)["reporter"]["phone"] == "138****5678"
    assert redact(Principal("x", access.OPERATOR), case)["reporter"]["phone"] == "13812345678"
    assert case["reporter"]["phone"] == "13812345678"  # the record itself is untouched


def test_scopes_must_fit_the_county(tenant, places):
    grid, community, street, _ = places
    assert check_scope(tenant, access.GRID_WORKER, grid) is None
    assert "grid" in check_scope(tenant, access.GRID_WORKER, street)
    assert check_scope(tenant, access.STREET_OFFICER, street) is None
    assert check_scope(tenant, access.DEPARTMENT_STAFF, "governance") is None
    assert "department" in check_scope(tenant, access.DEPARTMENT_STAFF, "nowhere")
    assert "no scope" in check_scope(tenant, access.AUDITOR, grid)
    assert "unknown role" in check_scope(tenant, "root", "")


@pytest.mark.parametrize("bad", ["c-0123:timeline", "c-0123456789abcdef:work_orders", "", "c-" + "g" * 16])
def test_malformed_case_ids_are_unknown(bad):
    with pytest.raises(LookupError, match="case id"):
        access.check_case_id(bad)
    assert access.check_case_id("c-0123456789abcdef") == "c-0123456789abcdef"
    assert access.check_work_order_id("w-0123456789abcdef-market_regulation")


def test_every_rule_names_known_roles_and_every_route_a_known_action():
    for action, rule in access.RULES.items():
        assert set(rule) <= {*access.ROLES, access.MACHINE, access.CLIENT, access.GATEWAY}, action
    assert set(access.ROUTE_ACTIONS.values()) <= {*access.RULES, access.PUBLIC}


def test_docs_access_md_is_current():
    assert (ROOT / "docs" / "access.md").read_text(encoding="utf-8") == access_doc.render(), (
        "regenerate: python -m onegrid.operator.access_doc docs/access.md"
    )


def test_the_manifest_names_the_county_identity_provider(tmp_path):
    root = copy_contracts(tmp_path)
    path = root / "tenants" / f"{QINLING}.yaml"
    idp = {"issuer": "https://sso.example.gov.cn", "audience": "onegrid", "jwks_url": "https://sso.example.gov.cn/jwks"}
    edit_yaml(path, lambda d: d.update(identity=idp))
    reg, problems = load(root)
    assert not problems and reg.tenants[QINLING].identity.jwks_url == idp["jwks_url"]
    edit_yaml(path, lambda d: d.update(identity={"issuer": "x", "jwks_url": "http://evil.example/jwks", "aud": 1}))
    problems = " ".join(str(p) for p in load(root)[1])
    assert "identity.audience" in problems and "https://" in problems and "identity.aud" in problems


@pytest.mark.parametrize(
    "url, ok",
    [
        ("https://sso.example.gov.cn/jwks", True),
        ("http://127.0.0.1:8080/jwks.json", True),
        ("http://127.9.9.9/jwks.json", True),
        ("http://[::1]:8080/jwks.json", True),
        ("http://localhost:8080/jwks.json", True),
        ("http://127.0.0.1.evil.example/jwks", False),  # a prefix is not a host
        ("http://localhost@evil.example/jwks", False),  # user info, then the real host
        ("http://localhost.evil.example/jwks", False),
        ("http://10.0.0.5/jwks", False),
        ("ftp://127.0.0.1/jwks", False),
        ("https:///jwks", False),
    ],
)
def test_keys_are_fetched_over_https_or_from_loopback_only(tmp_path, url, ok):
    root = copy_contracts(tmp_path)
    edit_yaml(
        root / "tenants" / f"{QINLING}.yaml",
        lambda d: d.update(identity={"issuer": "https://sso.example", "audience": "onegrid", "jwks_url": url}),
    )
    problems = [p for p in load(root)[1] if "jwks_url" in str(p)]
    assert (problems == []) == ok, problems


def test_an_sms_replys_number_is_masked_for_who_does_not_call_back():
    reply = {"message_id": "m-1", "from": "13912345678", "text": "1"}
    auditor = Principal("audit-1", access.AUDITOR)
    operator = Principal("op-1", access.OPERATOR)
    assert access.redact_reply(auditor, reply) == {**reply, "from": "139****5678"}
    assert access.redact_reply(operator, reply) == reply
