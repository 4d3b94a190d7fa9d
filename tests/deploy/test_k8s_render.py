"""The generated Kubernetes files are what onegrid/operator/k8s.py renders from the code and the
tenant manifests (so they cannot drift), and what is rendered holds OneGrid's rules: every
service deployed and probed, the broker topology taken from onegrid.adapters.amqp.topology,
least privilege on the bus, and no secret in the repository."""

from __future__ import annotations

import re
import warnings

import pytest
import yaml

from onegrid.adapters.amqp import topology
from onegrid.app.registry import load_strict
from onegrid.catalogue import SERVICES
from onegrid.cli.main import main as cli
from onegrid.kernel import topology as names
from onegrid.operator import k8s
from tests.deploy.helpers import DEPLOY, ROOT, queue_defaults

warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")


@pytest.fixture(scope="module")
def registry():
    return load_strict(ROOT / "contracts")


@pytest.fixture(scope="module")
def shapes():
    return {s.name: s for s in k8s.service_shapes()}


def _docs(path):
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def test_committed_files_are_what_the_renderer_makes(registry):
    rendered = k8s.render(list(registry.tenants.values()), registry.tenants, DEPLOY)
    stale = [
        str(p.relative_to(ROOT))
        for p, text in rendered.files.items()
        if not p.exists() or p.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date: {stale}; run `.venv/bin/onegrid tenant render-k8s --all`"
    committed = {p.name for p in (DEPLOY / "overlays").iterdir()}
    assert committed == set(registry.tenants), "every tenant manifest has an overlay, and only those"


def test_every_service_has_a_deployment_service_pdb_and_servicemonitor():
    docs = _docs(DEPLOY / "base" / "services.yaml")
    for name in SERVICES:
        kinds = {d["kind"] for d in docs if d["metadata"]["name"] == f"onegrid-{name}"}
        assert kinds == {"Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor"}, name


def test_deployments_are_probed_bounded_and_shut_down_gracefully(shapes):
    for d in (d for d in _docs(DEPLOY / "base" / "services.yaml") if d["kind"] == "Deployment"):
        name = d["metadata"]["labels"]["app.kubernetes.io/component"]
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["args"] == ["serve", name] and c["image"] == "onegrid"
        # liveness and startup ask nothing of Redis or the broker; readiness does (probes.py)
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez"), ("startupProbe", "/livez")):
            assert c[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)
        assert set(c["resources"]) == {"requests", "limits"} and all(
            set(c["resources"][k]) == {"cpu", "memory"} for k in ("requests", "limits")
        ), name
        # nameko finishes running handlers on SIGTERM: the slowest is bounded by the Redis pool
        # wait (10 s, RedisStore) plus a command and a confirmed publish; preStop sleeps 5 s first
        assert pod["terminationGracePeriodSeconds"] >= 30 + 5, name
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
        assert env["AMQP_URI"] == {"name": f"bus-user-svc-{name}", "key": "uri"}
        assert env["REDIS_URL"] == {"name": "onegrid-redis", "key": "url"}
        assert c["envFrom"][0] == {"configMapRef": {"name": "onegrid-config"}}
        # a service that consumes queues is scaled by KEDA, not by a fixed replica count
        assert ("replicas" in d["spec"]) == (not shapes[name].queues), name


def test_queues_exchanges_and_bindings_are_topologys(registry):
    for tenant in registry.tenants.values():
        docs = _docs(DEPLOY / "overlays" / tenant.id / "bus.yaml")
        by_kind = {}
        for doc in docs:
            by_kind.setdefault(doc["kind"], []).append(doc["spec"])
        with queue_defaults():
            expected = topology.all_queues(tenant.departments)
        assert [q["name"] for q in by_kind["Queue"]] == [q.name for q in expected]
        for spec, queue in zip(by_kind["Queue"], expected, strict=True):
            args = dict(queue.queue_arguments)
            assert spec.get("type") == args.pop("x-queue-type", None), spec["name"]
            assert spec.get("arguments", {}) == args and spec["durable"] is True, spec["name"]
            assert spec["deletionPolicy"] == "retain" and spec["vhost"] == tenant.id
        bound = {(b["source"], b["destination"], b["routingKey"]): b.get("arguments", {}) for b in by_kind["Binding"]}
        consumed = topology.routes(expected)  # and the history streams' bindings
        # and the dead letters' queue, bound (by onboarding only) for every other dead-letter reason
        dead = {
            (names.INTAKE_DEAD, queue, why): names.binding_arguments(names.INTAKE_DEAD, why)
            for why, queue in names.INTAKE_DEAD_LETTERS.items()
            if queue not in names.CONSUMED
        }
        assert bound == {**consumed, **dead}
        assert {e["name"]: e["type"] for e in by_kind["Exchange"]} == names.EXCHANGES
        for quorum in (
            q
            for q in by_kind["Queue"]
            if q.get("type") == "quorum"
            and not q["name"].endswith(".dlq")
            and not q["name"].startswith(("workorders.", "receipts."))
        ):
            assert quorum["name"] in topology.CONSUMED
        policies = {p["name"]: p for p in by_kind["Policy"]}
        for name in topology.CONSUMED:
            p = policies[f"onegrid-consumed-{name}"]
            assert re.fullmatch(p["pattern"], name)
            if name == "intake.events":  # sorted by why: see onegrid.kernel.topology.INTAKE_DEAD_LETTERS
                assert p["definition"]["dead-letter-exchange"] == names.INTAKE_DEAD
            else:
                assert p["definition"]["dead-letter-routing-key"] == f"{name}.dlq"


def test_departments_may_publish_only_as_themselves_and_read_only_their_queue(registry):
    tenant = registry.tenants["suining-jincheng"]
    docs = _docs(DEPLOY / "overlays" / tenant.id / "bus.yaml")
    perms = {d["metadata"]["name"]: d["spec"]["permissions"] for d in docs if d["kind"] == "Permission"}
    topic = {d["metadata"]["name"]: d["spec"]["permissions"] for d in docs if d["kind"] == "TopicPermission"}
    for dept in tenant.departments:
        name = k8s.k8s_name("dept", dept)
        p, t = perms[name], topic[name]
        assert p["configure"] == "^$"
        assert re.fullmatch(p["write"], "onegrid.intake") and not re.fullmatch(p["write"], "onegrid.events")
        assert re.fullmatch(p["read"], f"workorders.{dept}") and re.fullmatch(p["read"], f"receipts.{dept}")
        others = [d for d in tenant.departments if d != dept]
        assert not any(re.fullmatch(p["read"], f"{q}.{o}") for o in others for q in ("workorders", "receipts"))
        assert t["exchange"] == "onegrid.intake" and re.match(t["write"], f"{dept}.some_event")
        assert not any(re.match(t["write"], f"{o}.some_event") for o in others)
    # ... and the doors (topology.DOORS), each to its one event type in onegrid.intake
    doors = {k8s.k8s_name("svc", door): f"{d}.{t}" for door, (d, t) in names.DOORS.items()}
    assert set(topic) == {k8s.k8s_name("dept", d) for d in tenant.departments} | set(doors), "only they have keys"
    for name, key in doors.items():
        assert topic[name]["exchange"] == "onegrid.intake" and re.fullmatch(topic[name]["write"], key)
        assert not re.fullmatch(topic[name]["write"], "governance.hotline_order_received")
        assert re.fullmatch(perms[name]["write"], "onegrid.intake")


def test_services_configure_only_their_own_queues(registry, shapes):
    tenant = registry.tenants["zhongyuan-qinling"]
    users = {u.cr_name: u for u in k8s.bus_users(tenant)}
    for name, shape in shapes.items():
        user = users[f"svc-{name}"]
        for queue in shape.queues:
            for own in (queue, f"{queue}.dlq", f"{queue}.retry.1000ms"):
                assert re.fullmatch(user.configure, own), (name, own)
        for other in set(topology.CONSUMED) - set(shape.queues):
            assert not re.fullmatch(user.configure, other) and not re.fullmatch(user.read, other), (name, other)
        assert not any(re.fullmatch(user.read, f"workorders.{d}") for d in tenant.departments), name
        if name in names.DOORS:  # a door publishes into intake: its one key, held by a topic permission
            assert [t.exchange for t in user.user.topic] == ["onegrid.intake"], name
        else:
            assert not re.fullmatch(user.write, "onegrid.intake"), f"{name} never publishes as a department"


def test_every_consumed_queue_scales_its_service(registry, shapes):
    tenant = registry.tenants["zhongyuan-qinling"]
    docs = _docs(DEPLOY / "overlays" / tenant.id / "scaling.yaml")
    scaled = {d["spec"]["scaleTargetRef"]["name"]: d["spec"] for d in docs if d["kind"] == "ScaledObject"}
    triggers = {t["metadata"]["queueName"]: (target, t) for target, spec in scaled.items() for t in spec["triggers"]}
    assert set(triggers) == set(topology.CONSUMED)
    for queue, (target, t) in triggers.items():
        assert target == f"onegrid-{k8s.consumers()[queue]}"
        assert t["metadata"]["vhostName"] == tenant.id and t["metadata"]["protocol"] == "http"
        assert t["authenticationRef"]["name"] == "onegrid-rabbitmq"
    assert all(s["minReplicaCount"] >= 2 for s in scaled.values()), "two replicas, so a PDB can hold one"


def test_secrets_cover_every_reference_and_none_is_committed(registry):
    tenant = registry.tenants["zhongyuan-qinling"]
    made = {s["metadata"]["name"]: s["stringData"] for s in k8s.secrets(tenant)}
    refs = set()
    for path in [
        DEPLOY / "base" / "services.yaml",
        DEPLOY / "base" / "redis.yaml",
        *(DEPLOY / "overlays" / tenant.id).glob("*.yaml"),
    ]:
        text = path.read_text(encoding="utf-8")
        for doc in yaml.safe_load_all(text):
            refs |= set(_secret_refs(doc))
        assert "stringData" not in text and "kind: Secret" not in text, f"{path}: secrets are never committed"
    for name, key in refs:
        assert name in made, f"`onegrid tenant secrets` does not make Secret {name}"
        assert key is None or key in made[name], f"Secret {name} has no key {key}"
    for user in (u for u in made if u.startswith("bus-user-")):
        assert {"username", "password"} <= set(made[user])
    assert made["bus-user-svc-intake"]["uri"].endswith(f"@onegrid-bus.onegrid-system.svc:5672/{tenant.id}")
    again = {s["metadata"]["name"]: s["stringData"] for s in k8s.secrets(tenant)}
    assert again["onegrid-redis"]["password"] != made["onegrid-redis"]["password"], "fresh passwords each time"


def _secret_refs(node):
    """(Secret name, key or None) for every reference to a Secret in a manifest."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "secretKeyRef":
                yield value["name"], value["key"]
            elif key == "secretRef" or key == "importCredentialsSecret":
                yield value["name"], None
            elif key == "secretTargetRef":
                yield from ((ref["name"], ref["key"]) for ref in value)
            else:
                yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)


def test_cli_renders_an_overlay_elsewhere_and_prints_secrets(tmp_path, capsys):
    out = tmp_path / "overlays" / "suining-jincheng"
    assert (
        cli(
            [
                "--dir",
                str(ROOT / "contracts"),
                "tenant",
                "render-k8s",
                "suining-jincheng",
                "--out",
                str(out),
                "--deploy-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert (out / "bus.yaml").read_text() == (DEPLOY / "overlays" / "suining-jincheng" / "bus.yaml").read_text()
    assert "- ../../base" in (out / "kustomization.yaml").read_text()
    capsys.readouterr()
    assert cli(["--dir", str(ROOT / "contracts"), "tenant", "secrets", "suining-jincheng"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["kind"] for d in docs} == {"Secret"}
    assert {d["metadata"]["namespace"] for d in docs} == {"onegrid-suining-jincheng"}
    assert (
        cli(["--dir", str(ROOT / "contracts"), "tenant", "render-k8s", "no-such-county", "--deploy-dir", str(tmp_path)])
        == 2
    )


def test_serve_execs_nameko_with_the_service_class(monkeypatch):
    calls = []
    monkeypatch.setattr("os.execv", lambda path, argv: calls.append((path, argv)))
    assert cli(["serve", "routing", "--config", "/app/config.yml"]) == 0
    ((path, argv),) = calls
    assert argv[1:] == ["-m", "nameko", "run", "--config", "/app/config.yml", SERVICES["routing"]]
    with pytest.raises(SystemExit):
        cli(["serve", "no-such-service"])
