"""Who is speaking: admit() with an authenticated department (spoofed, unauthenticated),
broker user names, bearer tokens, the manifest's limits and trust, and the provisioning
plan (pure: desired state against a snapshot)."""

import dataclasses
import json

import pytest

from onegrid.adapters.redis.auth import TOKEN_PREFIX, bearer, new_token, retry_after, token_hash
from onegrid.app.registry import load
from onegrid.domain.intake import REASONS, Accepted, RawEvent, Rejected, admit, authenticated_department, principal
from onegrid.kernel import envelope as ce
from onegrid.kernel.tenant import LIMITS
from onegrid.operator import provisioning as prov

from .helpers import QINLING, binary, copy_contracts, edit_yaml, envelope_for, registry, sample_data

FLOOD = "water.flood_risk_reported"


def _tenant(**changes):
    return dataclasses.replace(registry().tenants[QINLING], **changes)


STRICT = dict(trust_unauthenticated_amqp=False, trust_unauthenticated_http=False)


def _event(key=FLOOD, **env_changes):
    contract, tenant = registry().events[(key, 1)], registry().tenants[QINLING]
    data = sample_data(contract, tenant, seed=1, grid=tenant.grids()[0].code)
    return binary(envelope_for(contract, tenant, **env_changes), data)


# -- broker users -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_id,expected",
    [
        ("zhongyuan-qinling.water", "water"),
        ("zhongyuan-qinling.market_regulation", "market_regulation"),
        ("zhongyuan-qinling.svc.intake", None),  # a service speaks for no department
        ("suining-jincheng.water", None),  # another county's department
        ("guest", None),
        ("", None),
        (None, None),
        ("zhongyuan-qinling.", None),
        ("zhongyuan-qinling.Water", None),
    ],
)
def test_authenticated_department_from_the_broker_user(user_id, expected):
    assert authenticated_department(user_id, QINLING) == expected


def test_principal_is_the_department_user():
    assert principal(QINLING, "water") == prov.department_user(QINLING, "water") == "zhongyuan-qinling.water"


# -- admit with an identity -------------------------------------------------------------------


def test_the_authenticated_department_gets_through():
    result = admit(_event(), _tenant(**STRICT), registry(), "water")
    assert isinstance(result, Accepted), result


def test_claiming_another_department_is_spoofed():
    # water's user publishes an event that says it is health's (type and routing key too)
    raw = _event("health.infectious_disease_suspected")
    result = admit(raw, _tenant(**STRICT), registry(), "water")
    assert isinstance(result, Rejected) and result.reason == "spoofed"
    assert result.department == "water"  # the label is who really sent it
    assert "authenticated as department 'water'" in result.detail and "'health'" in result.detail


def test_spoofing_only_the_department_attribute_is_spoofed_too():
    raw = _event(department="health")  # type and routing key still water's
    result = admit(raw, _tenant(**STRICT), registry(), "water")
    assert (result.reason, result.department) == ("spoofed", "water")


@pytest.mark.parametrize("transport", ["amqp", "http"])
def test_nobody_authenticated_is_refused_unless_the_tenant_trusts_it(transport):
    raw = dataclasses.replace(_event(), transport=transport)
    result = admit(raw, _tenant(**STRICT), registry())
    assert isinstance(result, Rejected) and result.reason == "unauthenticated" and result.department == "unknown"
    assert ("user_id" if transport == "amqp" else "Bearer") in result.detail
    trusting = _tenant(**{**STRICT, f"trust_unauthenticated_{transport}": True})
    assert isinstance(admit(raw, trusting, registry()), Accepted)
    other = "http" if transport == "amqp" else "amqp"
    assert (
        admit(raw, _tenant(**{**STRICT, f"trust_unauthenticated_{other}": True}), registry()).reason
        == "unauthenticated"
    )


def test_an_identity_is_checked_even_where_unauthenticated_events_are_trusted():
    trusting = _tenant()  # the demo tenant trusts unauthenticated events
    assert trusting.trust_unauthenticated_amqp and trusting.trust_unauthenticated_http
    assert admit(_event(department="health"), trusting, registry(), "water").reason == "spoofed"


def test_bad_bytes_from_an_authenticated_department_carry_its_label():
    raw = dataclasses.replace(_event(), body=b"{")
    result = admit(raw, _tenant(**STRICT), registry(), "water")
    assert (result.reason, result.department) == ("malformed_json", "water")


def test_structured_mode_is_checked_the_same_way():
    contract, tenant = registry().events[(FLOOD, 1)], registry().tenants[QINLING]
    env = envelope_for(contract, tenant, department="health")
    body = json.dumps(env.structured(sample_data(contract, tenant, seed=2))).encode()
    result = admit(RawEvent(body, {}, ce.STRUCTURED, None, "http"), _tenant(**STRICT), registry(), "water")
    assert result.reason == "spoofed"


def test_identity_reasons_are_documented():
    assert {"spoofed", "unauthenticated"} <= set(REASONS)
    from .helpers import ROOT

    ops_doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "| `spoofed` |" in ops_doc and "| `unauthenticated` |" in ops_doc


# -- tokens ---------------------------------------------------------------------------------


def test_tokens_are_random_and_stored_as_their_hash():
    a, b = new_token(), new_token()
    assert a != b and a.startswith(TOKEN_PREFIX) and len(a) > 40
    assert token_hash(a) != a and len(token_hash(a)) == 64


@pytest.mark.parametrize(
    "header,token,problem",
    [
        (None, None, None),
        ("", None, None),
        ("Bearer ogt_abc", "ogt_abc", None),
        ("bearer   ogt_abc ", "ogt_abc", None),
        ("Basic Z3Vlc3Q6Z3Vlc3Q=", None, "the Authorization header must be `Bearer <token>`"),
        ("Bearer", None, "the Authorization header must be `Bearer <token>`"),
        ("Bearer something-else", None, "not a OneGrid token"),
    ],
)
def test_bearer_header(header, token, problem):
    assert bearer(header) == (token, problem)


def test_retry_after_is_whole_seconds_at_least_one():
    assert [retry_after(w) for w in (0.0, 0.2, 1.0, 1.01)] == [1, 1, 1, 2]


# -- the manifest -------------------------------------------------------------------------


def test_limits_default_and_demo_tenants_trust_unauthenticated_events():
    t = registry().tenants[QINLING]
    assert (t.rate_per_department, t.burst_per_department, t.max_queues) == (
        LIMITS["rate_per_department"],
        LIMITS["burst_per_department"],
        LIMITS["max_queues"],
    )
    assert t.trust_unauthenticated_amqp and t.trust_unauthenticated_http


def _problems(tmp_path, change):
    root = copy_contracts(tmp_path)
    edit_yaml(root / "tenants" / f"{QINLING}.yaml", change)
    reg, problems = load(root)
    return reg, [(p.path, p.reason) for p in problems]


def test_a_manifest_without_limits_or_trust_gets_the_defaults(tmp_path):
    def strip(doc):
        doc.pop("limits")
        doc.pop("trust_unauthenticated_amqp")
        doc.pop("trust_unauthenticated_http")

    reg, problems = _problems(tmp_path, strip)
    t = reg.tenants[QINLING]
    assert problems == [] and not t.trust_unauthenticated_amqp and not t.trust_unauthenticated_http
    assert all(getattr(t, k) == v for k, v in LIMITS.items())


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"rate_per_department": 0}, ("limits.rate_per_department", "must be a positive number (events per second)")),
        ({"rate_per_department": 2.5}, None),
        ({"max_queues": "many"}, ("limits.max_queues", "must be a positive integer")),
        ({"max_conections": 5}, ("limits.max_conections", "unknown limit; one of " + ", ".join(LIMITS))),
        (
            {"burst_per_department": 10},
            ("limits.burst_per_department", "10 is less than max_batch 500: a full batch could never pass"),
        ),
        ({"max_request_bytes": 100}, ("limits.max_request_bytes", "100 is less than max_payload_bytes 65536")),
    ],
)
def test_limits_are_checked(tmp_path, change, expected):
    _, problems = _problems(tmp_path, lambda d: d["limits"].update(change))
    assert problems == ([expected] if expected else [])


def test_trust_must_be_a_boolean(tmp_path):
    _, problems = _problems(tmp_path, lambda d: d.update(trust_unauthenticated_http="yes"))
    assert problems == [("trust_unauthenticated_http", "must be true or false")]


# -- the provisioning plan ------------------------------------------------------------------------


def _snapshot_of(tenant, admin="guest") -> prov.Snapshot:
    """The snapshot of a tenant onboarded exactly as its manifest says."""
    wanted, bus = prov.principals(tenant), prov.state(tenant)
    return prov.Snapshot(
        vhost={"name": tenant.id, "description": bus.description},
        vhost_limits=bus.limits.as_dict(),
        users={admin: {"tags": ["administrator"]}, **{n: {"tags": w["tags"]} for n, w in wanted.items()}},
        permissions={
            admin: prov.ADMIN_PERMISSIONS,
            **{n: w["permissions"] for n, w in wanted.items() if w["permissions"]},
        },
        topic_permissions={n: w["topic"] for n, w in wanted.items() if w["topic"]},
        user_limits={n: w["limits"] for n, w in wanted.items() if w["limits"]},
        policies=prov.policies(bus),
        exchanges=prov.exchanges(bus),
        queues={n: {"type": a.get("x-queue-type", "classic"), "arguments": a} for n, a in prov.queues(tenant).items()},
        bindings=prov.bindings(bus),
        redis_user={"flags": ["on"], "keys": "~k", "channels": "", "commands": "-@all"},
        redis_wanted={"flags": ["on"], "keys": "~k", "channels": "", "commands": "-@all"},
        tokens={d: "active" for d in tenant.departments},
        notify_secrets=set(prov.signing_secrets(tenant)),
    )


def test_an_empty_broker_gets_everything_and_no_secret_is_in_the_plan():
    t = _tenant()
    plan = prov.plan(t, prov.Snapshot(tokens={}, redis_user=None), "guest", registry().departments)
    kinds = {(c.op, c.kind) for c in plan.changes}
    assert {
        ("+", k)
        for k in (
            "vhost",
            "vhost-limit",
            "policy",
            "exchange",
            "queue",
            "user",
            "permissions",
            "topic-permissions",
            "user-limit",
            "redis-user",
            "token",
        )
    } <= kinds
    users = {c.name for c in plan.changes if c.kind == "user"}
    assert users == {f"{t.id}.{d}" for d in t.departments} | {f"{t.id}.svc.{s}" for s in prov.SERVICES} | {
        f"{t.id}.keda",
        f"{t.id}.ops",
    }
    assert "password" not in " ".join(map(str, plan.changes)).replace("password shown once", "")
    assert plan.changes[0].kind == "vhost" and plan.problems == []


def test_onboarded_as_the_manifest_says_means_no_changes():
    t = _tenant()
    plan = prov.plan(t, _snapshot_of(t), "guest", registry().departments)
    assert plan.changes == [] and plan.notes == []


def test_drift_is_a_change():
    t = _tenant()
    snap = _snapshot_of(t)
    user = f"{t.id}.water"
    snap.permissions[user] = {"configure": ".*", "write": ".*", "read": ".*"}  # someone widened it
    snap.users[user] = {"tags": ["administrator"]}
    snap.vhost_limits["max-connections"] = 10_000
    snap.permissions["suining-jincheng.water"] = {"configure": "", "write": ".*", "read": ""}  # another county's
    plan = prov.plan(t, snap, "guest", registry().departments)
    assert [str(c) for c in plan.changes] == [
        "~ vhost-limit max-connections: 10000 → 512",
        f"~ user {user}: tags ['administrator'] → []",
        f"~ permissions {user}: configure '^$' write '^onegrid\\\\.intake$' "
        "read '^(receipts\\\\.water|workorders\\\\.water)$'",
        "- permissions suining-jincheng.water: configure '' write '.*' read '': not a principal of zhongyuan-qinling",
    ]


def test_a_disabled_department_loses_its_user_and_a_stranger_is_left_alone():
    t = _tenant()
    snap = _snapshot_of(t)
    smaller = dataclasses.replace(t, departments=tuple(d for d in t.departments if d != "water"))
    snap.users[f"{t.id}.someone"] = {"tags": ["management"]}
    plan = prov.plan(smaller, snap, "guest", registry().departments)
    assert [str(c) for c in plan.changes] == [f"- user {t.id}.water: not in the manifest any more"]
    assert any("workorders.water belongs to no enabled department" in n for n in plan.notes)
    assert any(f"user {t.id}.someone is not one OneGrid onboarding makes" in n for n in plan.notes)


def test_a_revoked_department_stays_revoked():
    t = _tenant()
    snap = _snapshot_of(t)
    user = f"{t.id}.water"
    snap.users[user] = {"tags": [prov.REVOKED_TAG]}
    del snap.permissions[user], snap.topic_permissions[user]
    snap.tokens["water"] = "revoked"
    assert prov.plan(t, snap, "guest", registry().departments).changes == []


def test_too_few_queues_allowed_stops_onboarding():
    plan = prov.plan(_tenant(max_queues=10), prov.Snapshot(), "guest")
    assert plan.problems and "limits.max_queues 10" in plan.problems[0]


def test_department_and_service_permissions():
    import re

    bus = prov.state(_tenant())
    water = bus.user(f"{QINLING}.water")
    assert water.permissions.as_dict() == {
        "configure": "^$",
        "write": r"^onegrid\.intake$",
        "read": r"^(receipts\.water|workorders\.water)$",
    }
    assert prov.topic_permissions(water) == {"onegrid.intake": {"write": r"^water\.", "read": "^$"}}
    intake = bus.user(f"{QINLING}.svc.intake").permissions
    assert re.match(intake.configure, "intake.events.retry.1000ms") and re.match(intake.read, "intake.events")
    assert not re.match(intake.read, "workorders.water") and not re.match(intake.configure, "onegrid.workorders")
    # intake binds intake.registry-changed to onegrid.events (the registry's changes), nothing else there
    assert re.match(intake.read, "onegrid.events") and not re.match(intake.configure, "routing.case-registered")
    routing = bus.user(f"{QINLING}.svc.routing").permissions
    assert re.match(routing.write, "onegrid.workorders") and not re.match(routing.write, "onegrid.intake")


def test_secret_names_are_those_the_kubernetes_overlays_read():
    k8s = pytest.importorskip("onegrid.operator.k8s")
    from onegrid.operator import ops

    t = registry().tenants[QINLING]
    names = {u.secret for u in k8s.bus_users(t, shapes=[])}
    for dept in t.departments:
        assert ops.secret_name(ops.Credential(f"{t.id}.{dept}", "department", dept)) in names
    assert ops.secret_name(ops.Credential(t.id, "redis", "redis")) == k8s.REDIS_SECRET
    assert ops.k8s_namespace(t.id) == k8s.namespace(t.id)


def test_replay_headers_are_the_consumers():
    from onegrid.operator import ops

    reliable = pytest.importorskip("onegrid.adapters.nameko.reliable")
    assert (ops.ATTEMPT, ops.ROUTING_KEY, ops.USER_ID, ops.REPLAYED_FROM) == (
        reliable.ATTEMPT,
        reliable.ROUTING_KEY,
        reliable.USER_ID,
        reliable.REPLAYED_FROM,
    )


def test_k8s_secret_files_are_private_and_a_new_token_keeps_the_password(tmp_path):
    import stat

    import yaml

    from onegrid.operator import ops

    first = ops.Credential(
        "t-one.water",
        "department",
        "water",
        {"username": "t-one.water", "password": "p1", "vhost": "t-one", "http-token": "ogt_1"},
    )
    [path] = ops.write_k8s_secrets("t-one", [first], tmp_path / "s")
    assert path.name == "bus-user-dept-water.yaml" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    ops.write_k8s_secrets(
        "t-one", [ops.Credential("t-one.water", "department", "water", {"http-token": "ogt_2"})], tmp_path / "s"
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["metadata"]["namespace"] == "onegrid-t-one" and doc["kind"] == "Secret"
    assert doc["stringData"] == {"username": "t-one.water", "password": "p1", "vhost": "t-one", "http-token": "ogt_2"}


def test_service_credentials_name_where_the_services_reach_the_bus():
    from onegrid.operator import ops

    t = registry().tenants[QINLING]
    where = ops.Where("amqp://guest:guest@onegrid-bus.onegrid-system.svc:5672/", "redis://onegrid-redis:6379/0")
    cred = ops.service_credential(t, "intake", "s3cr/t", where)
    assert cred.values["uri"] == (
        "amqp://zhongyuan-qinling.svc.intake:s3cr%2Ft@onegrid-bus.onegrid-system.svc:5672/zhongyuan-qinling"
    )
    assert ops.redis_credential(t.id, "pw", where).values["url"] == "redis://zhongyuan-qinling:pw@onegrid-redis:6379/0"
