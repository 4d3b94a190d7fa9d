"""Fixtures. Integration and end-to-end tests use a real RabbitMQ and Redis: the URLs in
ONEGRID_AMQP_BASE / RABBITMQ_MANAGEMENT_URL / REDIS_URL when set; else testcontainers when a
Docker engine answers; else the local services (`make test` starts them when down)."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import pytest
from hypothesis import settings

from sim.runner import free_port_base, port_span  # noqa: F401 - the tests import free_port_base from here

ROOT = Path(__file__).resolve().parent.parent

# Property-based tests (the fuzz of intake, schemathesis, the unit properties) draw the same
# examples on every run of the same code, so CI judges the change and not the luck of a draw;
# ONEGRID_FUZZ_HUNT=1 draws fresh random ones to hunt for new failures.
settings.register_profile("same-each-run", derandomize=True)
settings.register_profile("hunt", derandomize=False)
settings.load_profile("hunt" if os.environ.get("ONEGRID_FUZZ_HUNT") == "1" else "same-each-run")
_containers = []


def _docker_engine() -> bool:
    try:
        import docker

        return bool(docker.from_env(timeout=2).ping())
    except Exception:
        return False


def pytest_configure(config):
    os.environ.setdefault("RETRY_DELAYS_MS", "100,300")
    explicit = any(k in os.environ for k in ("ONEGRID_AMQP_BASE", "REDIS_URL"))
    if explicit or not _docker_engine():
        return
    from testcontainers.rabbitmq import RabbitMqContainer
    from testcontainers.redis import RedisContainer

    rabbit = RabbitMqContainer("rabbitmq:3.13-management").with_exposed_ports(5672, 15672).start()
    red = RedisContainer("redis:7").start()
    _containers.extend([rabbit, red])
    host = rabbit.get_container_host_ip()
    os.environ["ONEGRID_AMQP_BASE"] = f"amqp://guest:guest@{host}:{rabbit.get_exposed_port(5672)}/"
    os.environ["RABBITMQ_MANAGEMENT_URL"] = f"http://guest:guest@{host}:{rabbit.get_exposed_port(15672)}"
    os.environ["REDIS_URL"] = f"redis://{red.get_container_host_ip()}:{red.get_exposed_port(6379)}/0"


def pytest_unconfigure(config):
    for container in _containers:
        container.stop()


@pytest.fixture
def sentinel_set(tmp_path, monkeypatch):
    """A private Redis primary, replica and three Sentinels (bench.redis_sentinel), the services
    started in the test pointed at them through the environment; skipped where Debian's
    redis-sentinel is not installed."""
    import shutil

    from bench.redis_sentinel import SentinelSet

    if not shutil.which("redis-sentinel"):
        pytest.skip("redis-sentinel is not installed (make tools installs Debian's): no Sentinels to test with")
    with SentinelSet(tmp_path / "redis") as sentinels:
        for name, value in sentinels.env().items():
            monkeypatch.setenv(name, value)
        yield sentinels


@pytest.fixture(scope="session")
def contracts_root() -> Path:
    return ROOT / "contracts"


def make_tenant_contracts(tmp: Path, base: str = "zhongyuan-qinling", sections: dict | None = None) -> tuple[Path, str]:
    """A private copy of contracts/ with a uniquely named tenant cloned from a demo tenant,
    so each test module owns a vhost and a Redis key space no other test touches."""
    from onegrid.operator.ops import clone_tenant

    tenant_id = f"test-{uuid.uuid4().hex[:10]}"
    return clone_tenant(ROOT / "contracts", base, tenant_id, tmp / "contracts", sections), tenant_id


class County:
    """A test tenant onboarded on the real broker, with its services running as processes."""

    def __init__(
        self,
        tmp: Path,
        services=("intake", "routing", "departments"),
        env: dict | None = None,
        manifest: dict | None = None,
        base: str = "zhongyuan-qinling",
    ):
        from onegrid.operator import ops
        from sim.runner import ServiceSet

        # manifest: top-level sections of the tenant manifest to set, e.g. {"lifecycle": {...}}
        self.contracts, self.id = make_tenant_contracts(tmp, base, sections=manifest)
        os.environ["CONTRACTS_DIR"] = str(self.contracts)
        self.tenant = ops.tenant(self.id, str(self.contracts))
        self.uri = ops.uri(self.id)
        ops.onboard(self.tenant, reset=True)
        self.store = ops.store(self.id)
        self.services = ServiceSet(
            self.id,
            self.uri,
            port_base=free_port_base(port_span()),  # every service's port, however many the catalogue has
            log_dir=tmp / "logs",
            env={"CONTRACTS_DIR": str(self.contracts), **(env or {})},
            services=services,
        )

    @functools.cached_property
    def http(self):
        """requests, signed in as the person each route wants (tests.support.SignedIn)."""
        from tests.support import SignedIn

        return SignedIn(self.store.r, self.tenant)

    def simulator(self, seed: int = 1):
        from onegrid.app.registry import load_strict
        from sim.simulator import Simulator

        return Simulator(self.tenant, self.uri, registry=load_strict(self.contracts), seed=seed)

    def close(self):
        from onegrid.operator import ops

        self.services.stop()
        ops.offboard(self.id, delete_data=True, force=True)  # its users, vhost, Redis user and keys
        os.environ.pop("CONTRACTS_DIR", None)


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(tmp_path_factory.mktemp("county"))
    c.services.start()
    yield c
    c.close()
