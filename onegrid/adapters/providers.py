"""nameko dependency providers: each reads config in `setup`, makes its client in `start`,
and injects the smallest interface a service needs."""
from __future__ import annotations

import json
import os

import redis
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Response

from onegrid import openapi, settings
from onegrid.adapters.bus import Bus, vhost_of
from onegrid.adapters.casework import Casework
from onegrid.adapters.store import Store
from onegrid.contracts import load_strict
from onegrid.domain.supervision import policy


def contracts_dir(config: dict) -> str:
    return config.get("CONTRACTS_DIR") or os.environ.get("CONTRACTS_DIR", "contracts")


class TenantContext(DependencyProvider):
    """The tenant this service serves and the contracts registry, loaded once at setup; a
    broken contract stops the service from starting rather than half-validating."""

    def setup(self):
        config = self.container.config
        self.registry = load_strict(contracts_dir(config))
        tenant_id = config["TENANT"]
        if tenant_id not in self.registry.tenants:
            raise RuntimeError(f"no manifest contracts/tenants/{tenant_id}.yaml")
        self.tenant = self.registry.tenants[tenant_id]
        if vhost_of(config["AMQP_URI"]) != tenant_id:  # tenants are walls: one bus each
            raise RuntimeError(f"AMQP_URI must name the tenant's vhost /{tenant_id}")

    def get_dependency(self, worker_ctx):
        return self


class RedisStore(DependencyProvider):
    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.tenant = self.container.config["TENANT"]

    def start(self):
        pool = redis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=10)
        self.store = Store(redis.Redis(connection_pool=pool), self.tenant)

    def stop(self):
        self.store.r.close()

    def get_dependency(self, worker_ctx):
        return self.store


class CaseworkProvider(DependencyProvider):
    """Lifecycle transitions (onegrid.adapters.casework) on the tenant's store."""

    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    def start(self):
        ctx = next(d for d in self.container.dependencies if isinstance(d, TenantContext))
        pool = redis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=10)
        store = Store(redis.Redis(connection_pool=pool), ctx.tenant.id)
        self.work = Casework(store, ctx.tenant, policy(ctx.tenant), settings.time_scale())

    def stop(self):
        self.work.store.r.close()

    def get_dependency(self, worker_ctx):
        return self.work


class TenantBus(DependencyProvider):
    def setup(self):
        config = self.container.config
        self.bus = Bus(config["AMQP_URI"])

    def stop(self):
        self.bus.close()

    def get_dependency(self, worker_ctx):
        return self.bus


class Observable:
    """Mixed into every service: Prometheus `/metrics`, a `/health` probe, and the service's
    OpenAPI document at `/openapi.json` (onegrid/openapi.py; the service's `ctx` names its tenant)."""

    @http("GET", "/metrics")
    def metrics(self, request):
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])

    @http("GET", "/health")
    def health(self, request):
        return Response('{"status":"ok"}', mimetype="application/json")

    @http("GET", "/openapi.json")
    def openapi_json(self, request):
        doc = openapi.document(self.name, self.ctx.tenant, self.ctx.registry)
        return Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")
