"""Liveness and readiness, answered outside nameko's worker pool.

nameko's `@http` runs each request as a worker (at most `max_workers`, 32): a probe that waits
behind 32 handlers stalled on Redis times out, and the kubelet restarts every pod at once. So
the probes are WSGI middleware in front of nameko's web app: each request is a green thread of
eventlet's WSGI server that never asks the container for a worker.

- `/livez` (and `/health`, its old name): the process's event loop answers. No dependency is
  asked: a Redis or broker outage must not restart pods that will recover by themselves.
- `/readyz`: every broker consumer is connected with its consumers declared, and Redis (with
  Sentinels, the primary they name) answers PING within READINESS_TIMEOUT (1 s). 503 with what
  failed otherwise, so the Service stops sending this pod HTTP traffic while it cannot do its work.
"""

from __future__ import annotations

import json
import logging

import redis
from nameko.extensions import DependencyProvider
from nameko.web.server import WebServer

from onegrid.adapters.nameko.reliable import SafeQueueConsumer
from onegrid.adapters.redis import connect

log = logging.getLogger(__name__)
LIVENESS = ("/livez", "/health")
READINESS = "/readyz"
PATHS = (*LIVENESS, READINESS)
DEFAULT_TIMEOUT = 1.0


class Probes(DependencyProvider):
    """Puts the probe middleware in front of the service's web server (in setup, before the
    server starts) and keeps a Redis client of its own with short timeouts and no retries."""

    def setup(self):
        config = self.container.config
        self.redis_url = config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.timeout = float(config.get("READINESS_TIMEOUT", DEFAULT_TIMEOUT))
        self.redis: redis.Redis | None = None
        for server in self.servers():
            app = server.get_wsgi_app
            server.get_wsgi_app = lambda app=app: ProbeApp(app(), self)  # nameko's documented hook

    def start(self):
        self.redis = connect.probe_client(self.redis_url, self.timeout)

    def stop(self):
        if self.redis is not None:
            self.redis.close()

    def servers(self) -> list[WebServer]:
        return [e for e in self.container.subextensions if isinstance(e, WebServer)]

    def consumers(self) -> list[SafeQueueConsumer]:
        return [e for e in self.container.subextensions if isinstance(e, SafeQueueConsumer)]

    def readiness(self) -> dict[str, str]:
        """Each check's finding: "ok" or what is wrong."""
        checks = {"broker": self._broker(), "redis": self._redis()}
        return checks

    def _broker(self) -> str:
        down = [c for c in self.consumers() if not c.consuming]
        if down:
            return f"{len(down)} of {len(self.consumers())} broker consumers not connected"
        return "ok"

    def _redis(self) -> str:
        if self.redis is None:
            return "not started"
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            return f"no answer within {self.timeout:g}s: {exc}"
        return "ok"

    def get_dependency(self, worker_ctx):
        return self


class ProbeApp:
    """WSGI middleware: the probe paths answered here, everything else to nameko's app."""

    def __init__(self, app, probes: Probes):
        self.app, self.probes = app, probes

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path not in PATHS:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _answer(start_response, 405, {"error": "probes answer GET"}, [("Allow", "GET, HEAD")])
        if path in LIVENESS:
            return _answer(start_response, 200, {"status": "alive"})
        checks = self.probes.readiness()
        ready = all(v == "ok" for v in checks.values())
        if not ready:
            log.warning("not ready: %s", checks)
        return _answer(
            start_response, 200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": checks}
        )


def _answer(start_response, status: int, body: dict, headers: list | None = None):
    data = json.dumps(body).encode()
    reason = {200: "OK", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
            *(headers or []),
        ],
    )
    return [data]
