"""Offline validation of what `kubectl apply -k` would send: every kustomization builds, the
core kinds pass kubernetes-validate --strict, the operators' resources pass their CRDs'
schemas (and name no field the schema does not know, which the API server would silently
drop), the pods meet the `restricted` Pod Security Standard, and a county's NetworkPolicies
let it reach only its bus and its Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from onegrid.operator import k8s
from tests.deploy.helpers import CRDS, DEPLOY, KUBERNETES_VERSION, kustomize, need, overlays

CUSTOM_GROUPS = ("rabbitmq.com", "keda.sh", "monitoring.coreos.com", "cert-manager.io")
KUSTOMIZATIONS = [DEPLOY / "base", DEPLOY / "platform", DEPLOY / "platform" / "ca", *overlays()]
CERT_MANAGER_CRDS = Path(__file__).parent / "crds"  # not in the shared CRDs: cert-manager v1.21.1's, see its README


@pytest.fixture(scope="module")
def built():
    return {path.relative_to(DEPLOY).as_posix(): kustomize(path) for path in KUSTOMIZATIONS}


def _custom(doc: dict) -> bool:
    return doc["apiVersion"].split("/")[0] in CUSTOM_GROUPS


@pytest.fixture(scope="module")
def crd_schemas():
    if not CRDS.is_dir():
        pytest.skip(
            f"no CRDs to validate the operators' resources against: {CRDS} is absent "
            "(it holds the operators' CRD files; see its README)"
        )
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")) + sorted(CERT_MANAGER_CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def test_every_kustomization_builds(built):
    assert set(built) == {"base", "platform", "platform/ca", *(f"overlays/{p.name}" for p in overlays())}
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
        out = subprocess.run(
            [tool, "--strict", "-k", KUBERNETES_VERSION, "--quiet", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
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
    assert checked >= {
        "RabbitmqCluster",
        "Vhost",
        "User",
        "Permission",
        "TopicPermission",
        "Policy",
        "Queue",
        "Exchange",
        "Binding",
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "Certificate",
        "ClusterIssuer",
    }


def test_crd_check_catches_a_misspelt_field(crd_schemas):
    queue = {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "Queue",
        "metadata": {"name": "q"},
        "spec": {"name": "q", "durabel": True, "rabbitmqClusterReference": {"name": "onegrid-bus"}},
    }
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
        ok &= {
            "In": has and labels.get(e["key"]) in e.get("values", []),
            "NotIn": not has or labels[e["key"]] not in e.get("values", []),
            "Exists": has,
            "DoesNotExist": not has,
        }[e["operator"]]
    return ok


def test_a_county_reaches_only_its_bus_its_redis_and_dns(built):
    for overlay in overlays():
        docs = built[f"overlays/{overlay.name}"]
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        deny = [
            p
            for p in policies
            if p["spec"]["podSelector"] == {} and "egress" not in p["spec"] and "ingress" not in p["spec"]
        ]
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
                            redis = target.get("app.kubernetes.io/component") == "redis"
                            # the nodes, and the Sentinels that name the primary
                            assert ns is None and redis and ports <= {6379, 26379}, f"{name}: unexpected egress {peer}"
                for rule in p["spec"].get("ingress", []):
                    for peer in rule["from"]:
                        ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                        assert ns in ("monitoring", "ingress-nginx") or (ns is None and "podSelector" in peer), (
                            f"{name}: unexpected ingress {peer}"
                        )


def _tenant(tenant_id: str):
    from onegrid.app.registry import load_strict
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


def test_the_bus_survives_a_node_and_speaks_tls_to_departments(built):
    docs = built["platform"]
    (bus,) = [d for d in docs if d["kind"] == "RabbitmqCluster"]
    spec = bus["spec"]
    assert spec["replicas"] == 3 and ":" in spec["image"] and not spec["image"].endswith(":latest")
    (term,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == {"app.kubernetes.io/name": k8s.BUS.name}
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": k8s.BUS.name}}}
    (server,) = [d for d in docs if d["kind"] == "Certificate"]
    assert spec["tls"] == {"secretName": server["spec"]["secretName"], "caSecretName": server["spec"]["secretName"]}
    assert server["spec"]["issuerRef"]["name"] == k8s.COUNTY_CA_ISSUER
    assert "ssl_options.fail_if_no_peer_cert = true" in spec["rabbitmq"]["additionalConfig"]
    (ca,) = [
        d
        for d in built["platform/ca"]
        if d["kind"] == "ClusterIssuer" and d["metadata"]["name"] == k8s.COUNTY_CA_ISSUER
    ]
    assert ca["spec"]["ca"]["secretName"] == "onegrid-county-ca"


def test_plain_amqp_is_for_the_cluster_and_tls_for_the_outside(built):
    (policy,) = [d for d in built["platform"] if d["kind"] == "NetworkPolicy"]
    for rule in policy["spec"]["ingress"]:
        ports = {p["port"] for p in rule.get("ports", [])}
        if 5672 in ports:  # only from the counties' namespaces
            assert [list(peer) for peer in rule["from"]] == [["namespaceSelector"]]
            assert rule["from"][0]["namespaceSelector"]["matchExpressions"][0]["key"] == k8s.TENANT_LABEL
        if "from" not in rule:  # open to anyone: only the TLS listener
            assert ports == {5671}
    assert any("from" not in r and {p["port"] for p in r["ports"]} == {5671} for r in policy["spec"]["ingress"])


def test_each_department_gets_a_client_certificate_from_the_county_ca(built):
    for overlay in overlays():
        tenant = _tenant(overlay.name)
        certs = [
            d
            for d in built[f"overlays/{overlay.name}"]
            if d["kind"] == "Certificate" and "client auth" in d["spec"]["usages"]
        ]
        assert sorted(c["spec"]["commonName"] for c in certs) == sorted(f"{tenant.id}.{d}" for d in tenant.departments)
        assert {c["spec"]["issuerRef"]["name"] for c in certs} == {k8s.COUNTY_CA_ISSUER}


def _routed(ingress: dict, path: str) -> list[str]:
    """The backends an Ingress sends `path` to (Prefix matching by whole segments, Exact as is)."""
    hits = []
    for rule in ingress["spec"]["rules"]:
        for p in rule["http"]["paths"]:
            prefix = p["path"].rstrip("/")
            match = (
                path == p["path"]
                if p["pathType"] == "Exact"
                else (path == prefix or path.startswith(prefix + "/") or prefix == "")
            )
            if match:
                hits.append(p["backend"]["service"]["name"])
    return hits


def test_the_ingress_serves_people_and_integrators_over_tls_and_never_metrics(built):
    for overlay in overlays():
        docs = built[f"overlays/{overlay.name}"]
        (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
        hosts = [r["host"] for r in ingress["spec"]["rules"]]
        assert ingress["spec"]["tls"] == [{"hosts": hosts, "secretName": k8s.INGRESS_TLS_SECRET}]
        for private in ("/metrics", "/health", "/openapi.json", "/", "/metrics/x"):
            assert _routed(ingress, private) == [], f"{overlay.name}: the Ingress routes {private}"
        for shape in (s for s in k8s.service_shapes() if s.public_http):
            for route in shape.routes:
                path = route.split(" ", 1)[1].replace("<string:", "<").replace("<", "x").replace(">", "")
                assert len(_routed(ingress, path)) == 1, f"{overlay.name}: {route} of {shape.name} is not routed once"
        services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
        for p in ingress["spec"]["rules"][0]["http"]["paths"]:
            assert p["backend"]["service"]["name"] in services and p["backend"]["service"]["port"] == {"name": "http"}


def test_prometheus_scrapes_the_metrics_port_which_the_ingress_never_reaches(built):
    docs = built["base"]
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    for service in (d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].startswith("onegrid-")):
        if service["metadata"]["name"] != "onegrid-redis":
            assert {"name": "metrics", "port": k8s.METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"} in (
                service["spec"]["ports"]
            )
    (scrape,) = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "metrics-from-prometheus"]
    assert [p["port"] for r in scrape["spec"]["ingress"] for p in r["ports"]] == [k8s.METRICS_PORT]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("onegrid-config")]
    assert config["data"]["METRICS_ADDRESS"] == f"0.0.0.0:{k8s.METRICS_PORT}"
