"""notify's use cases: a lifecycle event becomes the notifications it calls for, in the outbox
once each (件件有回音); what is due goes out, as many at a time as there are free delivery slots;
operators read the counts and the parked ones. Sending one is the Deliveries port's business."""

from __future__ import annotations

from dataclasses import dataclass, field

from onegrid.app.inputs import Parked
from onegrid.app.ports import Clock, Deliveries, NotificationOutbox
from onegrid.domain import notify as nd
from onegrid.domain.scoring import Event
from onegrid.kernel.clock import SystemClock
from onegrid.kernel.tenant import Tenant


@dataclass
class Notify:
    tenant: Tenant
    config: nd.Config
    names: nd.Names
    outbox: NotificationOutbox
    deliveries: Deliveries
    lease: float
    clock: Clock = field(default_factory=SystemClock)

    def on_event(self, event: Event) -> int:
        """The event's notifications, each enqueued once (a redelivery finds them there);
        returns how many were new."""
        now = self.clock.now()
        planned = nd.plan(event, self.config, self.names) + nd.plan_two_way(event, self.config, self.names)
        return sum(self.outbox.enqueue(n, now) for n in planned)

    def deliver_due(self) -> int:
        """Take what is due, as many as there are free delivery slots, and start each: the next
        tick does not wait for a slow receiver. Returns how many were started."""
        keys = self.outbox.claim(self.clock.now(), self.lease, self.deliveries.free())
        for key in keys:
            self.deliveries.start(key)
        return len(keys)

    def stats(self) -> dict:
        return {"tenant": self.tenant.id, "pending": self.outbox.pending(), **self.outbox.stats()}

    def parked(self, args: dict) -> list[dict]:
        """The parked notifications, as many as `args` ask for (a query string's)."""
        return self.outbox.parked(Parked().load(args)["limit"])
