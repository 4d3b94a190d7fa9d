"""Offline validation of what `kubectl apply -k` would send: every kustomization builds, the
core kinds pass kubernetes-validate --strict, the operators' resources pass their CRDs'
schemas (and name no field the schema does not know, which the API server would silently
drop), the pods meet the `restricted` Pod Security Standard, and a county's NetworkPolicies
let it reach only its bus and its Redis."""
from __future__ import annotations

import subprocess

import jsonschema
import pytest
import yaml

from onegrid import k8s
from tests.deploy.helpers import CRDS, DEPLOY, KUBERNETES_VERSION, kustomize, need, overlays

CUSTOM_GROUPS = ("rabbitmq.com", "keda.sh", "monitoring.coreos.com")
KUSTOMIZATIONS = [DEPLOY / "base", DEPLOY / "platform", *overlays()]


@pytest.fixture(scope="module")
def built():
    return {path.relative_to(DEPLOY).as_posix(): kustomize(path) for path in KUSTOMIZATIONS}


def _custom(doc: dict) -> bool:
    return doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS


@pytest.fixture(scope="module")
def crd_schemas():
    if not CRDS.is_dir():
        pytest.skip(f"no CRDs to validate the operators' resources against: {CRDS} is absent "
                    "(it holds the operators' CRD files; see its README)")
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_every_kustomization_builds(built):
    assert set(built) == {"base", "platform", *(f"overlays/{p.name}" for p in overlays())}
    for name, docs in built.items():
        assert docs, name
        ids = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
        assert len(ids) == len(set(ids)), f"{name}: duplicate resources"
    for overlay in overlays():
        docs = built[f"overlays/{overlay.name}"]
        assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {f"onegrid-{overlay.name}"}


def test_core_kinds_pass_kubernetes_validate_strict(built, tmp_path):
    tool = need("kubernetes-validate")
    for name, docs in built.items():
        core = [d for d in docs if not _custom(d)]
        path = tmp_path / (name.replace("/", "-") + ".yaml")
        path.write_text(yaml.safe_dump_all(core, sort_keys=False), encoding="utf-8")
        out = subprocess.run([tool, "--strict", "-k", KUBERNETES_VERSION, "--quiet", str(path)],
                             capture_output=True, text=True, timeout=120)
        errors = [line for line in out.stdout.splitlines() if not line.startswith(("INFO", "WARN"))]
        assert out.returncode == 0 and not errors, f"{name}:\n" + "\n".join(errors or [out.stderr[-2000:]])


def _unknown_fields(value, schema: dict, path: str) -> list[str]:
    """Fields the structural schema does not declare: the API server prunes them silently."""
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict):
        props, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                found += _unknown_fields(item, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += _unknown_fields(item, extra, f"{path}.{key}")
            elif props is not None and extra is not True:
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += _unknown_fields(item, schema["items"], f"{path}[{i}]")
    return found


def test_operator_resources_match_their_crds(built, crd_schemas):
    checked = set()
    for name, docs in built.items():
        for doc in (d for d in docs if _custom(d)):
            key = (doc["apiVersion"], doc["kind"])
            assert key in crd_schemas, f"{name}: no CRD for {key} in {CRDS}"
            where = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
            errors = sorted(jsonschema.Draft7Validator(crd_schemas[key]).iter_errors(doc), key=str)
            assert not errors, f"{where}: " + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
            unknown = _unknown_fields(doc.get("spec"), crd_schemas[key]["properties"]["spec"], "spec")
            assert not unknown, f"{where}: fields the CRD does not have: {unknown}"
            checked.add(doc["kind"])
    assert checked >= {"RabbitmqCluster", "Vhost", "User", "Permission", "TopicPermission", "Policy", "Queue",
                       "Exchange", "Binding", "ScaledObject", "TriggerAuthentication", "ServiceMonitor",
                       "PodMonitor", "PrometheusRule"}


def test_crd_check_catches_a_misspelt_field(crd_schemas):
    queue = {"apiVersion": "rabbitmq.com/v1beta1", "kind": "Queue", "metadata": {"name": "q"},
             "spec": {"name": "q", "durabel": True, "rabbitmqClusterReference": {"name": "onegrid-bus"}}}
    schema = crd_schemas[("rabbitmq.com/v1beta1", "Queue")]
    assert _unknown_fields(queue["spec"], schema["properties"]["spec"], "spec") == ["spec.durabel"]
    bad = {**queue, "spec": {"name": "q", "deletionPolicy": "keep", "rabbitmqClusterReference": {}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(bad))


def _pods(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield d["metadata"]["name"], d["spec"]["template"]


def test_pods_meet_the_restricted_pod_security_standard(built):
    for overlay in overlays():
        docs = built[f"overlays/{overlay.name}"]
        ns = next(d for d in docs if d["kind"] == "Namespace")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        pods = {name: template["spec"] for name, template in _pods(docs)}
        assert set(pods) == {f"onegrid-{s.name}" for s in k8s.service_shapes()} | {"onegrid-redis"}
        for name, pod in pods.items():
            psc = pod["securityContext"]
            assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0, name
            assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert pod["automountServiceAccountToken"] is False, name
            assert not any("hostPath" in v for v in pod.get("volumes", [])), name
            assert not pod.get("hostNetwork") and not pod.get("hostPID"), name
            for c in pod["containers"]:
                sc = c["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged"), name
                assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), name
                assert sc["readOnlyRootFilesystem"] is True, name
                assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"], name


def _selects(selector: dict, labels: dict) -> bool:
    if not selector:
        return True
    ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for e in selector.get("matchExpressions", []):
        has = e["key"] in labels
        ok &= {"In": has and labels.get(e["key"]) in e.get("values", []),
               "NotIn": not has or labels[e["key"]] not in e.get("values", []),
               "Exists": has, "DoesNotExist": not has}[e["operator"]]
    return ok


def test_a_county_reaches_only_its_bus_its_redis_and_dns(built):
    for overlay in overlays():
        docs = built[f"overlays/{overlay.name}"]
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        deny = [p for p in policies if p["spec"]["podSelector"] == {} and "egress" not in p["spec"]
                and "ingress" not in p["spec"]]
        assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "default deny"
        notify_ports = {c["port"] for c in k8s.notify_channels(_tenant(overlay.name))}
        for name, template in _pods(docs):
            labels = template["metadata"]["labels"]
            for p in (p for p in policies if _selects(p["spec"]["podSelector"], labels)):
                for rule in p["spec"].get("egress", []):
                    assert rule.get("to") and rule.get("ports"), f"{p['metadata']['name']}: egress to anything"
                    ports = {x["port"] for x in rule["ports"]}
                    for peer in rule["to"]:
                        ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                        target = peer.get("podSelector", {}).get("matchLabels", {})
                        if ns == "kube-system":
                            assert target == {"k8s-app": "kube-dns"} and ports == {53}
                        elif ns == k8s.BUS.namespace:
                            assert target == {"app.kubernetes.io/name": k8s.BUS.name} and ports == {5672}
                        elif "ipBlock" in peer:  # notify's receivers, on their channels' ports only
                            assert labels["app.kubernetes.io/component"] == "notify" and ports <= notify_ports
                        else:
                            assert ns is None and target.get("app.kubernetes.io/component") == "redis" and \
                                ports == {6379}, f"{name}: unexpected egress {peer}"
                for rule in p["spec"].get("ingress", []):
                    for peer in rule["from"]:
                        ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                        assert ns in ("monitoring", "ingress-nginx") or (ns is None and "podSelector" in peer), \
                            f"{name}: unexpected ingress {peer}"


def _tenant(tenant_id: str):
    from onegrid.contracts import load_strict
    from tests.deploy.helpers import ROOT
    return load_strict(ROOT / "contracts").tenants[tenant_id]


def test_the_bus_serves_per_queue_metrics_and_admits_every_county(built):
    docs = built["platform"]
    (bus,) = [d for d in docs if d["kind"] == "RabbitmqCluster"]
    assert "prometheus.return_per_object_metrics = true" in bus["spec"]["rabbitmq"]["additionalConfig"]
    allowed = bus["metadata"]["annotations"]["rabbitmq.com/topology-allowed-namespaces"].split(",")
    assert sorted(allowed) == sorted(f"onegrid-{p.name}" for p in overlays()), "never `*`: exactly the counties"
    (dashboards,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert set(dashboards["data"]) == {"command-centre.json", "operations.json"}
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1 and rules[0]["metadata"]["namespace"] == "onegrid-system"
