"""The tenant contexts of the services that keep state of their own beside the case store:
scoring's scores and notify's outbox with its channels and delivery pool. Apart from
providers.py so the hot path's services (intake, routing, departments) load none of it."""

from __future__ import annotations

import logging
import random

import eventlet

from onegrid.adapters.channels import notify_channels
from onegrid.adapters.channels.notifications import Outbox, deliver
from onegrid.adapters.nameko.providers import TenantContext, redis_client
from onegrid.adapters.redis.scores import Scores
from onegrid.domain import notify, scoring

log = logging.getLogger(__name__)


class ScoringContext(TenantContext):
    """The tenant, its `scoring:` configuration (a broken one stops the service) and the scoring
    state in Redis (the ScoreStore port)."""

    def setup(self):
        super().setup()
        self.config = scoring.parse_config(self.tenant.source, self.tenant)
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    def start(self):
        self.scores = Scores(redis_client(self.url, decode_responses=True), self.tenant.id)
        self.scores.init_grids([g.code for g in self.tenant.grids()], self.config)

    def stop(self):
        self.scores.r.close()


class NotifyContext(TenantContext):
    """The tenant, its `notify:` configuration and channels (a broken one, or a webhook without
    its secret, stops the service), the outbox (the NotificationOutbox port) and the green pool
    that delivers (the Deliveries port)."""

    def setup(self):
        super().setup()
        self.config = notify.parse_config(self.tenant.source)
        self.channels = notify_channels.build(self.config.channels)
        self.names = notify.names_of(self.tenant, self.registry)
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.lease = notify.lease_of(self.config)
        self.rng = random.Random()

    def start(self):
        self.outbox = Outbox(redis_client(self.url, decode_responses=True), self.tenant.id)
        self.pool = eventlet.GreenPool(int(self.config.delivery["concurrency"]))
        self.deliveries = GreenDeliveries(self.pool, self.deliver)

    def stop(self):
        self.pool.waitall()
        self.outbox.r.close()

    def deliver(self, key: str) -> None:
        try:
            deliver(self.outbox, self.channels, self.config, key, self.rng)
        except Exception:  # Redis away: the lease runs out and the key is taken again
            log.exception("delivering %s", key)


class GreenDeliveries:
    """The Deliveries port: each attempt in its own green thread of a bounded pool."""

    def __init__(self, pool: eventlet.GreenPool, attempt):
        self.pool, self.attempt = pool, attempt

    def free(self) -> int:
        return self.pool.free()

    def start(self, key: str) -> None:
        self.pool.spawn_n(self.attempt, key)
