"""One desired state for a county's bus (onegrid.operator.desired), two renderings of it: the
management-API plan `onegrid tenant onboard` applies, and the Messaging Topology Operator
resources of the Kubernetes overlay. For every tenant manifest both describe the same vhost
limits, policies, users, permissions, topic permissions, exchanges, queues and bindings; the
queues are those the services declare; and the docs quote the state's figures."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from onegrid.adapters.amqp import topology as amqp_topology
from onegrid.kernel import topology as names
from onegrid.operator import desired, k8s, ops
from onegrid.operator import provisioning as prov

from .helpers import registry

warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")
ROOT = Path(__file__).resolve().parents[2]
TENANTS = sorted(registry().tenants)
ADMIN = "operator-admin"


def _as_deployed(monkeypatch) -> None:
    """The environment the Kubernetes ConfigMap gives the services (neither variable set)."""
    monkeypatch.delenv("RETRY_DELAYS_MS", raising=False)
    monkeypatch.delenv("ONEGRID_QUEUE_TYPE", raising=False)


def _from_plan(plan: prov.Plan) -> dict:
    """What the management-API plan for an empty broker makes, by kind."""
    out: dict = {
        "limits": {},
        "policies": {},
        "users": {},
        "user_limits": {},
        "permissions": {},
        "topic": {},
        "exchanges": {},
        "queues": {},
        "bindings": set(),
    }
    for ch in plan.changes:
        assert ch.op == "+", str(ch)
        if ch.kind == "vhost-limit":
            out["limits"][ch.name] = ch.data["value"]
        elif ch.kind == "policy":
            out["policies"][ch.name] = ch.data["policy"]
        elif ch.kind == "user":
            out["users"][ch.name] = sorted(ch.data["tags"])
        elif ch.kind == "user-limit":
            out["user_limits"].setdefault(ch.data["user"], {})[ch.data["limit"]] = ch.data["value"]
        elif ch.kind == "permissions" and ch.name != ADMIN:
            out["permissions"][ch.name] = {k: ch.data[k] for k in ("configure", "write", "read")}
        elif ch.kind == "topic-permissions":
            out["topic"].setdefault(ch.name, {})[ch.data["exchange"]] = {k: ch.data[k] for k in ("write", "read")}
        elif ch.kind == "exchange":
            out["exchanges"][ch.name] = ch.data["type"]
        elif ch.kind == "queue":
            out["queues"][ch.name] = ch.data["arguments"]
        elif ch.kind == "binding":
            out["bindings"].add((ch.data["exchange"], ch.data["queue"], ch.data["key"]))
    return out


def _from_k8s(docs: list[dict], secrets: list[dict]) -> dict:
    """What the overlay's resources make, once the operator has applied them (usernames come
    from the Secrets each User imports)."""
    usernames = {s["metadata"]["name"]: s["stringData"].get("username") for s in secrets}
    by_cr: dict[str, str] = {}
    out: dict = {"users": {}, "user_limits": {}, "permissions": {}, "topic": {}, "policies": {}}
    out.update(exchanges={}, queues={}, bindings=set())
    for doc in docs:
        kind, spec, name = doc["kind"], doc["spec"], doc["metadata"]["name"]
        if kind == "Vhost":
            out["limits"] = {"max-connections": spec["limits"]["connections"], "max-queues": spec["limits"]["queues"]}
        elif kind == "User":
            user = by_cr[name] = usernames[spec["importCredentialsSecret"]["name"]]
            out["users"][user] = sorted(spec["tags"])
            if "limits" in spec:
                out["user_limits"][user] = {"max-connections": spec["limits"]["connections"]}
        elif kind == "Permission":
            out["permissions"][by_cr[spec["userReference"]["name"]]] = spec["permissions"]
        elif kind == "TopicPermission":
            p = spec["permissions"]
            user = by_cr[spec["userReference"]["name"]]
            out["topic"].setdefault(user, {})[p["exchange"]] = {"write": p["write"], "read": p["read"]}
        elif kind == "Policy":
            out["policies"][spec["name"]] = {
                "pattern": spec["pattern"],
                "apply-to": spec["applyTo"],
                "priority": spec["priority"],
                "definition": spec["definition"],
            }
        elif kind == "Exchange":
            out["exchanges"][spec["name"]] = spec["type"]
        elif kind == "Queue":
            args = dict(spec.get("arguments") or {})
            if "type" in spec:
                args["x-queue-type"] = spec["type"]  # as the operator declares it
            out["queues"][spec["name"]] = args
        elif kind == "Binding":
            out["bindings"].add((spec["source"], spec["destination"], spec["routingKey"]))
    return out


@pytest.mark.parametrize("tenant_id", TENANTS)
def test_onboarding_and_the_kubernetes_overlay_make_the_same_bus(tenant_id, monkeypatch):
    _as_deployed(monkeypatch)
    t = registry().tenants[tenant_id]
    empty = prov.Snapshot(tokens={}, redis_user=None)
    plan = prov.plan(t, empty, ADMIN, registry().departments, ops.desired_state(t))
    assert plan.problems == []
    mgmt = _from_plan(plan)
    kube = _from_k8s(k8s.topology_resources(t), k8s.secrets(t, token=lambda: "x"))
    for what in ("limits", "policies", "users", "user_limits", "permissions", "topic", "exchanges", "queues"):
        assert mgmt[what] == kube[what], what
    assert mgmt["bindings"] == kube["bindings"]
    # and they are the manifest's figures, not a renderer's own
    assert kube["limits"] == {"max-connections": t.max_connections, "max-queues": t.max_queues}
    depts = {f"{t.id}.{d}" for d in t.departments}
    assert kube["user_limits"] == {u: {"max-connections": t.max_connections_per_department} for u in depts}
    intake = kube["policies"]["onegrid-consumed-intake.events"]["definition"]
    assert intake["max-length"] == t.max_intake_backlog and intake["delivery-limit"] == desired.DELIVERY_LIMIT
    assert kube["policies"]["onegrid-dead-letters"]["definition"]["max-length"] == t.max_dead_letters


@pytest.mark.parametrize("env", [{}, {"RETRY_DELAYS_MS": "100,300", "ONEGRID_QUEUE_TYPE": "classic"}])
def test_the_state_declares_the_queues_the_services_declare(env, monkeypatch):
    """The broker refuses a queue declared twice with other arguments: onboarding declares
    what the services' kombu topology declares, in this process's environment."""
    _as_deployed(monkeypatch)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    t = registry().tenants[TENANTS[0]]
    kombu = amqp_topology.all_queues(t.departments)
    bus = ops.desired_state(t)
    declared = [(q.name, q.queue_arguments) for q in kombu]  # type: ignore[attr-defined]  # kombu: no stubs
    assert [(q.name, dict(q.arguments)) for q in bus.queues] == declared
    bound = amqp_topology.routes(kombu)
    # the dead letters' queue is no consumed queue: only onboarding binds it, to every other reason
    dead = {(names.INTAKE_DEAD, q, why) for why, q in names.INTAKE_DEAD_LETTERS.items() if q not in names.CONSUMED}
    assert prov.bindings(bus) == set(bound) | dead
    arguments = {(b.exchange, b.queue, b.key): dict(b.arguments) for b in bus.bindings}
    assert {route: arguments[route] for route in bound} == bound
    assert all(q.durable for q in kombu)


def test_the_history_streams_are_streams_kept_as_the_manifest_says():
    t = registry().tenants[TENANTS[0]]
    bus = ops.desired_state(t)
    streams = {q.name: dict(q.arguments) for q in bus.queues if q.name.startswith(names.HISTORY_PREFIX)}
    assert streams == {n: {"x-queue-type": "stream"} for n in (names.HISTORY_INTAKE, names.HISTORY_LIFECYCLE)}
    policy = next(p for p in bus.policies if p.name == "onegrid-history")
    assert all(re.match(policy.pattern, n) for n in streams)
    assert policy.definition == {"max-age": f"{t.history_max_age_days}D", "max-length-bytes": t.history_max_bytes}
    # no other policy matches a stream (RabbitMQ applies only the one with the highest priority)
    assert not [p.name for p in bus.policies if p is not policy and any(re.search(p.pattern, n) for n in streams)]
    routes = prov.bindings(bus)
    assert (names.EVENTS, names.HISTORY_INTAKE, "case.registered") in routes
    assert (names.EVENTS, names.HISTORY_INTAKE, names.QUARANTINED) in routes
    assert {(names.WORKORDERS, names.HISTORY_LIFECYCLE, d) for d in t.departments} <= routes
    ops_user = bus.user(f"{t.id}.ops").permissions
    assert all(re.fullmatch(ops_user.read, n) for n in streams) and not re.fullmatch(ops_user.read, "intake.events")
    # supervision reads history.lifecycle (a timeline's verify: the heads the bus carried), and
    # only that; the registry both (what-if: the cases and what happened to them); no other
    # service reads a stream, and no service may configure or write one
    readers = {
        u.who: sorted(n for n in streams if re.fullmatch(u.permissions.read, n))
        for u in bus.users
        if u.kind == "service"
    }
    assert {s: n for s, n in readers.items() if n} == {
        "supervision": [names.HISTORY_LIFECYCLE],
        "registry": sorted(streams),
    }
    assert not [
        (u.name, n)
        for u in bus.users
        if u.kind == "service"
        for n in streams
        if re.fullmatch(u.permissions.configure, n) or re.fullmatch(u.permissions.write, n)
    ]


def test_the_state_holds_no_secret():
    t = registry().tenants[TENANTS[0]]
    text = repr(prov.state(t)).lower()
    assert "password" not in text and "token" not in text


def test_a_service_gets_rpc_only_as_it_serves_or_calls_it():
    t = registry().tenants[TENANTS[0]]
    bus = desired.desired(
        t,
        [
            k8s.ServiceShape("served", "m:C", rpc=True),
            k8s.ServiceShape("caller", "m:C", rpc_client=True),
            k8s.ServiceShape("quiet", "m:C"),
        ],
    )
    served, caller, quiet = (bus.user(f"{t.id}.svc.{n}").permissions for n in ("served", "caller", "quiet"))
    assert re.fullmatch(served.configure, "rpc-served") and not re.fullmatch(served.configure, "rpc.reply-served-1")
    assert re.fullmatch(caller.read, "rpc.reply-caller-1f2e") and not re.fullmatch(caller.read, "rpc-caller")
    assert quiet.configure == "^$" and quiet.read == "^$"
    assert not re.fullmatch(quiet.write, "nameko-rpc") and not re.fullmatch(quiet.write, "onegrid.intake")


# -- the docs quote the state ---------------------------------------------------------------
BEGIN, END = "<!-- desired-state figures: begin -->", "<!-- desired-state figures: end -->"
FIGURES_DOC = ROOT / "docs" / "operations.md"
FIGURES_TENANT = "suining-jincheng"  # a county with the default limits


def test_the_docs_figures_table_is_the_states():
    text = FIGURES_DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"{FIGURES_DOC} carries the table between {BEGIN} and {END}"
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"
    expected = desired.figures_table(prov.state(registry().tenants[FIGURES_TENANT]))
    assert block == expected, f"docs/operations.md's figures are stale; put this between the markers:\n{expected}"


@pytest.mark.parametrize("doc", ["onboarding.md", "deploy.md", "operations.md"])
def test_the_docs_state_no_other_delivery_limit_or_bounds(doc):
    """Figures quoted in prose (or in a shown plan) are the state's too."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    state = prov.state(registry().tenants[FIGURES_TENANT])
    values = {f.source: f.value for f in desired.figures(state)}
    for m in re.finditer(r"'delivery-limit': (\d+)|delivered (\d+)\s+times|crashed its consumer (\d+) times", text):
        assert int(next(g for g in m.groups() if g)) == values["DELIVERY_LIMIT"], (doc, m[0])
    for m in re.finditer(r"vhost-limit max-(connections|queues): (\d+)$", text, re.M):
        assert int(m[2]) == values[f"limits.max_{m[1]}"], (doc, m[0])
    for m in re.finditer(r"'max-length': (\d+)", text):
        assert int(m[1]) in values.values(), (doc, m[0])
