"""Running a tenant's services as `nameko run` processes, the way a deployment does: used by
the demo, the end-to-end tests and the benchmark."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from onegrid.catalogue import SERVICES
from onegrid.kernel import settings

ROOT = Path(__file__).resolve().parent.parent


def replica_name(service: str, replica: int) -> str:
    """The process name of a service's `replica` (1-based): the first is the service's own
    name, the others `<service>-<n>` (in process listings, log file names and `procs`)."""
    return service if replica == 1 else f"{service}-{replica}"


def service_of(instance: str) -> tuple[str, int]:
    """(service, replica) of a process name from `replica_name`."""
    if instance in SERVICES:
        return instance, 1
    service, _, n = instance.rpartition("-")
    if service not in SERVICES or not n.isdigit() or int(n) < 2:
        raise KeyError(f"no service instance {instance!r}")
    return service, int(n)


def port_of(port_base: int, service: str, replica: int = 1) -> int:
    """Each instance its own HTTP port: the first replicas at port_base + 1 + the service's
    index (as ever), replica n in the n-th block of len(SERVICES) ports after them."""
    return port_base + 1 + (replica - 1) * len(SERVICES) + list(SERVICES).index(service)


def port_span(replicas: dict | None = None) -> int:
    """How many ports from a ServiceSet's port_base on it may use (port_base itself is unused)."""
    return 1 + len(SERVICES) * max([1, *(replicas or {}).values()])


def free_port_base(span: int = 8, attempts: int = 200) -> int:
    """A base port with `span` free ports after it on 127.0.0.1, below the kernel's ephemeral
    range, so an outgoing connection cannot take one of them between this check and a
    service binding it."""
    low = _ephemeral_low()
    for _ in range(attempts):
        base = random.randrange(10_000, max(10_001, low - span - 1))
        if all(_free(base + i) for i in range(1, span + 1)):
            return base
    raise RuntimeError("no free ports")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class ServiceSet:
    """A tenant's services as processes. `replicas` runs more than one process of a service
    (e.g. {"intake": 2}): each consumes the same queues and serves HTTP on its own port;
    `names` stays the services, `instances` the processes (intake, intake-2, ...)."""

    def __init__(
        self,
        tenant: str,
        amqp_uri: str,
        port_base: int | None = None,
        log_dir: str | Path = "run",
        env: dict | None = None,
        services=tuple(SERVICES),
        replicas: dict[str, int] | None = None,
    ):
        self.tenant, self.amqp_uri = tenant, amqp_uri
        self.port_base = port_base or int(os.environ.get("ONEGRID_PORT_BASE", "8100"))
        self.log_dir = Path(log_dir)
        self.env = env or {}
        self.names = list(services)
        self.replicas = {name: int((replicas or {}).get(name, 1)) for name in self.names}
        unknown = set(replicas or {}) - set(self.names)
        if unknown or min(self.replicas.values(), default=1) < 1:
            raise ValueError(f"replicas {replicas} must name services of this set ({self.names}), each at least 1")
        self.instances = [replica_name(n, r) for n in self.names for r in range(1, self.replicas[n] + 1)]
        self.procs: dict[str, subprocess.Popen] = {}

    def url(self, service: str) -> str:
        """The HTTP address of an instance: a service's name means its first replica."""
        return f"http://127.0.0.1:{port_of(self.port_base, *service_of(service))}"

    def start(self, timeout: float = 60) -> ServiceSet:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        """Start every instance not running, without waiting for it to be ready."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.instances:
            if name not in self.procs or self.procs[name].poll() is not None:
                self.start_one(name)

    def start_one(self, name: str) -> None:
        """Start one instance: a service's name (its first replica) or e.g. `intake-2`."""
        service, _ = service_of(name)
        env = {
            **os.environ,
            "AMQP_URI": self.amqp_uri,
            "TENANT": self.tenant,
            "REDIS_URL": settings.redis_url(),
            "CONTRACTS_DIR": str(Path(settings.contracts_dir()).resolve()),
            "WEB_SERVER_ADDRESS": self.url(name)[7:],
            "PYTHONWARNINGS": "ignore",
            **self.env,
        }
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{self.tenant}-{name}.log", "ab") as log:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / "config.yml"), SERVICES[service]],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    # what "up" means when starting: ready (/readyz), or only alive (/livez) for a service
    # started against a Redis or broker that is down on purpose
    ready_path = "/readyz"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name in self.procs:
            while True:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; see {self.log_dir}/{self.tenant}-{name}.log"
                    )
                try:
                    # ready: its consumers are on the broker and Redis answers (probes.py)
                    if requests.get(self.url(name) + self.ready_path, timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout}s")
                time.sleep(0.2)

    def kill(self, name: str) -> None:
        """kill -9: what a crash looks like."""
        self.procs[name].kill()
        self.procs[name].wait()

    def restart(self, name: str, timeout: float = 60) -> None:
        """Stop one service gracefully and start it again (e.g. after a contract fix)."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout)
        self.start_one(name)
        self.wait_ready(timeout)

    def stop(self, timeout: float = 20, only=None) -> list[str]:
        """SIGTERM to every instance (or those named in `only`), then wait for all of them
        together; one still running `timeout` seconds on is killed. The instances killed:
        a service that does not stop is a defect to report, never a reason to stop waiting."""
        procs = {n: p for n, p in self.procs.items() if only is None or n in only}
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline, killed = time.monotonic() + timeout, []
        for name, proc in procs.items():
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(name)
        return killed

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
