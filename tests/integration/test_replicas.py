"""Replicas: a ServiceSet may run a service as several processes, each on its own HTTP port,
all consuming the same queue (bench.scaling measures what a second one buys)."""

import re

import pytest
import requests
from kombu import Connection

from sim.runner import ServiceSet, free_port_base, port_span
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration
EVENTS = 200


def consumers(uri: str, queue: str) -> int:
    with Connection(uri) as conn:
        return conn.channel().queue_declare(queue, passive=True)[2]


def registered(url: str, tenant: str) -> float:
    """Events this one process registered, from its own /metrics."""
    text = requests.get(url + "/metrics", timeout=5).text
    pattern = rf'onegrid_intake_events_received_total{{[^}}]*outcome="registered"[^}}]*tenant="{tenant}"[^}}]*}} (\S+)'
    return sum(float(v) for v in re.findall(pattern, text))


@pytest.fixture
def county(tmp_path):
    c = County(tmp_path, services=("intake",))
    replicas = {"intake": 2}
    c.services = ServiceSet(
        c.id,
        c.uri,
        port_base=free_port_base(port_span(replicas)),
        log_dir=tmp_path / "logs",
        env={"CONTRACTS_DIR": str(c.contracts)},
        services=("intake",),
        replicas=replicas,
    )
    yield c
    c.close()  # stops both replicas, offboards


def test_two_intake_replicas_each_a_process_and_both_consume(county, tmp_path):
    services = county.services.start()
    assert services.names == ["intake"] and services.instances == ["intake", "intake-2"]
    assert len({p.pid for p in services.procs.values()}) == 2
    urls = [services.url("intake"), services.url("intake-2")]
    assert len(set(urls)) == 2 and all(requests.get(u + "/health", timeout=5).ok for u in urls)
    assert (tmp_path / "logs" / f"{county.id}-intake-2.log").exists()
    wait_until(lambda: consumers(county.uri, "intake.events") == 2, what="two consumers on intake.events")

    publish(county.uri, county.simulator(seed=5).plan(EVENTS))
    wait_until(lambda: county.store.stats().get("cases", 0) == EVENTS, timeout=30, what="every event registered")
    counts = [registered(u, county.id) for u in urls]
    assert sum(counts) == EVENTS and all(c > 0 for c in counts), counts  # both took a share

    services.kill("intake-2")  # an instance by its name, as chaos does
    assert services.procs["intake-2"].poll() is not None and services.procs["intake"].poll() is None
    services.start()  # starts only what is not running
    assert services.procs["intake"].poll() is None and services.procs["intake-2"].poll() is None
