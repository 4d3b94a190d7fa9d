"""A county deployed the way the Kubernetes manifests deploy it, on the real local broker:
its rendered topology (users, permissions, policies, queues, bindings) applied as the
Messaging Topology Operator would, its Secrets as `onegrid tenant secrets` makes them, and
every service running as its own least-privileged bus user with the Secret's AMQP URI."""

from __future__ import annotations

import signal
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

import pytest

from tests.conftest import County, free_port_base, port_span
from tests.deploy.helpers import TopologyApplier, local


@dataclass
class Deployed:
    county: County
    topology: list[dict]
    secrets: dict[str, dict]  # Secret name -> stringData
    services: dict = field(default_factory=dict)  # service name -> ServiceSet
    amqp_host: tuple[str, int] = ("127.0.0.1", 5672)
    management: str = ""

    def url(self, service: str) -> str:
        return self.services[service].url(service)

    def bus_uri(self, secret: str) -> str:
        return local(self.secrets[secret]["uri"], *self.amqp_host)

    def user_uri(self, user_cr: str) -> str:
        creds = self.secrets[f"bus-user-{user_cr}"]
        return (
            f"amqp://{quote(creds['username'], safe='')}:{quote(creds['password'], safe='')}@"
            f"{self.amqp_host[0]}:{self.amqp_host[1]}/{quote(self.county.id, safe='')}"
        )


@pytest.fixture(scope="package")
def deployed(tmp_path_factory):
    warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")
    from onegrid.kernel import settings
    from onegrid.operator import k8s
    from sim.runner import ServiceSet

    county = County(tmp_path_factory.mktemp("deployed"), services=())
    topology = k8s.topology_resources(county.tenant)
    secret_docs = k8s.secrets(county.tenant)
    secrets = {s["metadata"]["name"]: s["stringData"] for s in secret_docs}
    applier = TopologyApplier(settings.management_url(), secret_docs)
    base = urlparse(settings.amqp_base())
    d = Deployed(
        county, topology, secrets, amqp_host=(base.hostname, base.port or 5672), management=settings.management_url()
    )
    try:
        applier.apply(topology)
        (county.contracts.parent / "logs").mkdir(parents=True, exist_ok=True)
        env_secrets = {name: secrets[secret] for name, secret in k8s.SERVICE_ENV_SECRETS.items() if secret in secrets}
        for shape in k8s.service_shapes():
            svc = ServiceSet(
                county.id,
                d.bus_uri(f"bus-user-{shape.bus_user}"),
                port_base=free_port_base(port_span()),
                log_dir=county.contracts.parent / "logs",
                env={"CONTRACTS_DIR": str(county.contracts), **env_secrets.get(shape.name, {})},
                services=(shape.name,),
            )
            d.services[shape.name] = svc
            svc.start_one(shape.name)
        for svc in d.services.values():
            svc.wait_ready(90)
        yield d
    finally:
        for svc in d.services.values():  # SIGTERM them all at once, then wait for each
            for proc in svc.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        for svc in d.services.values():
            svc.stop()
        applier.delete_users()
        county.close()


def log_of(d: Deployed, service: str) -> str:
    path = Path(d.county.contracts.parent / "logs" / f"{d.county.id}-{service}.log")
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@pytest.fixture(scope="package")
def traffic(deployed):
    """A little of everything: good events from every kind of reporter and one bad event in
    five, published as the departments do; returns once intake and routing have handled them."""
    from tests.support import publish, wait_until

    county = deployed.county
    planned = county.simulator(seed=61).plan(40, bad_every=5)
    publish(county.uri, planned)
    bad = sum(1 for p in planned if p.expect != "case")
    wait_until(lambda: county.store.stats().get("quarantined", 0) >= bad, what="bad events quarantined", timeout=30)
    wait_until(
        lambda: county.store.stats().get("cases_dispatched", 0) >= len(planned) - bad,
        what="cases dispatched",
        timeout=30,
    )
    if "open311" in deployed.services:  # a citizen's request through the door, published as its own user
        deployed.door_token = door_request(deployed)
    return planned


def door_request(deployed) -> str:
    """One request through the Open311 door (a point inside a grid); its token."""
    import requests

    from onegrid.adapters.geo import shape_of
    from onegrid.adapters.redis.open311 import Clients

    county = deployed.county
    spot = shape_of(county.tenant.geography.grids()[0]).representative_point()
    key = Clients(county.store.r, county.id).issue("deploy-test")
    form = {"api_key": key, "service_code": "other", "lat": spot.y, "long": spot.x, "description": "路灯不亮已经三天"}
    answer = requests.post(deployed.url("open311") + "/open311/v2/requests.json", data=form, timeout=10)
    assert answer.status_code == 201, answer.text
    got = answer.json()[0]
    return got.get("token") or county.store.case(got["service_request_id"])["event_id"]


@pytest.fixture(scope="package")
def scrapes(deployed, traffic) -> dict[str, str]:
    import requests

    return {name: requests.get(deployed.url(name) + "/metrics", timeout=5).text for name in deployed.services}
