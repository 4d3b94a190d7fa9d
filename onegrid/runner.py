"""Running a tenant's services as `nameko run` processes, the way a deployment does: used by
the demo, the end-to-end tests and the benchmark."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from onegrid import settings

SERVICES = {
    "intake": "services.intake.service:IntakeService",
    "routing": "services.routing.service:RoutingService",
    "departments": "services.departments.service:DepartmentsService",
    "supervision": "services.supervision.service:SupervisionService",
    "scoring": "services.scoring.service:ScoringService",
    "notify": "services.notify.service:NotifyService",
}
ROOT = Path(__file__).resolve().parent.parent


class ServiceSet:
    def __init__(self, tenant: str, amqp_uri: str, port_base: int | None = None, log_dir: str | Path = "run",
                 env: dict | None = None, services=tuple(SERVICES)):
        self.tenant, self.amqp_uri = tenant, amqp_uri
        self.port_base = port_base or int(os.environ.get("ONEGRID_PORT_BASE", "8100"))
        self.log_dir = Path(log_dir)
        self.env = env or {}
        self.names = list(services)
        self.procs: dict[str, subprocess.Popen] = {}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port_base + 1 + list(SERVICES).index(service)}"

    def start(self, timeout: float = 60) -> "ServiceSet":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            self.start_one(name)
        self.wait_ready(timeout)
        return self

    def start_one(self, name: str) -> None:
        env = {**os.environ, "AMQP_URI": self.amqp_uri, "TENANT": self.tenant, "REDIS_URL": settings.redis_url(),
               "CONTRACTS_DIR": str(Path(settings.contracts_dir()).resolve()), "WEB_SERVER_ADDRESS": self.url(name)[7:],
               "PYTHONWARNINGS": "ignore", **self.env}
        log = open(self.log_dir / f"{self.tenant}-{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "nameko", "run", "--config", str(ROOT / "config.yml"), SERVICES[name]],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for name in self.names:
            while True:
                proc = self.procs[name]
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.log_dir}/{self.tenant}-{name}.log")
                try:
                    if requests.get(self.url(name) + "/health", timeout=1).ok:
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

    def stop(self, timeout: float = 20) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
