"""routing: a registered case becomes one work order per responsible department, on that
department's durable work queue; a duplicate is merged into its primary instead; a returned
work order goes to the next department; a whistle or a reopen can add departments.

The tenant's routing table decides (first matching rule wins, so the same case always
routes the same way); a case no rule covers goes to the command centre with the reason.
Each work order carries its acknowledge and resolve deadlines from the deadline table.

Entrypoints only: this reads the message (which case, and whether it may be a redelivery),
onegrid.app.routing decides, records and publishes, and the work orders recorded are counted.
"""

from __future__ import annotations

import json

from onegrid.adapters.calendar import CHINA
from onegrid.adapters.nameko.batch import batch_consume
from onegrid.adapters.nameko.providers import (
    CaseworkProvider,
    Observable,
    OutboxAnnouncer,
    RedisStore,
    TenantBus,
    TenantContext,
)
from onegrid.adapters.nameko.reliable import ATTEMPT, Inbound, reliable_consume
from onegrid.adapters.redis.duplicates import DuplicateBook
from onegrid.app.ports import Publisher
from onegrid.app.routing import Dispatched, Merged, OnSite, Routing
from onegrid.kernel import metrics, settings
from onegrid.kernel.clock import CLOCK


class RoutingService(Observable):
    name = "routing"
    ctx = TenantContext()
    store = RedisStore()
    work = CaseworkProvider()
    bus = TenantBus()
    books = DuplicateBook  # the store's duplicate suggestions (a unit test hands a fake)

    @batch_consume("routing.case-registered")
    def on_case_registered(self, messages: list[Inbound]):
        """A batch of registered cases (onegrid.adapters.nameko.batch), read together and
        routed in turn (a duplicate in the same batch sees its primary dispatched), their work
        orders and announcements sent together and confirmed once at the end, then counted."""
        bus = self.bus.deferred()
        routing = self._routing(bus)
        results = routing.route_batch([(json.loads(m.body)["id"], _again(m)) for m in messages])
        bus.flush()
        for result in results:
            self._count(result)

    @reliable_consume("routing.work-order-returned")
    def on_work_order_returned(self, message: Inbound):
        returned = json.loads(message.body)  # the case as it is now, with the returned work order
        case_id = returned["id"] if "work_order" in returned else returned["case_id"]
        self._count(self._routing().work_order_returned(case_id, _again(message)))

    @reliable_consume("routing.dispatch-requested")
    def on_dispatch_requested(self, message: Inbound):
        """A whistle or a reopen asks for more departments on a case, at its current level."""
        request = json.loads(message.body)
        routing = self._routing()
        self._count(
            routing.dispatch_requested(request["case_id"], request["departments"], request["reason"], _again(message))
        )

    @reliable_consume("routing.registry-changed")
    def on_registry_changed(self, message: Inbound):
        """A published manifest (routing table, deadlines) applies from the next case on."""
        self.ctx.refresh(force=True)

    def _routing(self, bus: Publisher | None = None) -> Routing:
        """`bus`: a batch's Deferred publisher; the outbox always publishes at once, since it
        removes what it announced from the store's outbox as soon as it is confirmed."""
        outbox = OutboxAnnouncer(self.bus, self.store, f"/{self.ctx.tenant.id}/routing")
        book = self.books(self.store)
        return Routing(
            self.ctx.tenant, self.store, self.work, bus or self.bus, outbox, CLOCK, book, settings.time_scale(), CHINA
        )

    def _count(self, result: Dispatched | Merged | OnSite | None) -> None:
        if isinstance(result, Dispatched):
            for wo in result.recorded:
                metrics.WORK_ORDERS.labels(self.ctx.tenant.id, wo["department"], wo["level"], wo["reason"]).inc()


def _again(message: Inbound) -> bool:
    """A redelivery or a retry: a crash may have come between the record and the publish."""
    return message.redelivered or bool(message.headers.get(ATTEMPT))
