"""nameko dependency providers: each reads config in `setup`, makes its client in `start`,
and injects the smallest interface a service needs."""

from __future__ import annotations

import json
import logging
import time

import redis
from eventlet import tpool
from nameko.extensions import DependencyProvider
from nameko.web.handlers import http
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from werkzeug.wrappers import Response

from onegrid.adapters.amqp.announce import announce, sweep
from onegrid.adapters.amqp.bus import Bus, vhost_of
from onegrid.adapters.amqp.history import StreamReader
from onegrid.adapters.geo import locator_for
from onegrid.adapters.nameko.logs import LogContext
from onegrid.adapters.nameko.probes import Probes
from onegrid.adapters.nameko.wake import SignalWake
from onegrid.adapters.redis import connect
from onegrid.adapters.redis.casework import Casework
from onegrid.adapters.redis.registry import Published
from onegrid.adapters.redis.store import Store
from onegrid.app.registry import load_strict
from onegrid.contracts import ContractsInvalid
from onegrid.contracts.registry import NOTHING
from onegrid.domain.supervision import policy
from onegrid.kernel import settings
from onegrid.operator import openapi

log = logging.getLogger(__name__)


def contracts_dir(config: dict) -> str:
    return config.get("CONTRACTS_DIR") or settings.contracts_dir()


class TenantContext(DependencyProvider):
    """The tenant this service serves and the contracts registry: the image's files with what
    the county's registry service published on top (Redis, onegrid.adapters.redis.registry).
    Loaded at setup, where a broken contract stops the service from starting rather than
    half-validating; loaded again when the published revision changes: at once on the bus's
    `registry.changed` (a service that consumes it calls `refresh`), and by every replica at
    most RECHECK_SECONDS after (one Redis GET), so all of them follow without a restart.
    A published change that no longer loads is logged and the last good one kept."""

    RECHECK_SECONDS = 5.0

    def setup(self):
        config = self.container.config
        self.root = contracts_dir(config)
        tenant_id = config["TENANT"]
        self.published = Published(
            redis_client(config.get("REDIS_URL", "redis://127.0.0.1:6379/0"), max_connections=4), tenant_id
        )
        self.revision, self.checked, self.loading = 0, 0.0, False
        try:
            overlay = self.published.overlay()
        except redis.RedisError as exc:  # Redis down at start: the files, until it answers
            log.warning("published contracts unreadable (%s); starting on the image's", exc)
            overlay = NOTHING
        self.registry = load_strict(self.root, overlay)
        self.revision = overlay.revision
        if tenant_id not in self.registry.tenants:
            raise RuntimeError(f"no manifest contracts/tenants/{tenant_id}.yaml")
        self.tenant = self.registry.tenants[tenant_id]
        self.locator = locator_for(self.tenant.geography)  # the grid boundaries' index, built once
        if vhost_of(config["AMQP_URI"]) != tenant_id:  # tenants are walls: one bus each
            raise RuntimeError(f"AMQP_URI must name the tenant's vhost /{tenant_id}")

    def stop(self):
        self.published.r.close()

    def refresh(self, force: bool = False) -> bool:
        """Load again if the published revision moved; whether it did. Never raises: a store
        that does not answer or a change that does not load leaves the current registry."""
        now = time.monotonic()
        if self.loading or (not force and now - self.checked < self.RECHECK_SECONDS):
            return False
        self.checked, self.loading = now, True
        try:
            if self.published.revision() == self.revision:
                return False
            overlay = self.published.overlay()
            # in an OS thread: the other greenlets keep serving while the contracts compile
            registry = tpool.execute(load_strict, self.root, overlay)
            tenant = registry.tenants[self.tenant.id]
        except (redis.RedisError, ContractsInvalid, KeyError) as exc:
            log.error("published contracts not loaded, keeping revision %s: %s", self.revision, exc)
            return False
        finally:
            self.loading = False
        self.registry, self.tenant, self.revision = registry, tenant, overlay.revision
        log.info("contracts reloaded at revision %s", self.revision)
        return True

    def get_dependency(self, worker_ctx):
        self.refresh()
        return self


class RedisStore(DependencyProvider):
    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.tenant = self.container.config["TENANT"]

    def start(self):
        self.store = Store(redis_client(self.url), self.tenant, settings.redis_wait_replicas())

    def stop(self):
        self.store.r.close()

    def get_dependency(self, worker_ctx):
        return self.store


class VersionUsage(DependencyProvider):
    """The Usage port (onegrid.adapters.redis.registry.Published): what intake counts of each
    contract version and department, what the registry reads to refuse retiring one in use."""

    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.tenant = self.container.config["TENANT"]

    def start(self):
        self.published = Published(redis_client(self.url), self.tenant)

    def stop(self):
        self.published.r.close()

    def get_dependency(self, worker_ctx):
        return self.published


class CaseworkProvider(DependencyProvider):
    """Lifecycle transitions (onegrid.adapters.redis.casework) on the tenant's store."""

    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    def start(self):
        self.ctx = next(d for d in self.container.dependencies if isinstance(d, TenantContext))
        store = Store(redis_client(self.url), self.ctx.tenant.id, settings.redis_wait_replicas())
        self.work = Casework(store, self.ctx.tenant, policy(self.ctx.tenant), settings.time_scale())

    def stop(self):
        self.work.store.r.close()

    def get_dependency(self, worker_ctx):
        if self.work.tenant is not self.ctx.tenant:  # the manifest was published again: its policy too
            self.work = Casework(self.work.store, self.ctx.tenant, policy(self.ctx.tenant), settings.time_scale())
        return self.work


class TenantBus(DependencyProvider):
    def __init__(self, vouch: bool = False):
        self.vouch = vouch  # publish with user_id: a door speaking for its department

    def setup(self):
        config = self.container.config
        self.bus = Bus(config["AMQP_URI"], vouch=self.vouch)

    def stop(self):
        self.bus.close()

    def get_dependency(self, worker_ctx):
        return self.bus


class HistoryStreams(DependencyProvider):
    """The county's history streams (the HistoryReader port), read with the service's own broker
    user: onegrid.operator.desired grants it read on the streams it names (HISTORY_READERS)."""

    def setup(self):
        self.reader = StreamReader(self.container.config["AMQP_URI"])

    def get_dependency(self, worker_ctx):
        return self.reader


class MetricsPort(DependencyProvider):
    """/metrics on a port of its own (settings.metrics_address), so the HTTP port an Ingress
    routes to has none; the registry is the process's, as on the HTTP port."""

    def setup(self):
        self.address = settings.metrics_address()

    def start(self):
        if self.address is not None:
            host, port = self.address
            start_http_server(port, addr=host)

    def get_dependency(self, worker_ctx):
        return self.address


class Observable:
    """Mixed into every service: Prometheus `/metrics`, the probes `/livez` (`/health`) and
    `/readyz` (onegrid/adapters/nameko/probes.py, served outside the worker pool), and the
    service's OpenAPI document at `/openapi.json` (onegrid/operator/openapi.py; the service's
    `ctx` names its tenant)."""

    # set by the service class this is mixed into (nameko injects the provider's dependency, itself)
    name: str
    ctx: TenantContext
    metrics_port = MetricsPort()
    probes = Probes()
    log_context = LogContext()  # tenant, ce-id, case and trace on every log line (logs.py)
    signal_wake = SignalWake()  # SIGTERM stops it at once, busy or idle (wake.py)

    @http("GET", "/metrics")
    def metrics(self, request):
        if self.metrics_port is not None:  # served on the metrics port only
            body = json.dumps({"error": "not_here", "message": "/metrics is served on the metrics port"})
            return Response(body, status=404, mimetype="application/json")
        return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST.split(";")[0])

    @http("GET", "/openapi.json")
    def openapi_json(self, request):
        doc = openapi.document(self.name, self.ctx.tenant, self.ctx.registry)
        return Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")


# -- the app's ports (onegrid/app/ports.py) that are not a provider's client as it is --------
def redis_client(url: str, decode_responses: bool = False, max_connections: int = 64) -> redis.Redis:
    """Every service's Redis client: on REDIS_URL, or on the primary the Sentinels name
    (onegrid.adapters.redis.connect), so a failover is followed."""
    return connect.client(url, decode_responses=decode_responses, max_connections=max_connections)


class OutboxAnnouncer:
    """The Outbox port: publishes, from `source`, what casework left in the store's outbox."""

    def __init__(self, bus: Bus, store: Store, source: str):
        self.bus, self.store, self.source = bus, store, source

    def announce(self, event_ids: list[str]) -> int:
        return announce(self.bus, self.store, event_ids, self.source)

    def sweep(self) -> int:
        return sweep(self.bus, self.store, self.source)
