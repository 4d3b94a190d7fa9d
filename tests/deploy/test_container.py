"""The image, run the way the rendered Deployments run it. Each service's Deployment in
deploy/k8s/base/services.yaml is read and turned into a `podman run` with the same arguments,
environment (the base ConfigMap, the overlay's TENANT, the Secrets onboarding hands over), user,
read-only root with an emptyDir-like tmpfs at /tmp, dropped capabilities and memory limit; then
the Deployment's own probes are asked, and events published as a department system publishes
them go through intake and routing to work orders and on to closure through the departments'
and the command centre's HTTP APIs.

Two differences from a cluster, both forced by running on one host: the containers share the
host's network (RabbitMQ and Redis listen on 127.0.0.1 here), so each gets its own HTTP port
instead of every pod's 8000; and the test county's contracts are mounted read-only where the
image keeps its own (/app/contracts), since the county is made up by the test.

Needs podman (`make test` installs it on Debian, as root, and builds the image: `make image`);
skips with the reason elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from onegrid.kernel.tenant import Tenant
from tests.conftest import free_port_base, make_tenant_contracts
from tests.deploy.helpers import DEPLOY, ROOT, queue_defaults
from tests.support import SignedIn, publish, wait_until

pytestmark = pytest.mark.integration
IMAGE = os.environ.get("ONEGRID_TEST_IMAGE", "onegrid:dev")  # another tag: a build of ones own beside others
CONTAINERS_CONF = ROOT / "deploy" / "image" / "containers.conf"
CASES = 4  # events published, each to become a case that is driven to closure


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode:
        raise AssertionError(f"podman {' '.join(args[:3])}…: {out.returncode} {out.stderr[-2000:]}")
    return out


def _need_image() -> None:
    if shutil.which("podman") is None:
        pytest.skip(
            "podman is not installed: `make test` installs Debian's podman and buildah as root "
            "(scripts/build-image.sh); elsewhere install them and run `make image`"
        )
    if podman("image", "exists", IMAGE, check=False).returncode:
        pytest.skip(f"no {IMAGE} image in podman's store: run `make image` (`make test` does)")


# -- the Deployments, as rendered ------------------------------------------------------------
def deployments() -> list[dict]:
    docs = yaml.safe_load_all((DEPLOY / "base" / "services.yaml").read_text(encoding="utf-8"))
    return [d for d in docs if d and d["kind"] == "Deployment"]


def config_map(tenant: Tenant) -> dict[str, str]:
    """onegrid-config: the base's literals, merged with the county overlay's (TENANT)."""
    from onegrid.operator import k8s

    base = yaml.safe_load((DEPLOY / "base" / "kustomization.yaml").read_text(encoding="utf-8"))
    overlay = k8s.overlay(tenant)["kustomization.yaml"]
    assert isinstance(overlay, dict)
    literals: list[str] = []
    for kustomization in (base, overlay):
        literals += next(g["literals"] for g in kustomization["configMapGenerator"] if g["name"] == "onegrid-config")
    return dict(literal.split("=", 1) for literal in literals)


def _mebibytes(quantity: str) -> str:
    """A Kubernetes memory quantity (512Mi, 1Gi) as podman's --memory (512m)."""
    units = {"Mi": 1, "Gi": 1024}
    return f"{int(quantity[:-2]) * units[quantity[-2:]]}m"


@dataclass
class Pod:
    """One Deployment's pod, as a container on this host."""

    service: str
    container: dict  # the Deployment's container spec
    pod: dict  # the pod spec
    port: int  # where its `http` port is on this host
    name: str = ""
    metrics_port: int = 0  # where its `metrics` port is on this host

    def probe(self, kind: str) -> requests.Response:
        spec = self.container[kind]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        assert spec["port"] in ports or isinstance(spec["port"], int), spec
        return requests.get(
            f"http://127.0.0.1:{self.port}{spec['path']}", timeout=self.container[kind]["timeoutSeconds"]
        )

    def run_args(self, env: dict[str, str], contracts: Path) -> list[str]:
        c, security = self.container, self.container.get("securityContext", {})
        user = {**self.pod.get("securityContext", {}), **security}
        args = ["run", "--detach", "--name", self.name, "--network", "host", "--no-healthcheck"]
        args += ["--user", f"{user['runAsUser']}:{user['runAsGroup']}"]
        if security.get("readOnlyRootFilesystem"):
            args += ["--read-only", "--read-only-tmpfs=false"]  # nothing writable but what is mounted
        args += [f"--cap-drop={cap}" for cap in security.get("capabilities", {}).get("drop", [])]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if "memory" in c.get("resources", {}).get("limits", {}):
            args += ["--memory", _mebibytes(c["resources"]["limits"]["memory"])]
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for mount in c.get("volumeMounts", []):
            empty = volumes[mount["name"]]["emptyDir"]
            size = f",size={_mebibytes(empty['sizeLimit'])}" if "sizeLimit" in empty else ""
            args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777{size}"]
        args += ["--stop-timeout", str(self.pod["terminationGracePeriodSeconds"])]
        args += ["--volume", f"{contracts}:{env['CONTRACTS_DIR']}:ro"]
        for key, value in sorted(env.items()):
            args += ["--env", f"{key}={value}"]
        return [*args, IMAGE, *c["args"]]

    def environment(self, config: dict[str, str], secrets: dict[str, dict]) -> dict[str, str]:
        """envFrom (the ConfigMap, optional Secrets) then env (secretKeyRef), as the kubelet does."""
        env: dict[str, str] = {}
        for source in self.container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(config)
            elif "secretRef" in source:
                ref = source["secretRef"]
                if ref["name"] in secrets or not ref.get("optional"):
                    env.update(secrets[ref["name"]])
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = secrets[ref["name"]][ref["key"]]
        # the one change: every pod has its own 8000; on the host's network each needs its own port
        assert env["WEB_SERVER_ADDRESS"].endswith(f":{self.container['ports'][0]['containerPort']}")
        env["WEB_SERVER_ADDRESS"] = f"127.0.0.1:{self.port}"
        if "METRICS_ADDRESS" in env:  # likewise every pod's metrics port
            assert env["METRICS_ADDRESS"].endswith(f":{self.container['ports'][1]['containerPort']}")
            env["METRICS_ADDRESS"] = f"127.0.0.1:{self.metrics_port}"
        # and the machine's one Redis stands for the cluster's Sentinel-watched set (its primary)
        if env.pop("REDIS_SENTINELS", None) is not None:
            env["REDIS_WAIT_REPLICAS"] = "0"
        return env

    def state(self) -> dict:
        return json.loads(podman("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self) -> str:
        out = podman("logs", "--tail", "40", self.name, check=False)
        return (out.stdout + out.stderr)[-3000:]


@dataclass
class Containers:
    tenant_id: str
    contracts: Path
    uri: str  # the county's vhost, as the tests' publisher
    pods: dict[str, Pod] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.pods[service].port}"


def wait_started(pod: Pod) -> float:
    """The startupProbe, as the kubelet runs it: every periodSeconds, up to failureThreshold."""
    spec = pod.container["startupProbe"]
    started = time.monotonic()
    for _ in range(spec["failureThreshold"]):
        state = pod.state()
        if not state["Running"]:
            raise AssertionError(f"{pod.service} exited ({state['ExitCode']}):\n{pod.logs()}")
        try:
            if pod.probe("startupProbe").status_code < 400:
                wait_ready(pod)
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(spec["periodSeconds"])
    raise AssertionError(f"{pod.service}: startupProbe failed {spec['failureThreshold']} times:\n{pod.logs()}")


def wait_ready(pod: Pod, timeout: float = 60) -> None:
    """The readinessProbe after startup: the Service sends the pod traffic once it passes
    (its consumers on the broker, Redis answering)."""
    spec, deadline = pod.container["readinessProbe"], time.monotonic() + timeout
    while (answer := _try_probe(pod, "readinessProbe")) != 200:
        if time.monotonic() > deadline:
            raise AssertionError(f"{pod.service}: readinessProbe answers {answer}:\n{pod.logs()}")
        time.sleep(spec["periodSeconds"] / 5)


def _try_probe(pod: Pod, kind: str) -> int | str:
    try:
        return pod.probe(kind).status_code
    except requests.RequestException as exc:
        return str(exc)


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> Iterator[Containers]:
    _need_image()
    warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")
    from onegrid.operator import k8s, ops

    contracts, tenant_id = make_tenant_contracts(tmp_path_factory.mktemp("container"))
    tenant = ops.tenant(tenant_id, str(contracts))
    os.environ["CONTRACTS_DIR"] = str(contracts)
    running = Containers(tenant_id, contracts, ops.uri(tenant_id))
    try:
        # onboarding, as a county's IT runs it: the services' credentials become the Secrets;
        # with the retry tiers the ConfigMap leaves at the code's defaults (the tests' shorter
        # ones would name other retry queues than the services declare)
        with queue_defaults():
            onboarded = ops.onboard(tenant, reset=True)
        secrets = {ops.secret_name(cred): cred.values for cred in onboarded["credentials"]}
        for made in k8s.secrets(tenant):  # notify's channel Secret (`onegrid tenant secrets` makes it)
            if made["metadata"]["name"] in k8s.SERVICE_ENV_SECRETS.values():
                secrets[made["metadata"]["name"]] = made["stringData"]
        config = config_map(tenant)
        count = len(deployments())
        base = free_port_base(2 * count + 1)
        for i, deployment in enumerate(deployments(), start=1):
            spec = deployment["spec"]["template"]["spec"]
            (container,) = spec["containers"]
            name = f"{tenant_id}-{container['name']}"
            pod = Pod(container["args"][-1], container, spec, base + i, name=name, metrics_port=base + count + i)
            running.pods[pod.service] = pod
            podman(*pod.run_args(pod.environment(config, secrets), contracts))
        for pod in running.pods.values():
            wait_started(pod)
        yield running
    finally:
        if running.pods:
            podman("rm", "--force", "--time", "5", *(p.name for p in running.pods.values()), check=False)
        ops.offboard(tenant_id, delete_data=True, force=True)
        os.environ.pop("CONTRACTS_DIR", None)


def test_every_deployment_runs_from_the_image_as_declared(containers):
    assert set(containers.pods) == {d["spec"]["template"]["spec"]["containers"][0]["args"][-1] for d in deployments()}
    for pod in containers.pods.values():
        config = json.loads(podman("inspect", "--format", "{{json .HostConfig}}", pod.name).stdout)
        assert config["ReadonlyRootfs"] is True and "/tmp" in config["Tmpfs"]
        user = podman("exec", pod.name, "id", "-u").stdout.strip()
        assert user == str(pod.pod["securityContext"]["runAsUser"]) == "10001"
        # the root is read-only, /tmp (the emptyDir) is not
        denied = podman("exec", pod.name, "touch", "/app/x", check=False)
        assert denied.returncode and "Read-only file system" in denied.stderr
        podman("exec", pod.name, "touch", "/tmp/x")
        # PID 1 is nameko itself (`onegrid serve` execs it), so SIGTERM reaches it
        assert "nameko" in podman("exec", pod.name, "cat", "/proc/1/cmdline").stdout
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert pod.probe(probe).status_code == 200, f"{pod.service} {probe}"


def test_events_become_cases_with_work_orders_and_are_closed(containers):
    from onegrid.app.registry import load_strict
    from onegrid.domain.cases import case_id
    from onegrid.operator import ops
    from sim.simulator import Planned, Simulator

    tenant = ops.tenant(containers.tenant_id, str(containers.contracts))
    store = ops.store(containers.tenant_id)
    sim = Simulator(tenant, containers.uri, registry=load_strict(containers.contracts), seed=12)
    planned: list[Planned] = []
    while len(planned) < CASES:
        p = sim.good()
        if p.department != "governance":  # a department's own report: the case is its
            planned.append(p)
    publish(containers.uri, planned)  # over AMQP, as the department systems do
    ids = [case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}") for p in planned]
    cases = wait_until(
        lambda: all((c := store.case(i)) and c["status"] == "dispatched" for i in ids) and [store.case(i) for i in ids],
        timeout=60,
        what="every event a dispatched case",
    )
    dep, sup = containers.url("departments"), containers.url("supervision")
    http = SignedIn(store.r, tenant)  # the department's staff, then the command centre's operator
    for case in cases:
        orders = store.work_orders_of(case["id"])
        assert orders, case
        for o in orders:
            base = f"{dep}/departments/{o['department']}/work-orders/{o['id']}"
            http.post(f"{base}/accept", json={"actor": "duty"}, timeout=10).raise_for_status()
            http.post(f"{base}/resolve", json={"actor": "duty", "note": "fixed"}, timeout=10).raise_for_status()
        r = http.post(f"{sup}/cases/{case['id']}/verify", json={"actor": "grid-worker"}, timeout=10)
        assert r.status_code == 200 and r.json()["case"]["status"] == "verified", r.text
        r = http.post(f"{sup}/cases/{case['id']}/satisfied", json={"actor": "citizen"}, timeout=10)
        closed = r.json()["case"]
        assert (closed["status"], closed["outcome"]) == ("closed", "fixed"), r.text
    assert [(store.case(i) or {}).get("status") for i in ids] == ["closed"] * CASES
    metrics = containers.pods["supervision"].metrics_port  # the metrics port, not the HTTP one
    scrape = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
    assert "onegrid_cases_closed_total{" in scrape
    # and the probes still answer, with no container restarted on the way
    for pod in containers.pods.values():
        assert pod.state()["Running"], pod.logs()
        for probe in ("readinessProbe", "livenessProbe"):
            assert pod.probe(probe).status_code == 200, f"{pod.service} {probe}"


def test_sigterm_stops_every_service_within_its_grace_period(containers):
    """What a rolling update does to the pods: SIGTERM, nameko finishes its handlers, exit 0."""
    grace = max(pod.pod["terminationGracePeriodSeconds"] for pod in containers.pods.values())
    started = time.monotonic()
    podman("stop", "--time", str(grace), *(pod.name for pod in containers.pods.values()), timeout=grace + 30)
    took = time.monotonic() - started
    for pod in containers.pods.values():
        state = pod.state()
        assert (state["Running"], state["ExitCode"]) == (False, 0), (pod.service, state, pod.logs())
    assert took < grace / 2, f"{took:.0f} s: someone waited for the kill"
