"""notify: every case gets an answer (件件有回音).

On the lifecycle events it writes the notifications they call for (a receipt to the
reporter, the dispatch to the grid worker or department, overdue reminders to the handling
unit and its leader, the resolution and a satisfaction question) into the tenant's outbox,
once per event, kind, recipient and channel. A timer drains the outbox concurrently, each
attempt bounded by its channel's timeout, so a dead receiver delays only its own messages;
failures are retried with exponential backoff and jitter, then parked with their reason
(`onegrid notify parked|replay <tenant>`). docs/notify.md.
"""
from __future__ import annotations

import json
import logging
import random
import time

import eventlet
import redis
from nameko.timer import timer
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid.adapters import notify_channels
from onegrid.adapters.httpjson import respond
from onegrid.adapters.notifications import Outbox, deliver
from onegrid.adapters.providers import Observable, TenantContext
from onegrid.adapters.reliable import Inbound, reliable_consume
from onegrid.domain import notify as nd
from onegrid.domain.scoring import read_event
from onegrid.inputs import Parked

log = logging.getLogger(__name__)


class Notifications(TenantContext):
    """The tenant, its `notify:` configuration and channels (a broken one, or a webhook
    without its secret, stops the service), the outbox and the pool that delivers."""

    def setup(self):
        super().setup()
        self.config = nd.parse_config(self.tenant.source)
        self.channels = notify_channels.build(self.config.channels)
        reg = self.registry
        self.names = nd.Names(self.tenant.name_zh, {k: c.get("name_zh", k) for k, c in reg.categories.items()},
                              {k: d.get("name_zh", k) for k, d in reg.departments.items()},
                              {c: (n.name, n.parent) for c, n in self.tenant.nodes.items()})
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        timeouts = [float(c.get("timeout_s", 10)) for c in self.config.channels.values()] or [10.0]
        self.lease = max(timeouts) * 2 + 10  # longer than any attempt can take
        self.rng = random.Random()

    def start(self):
        pool = redis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=10, decode_responses=True)
        self.outbox = Outbox(redis.Redis(connection_pool=pool), self.tenant.id)
        self.pool = eventlet.GreenPool(int(self.config.delivery["concurrency"]))

    def stop(self):
        self.pool.waitall()
        self.outbox.r.close()

    def deliver(self, key: str) -> None:
        try:
            deliver(self.outbox, self.channels, self.config, key, self.rng)
        except Exception:  # Redis away: the lease runs out and the key is taken again
            log.exception("delivering %s", key)


class NotifyService(Observable):
    name = "notify"
    ctx = Notifications()

    @reliable_consume("notify.case-events")
    def on_case_event(self, message: Inbound):
        event = read_event(message.headers, message.body, message.routing_key)
        now = time.time()
        for notification in nd.plan(event, self.ctx.config, self.ctx.names):
            self.ctx.outbox.enqueue(notification, now)

    @timer(interval=0.25)
    def deliver_due(self):
        """Take what is due, as many as there are free delivery slots, and send each in its
        own green thread: the next tick does not wait for a slow receiver."""
        ctx = self.ctx
        for key in ctx.outbox.claim(time.time(), ctx.lease, ctx.pool.free()):
            ctx.pool.spawn_n(ctx.deliver, key)

    @http("GET", "/notify/stats")
    def http_stats(self, request):
        body = {"tenant": self.ctx.tenant.id, "pending": self.ctx.outbox.pending(), **self.ctx.outbox.stats()}
        return Response(json.dumps(body), mimetype="application/json")

    @http("GET", "/notify/parked")
    def http_parked(self, request):
        return respond(lambda: self.ctx.outbox.parked(Parked().load(request.args.to_dict())["limit"]))
