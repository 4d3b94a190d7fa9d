"""Publishing lifecycle events from the outbox that casework wrote in the same transaction as
the change: a crash between commit and publish delays an event, never loses it. Each event
keeps its id across re-publication, so consumers deduplicate on `ce-id`."""

from __future__ import annotations

import json
import time

from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.bus import Bus
from onegrid.adapters.redis.replies import texts
from onegrid.adapters.redis.store import Store
from onegrid.kernel import envelope as ce
from onegrid.kernel.tenant import COMMAND_CENTRE

MUST_ROUTE = {"work_order.returned", "case.dispatch_requested"}  # routing acts on these


def announce(bus: Bus, store: Store, event_ids: list[str], source: str) -> int:
    """Publish the given outbox events (those still there) and remove them; returns how many."""
    if not event_ids:
        return 0
    raw = store.r.hmget(store.key("outbox"), event_ids)
    sent = 0
    cases: dict[str, dict] = {}
    for event_id, entry in zip(event_ids, raw, strict=True):
        if entry is None:  # another announcer (or the sweep) already sent it
            continue
        kind, case_id, extra, *rest = json.loads(entry)  # rest: the chain head (absent in older entries)
        head = rest[0] if rest else None
        case = cases.get(case_id) or cases.setdefault(case_id, store.case(case_id) or {"id": case_id})
        department = (extra.get("work_order") or {}).get("department") or case.get("department") or COMMAND_CENTRE
        tp = case.get("traceparent")  # every event about a case continues the case's trace
        env = ce.new(
            tenant=store.tenant,
            department=department,
            type=kind,
            source=source,
            subject=case_id,
            id=event_id,
            traceparent=tp,
            chainhead=head,
        )
        if kind == "work_order.dispatched":  # a reopened part goes back on its department's queue
            wo = extra["work_order"]
            env = ce.new(
                tenant=store.tenant,
                department=wo["department"],
                type=kind,
                source=source,
                subject=wo["id"],
                id=event_id,
                traceparent=tp,
                chainhead=head,
            )
            bus.publish(env, wo, exchange=topology.WORKORDERS, routing_key=wo["department"])
        else:  # a case event carries the parts as they are now: consumers need not replay in order
            parts = {"work_orders": store.work_orders_of(case_id)} if kind.startswith("case.") else {}
            bus.publish(env, {**case, **parts, **extra}, mandatory=kind in MUST_ROUTE)
        pipe = store.r.pipeline()
        pipe.hdel(store.key("outbox"), event_id)
        pipe.zrem(store.key("outbox", "due"), event_id)
        pipe.execute()
        sent += 1
    return sent


def sweep(bus: Bus, store: Store, source: str, older_than: float = 5.0, limit: int = 500) -> int:
    """Publish outbox events their announcer did not (it died after committing)."""
    stale = store.r.zrangebyscore(store.key("outbox", "due"), "-inf", time.time() - older_than, start=0, num=limit)
    return announce(bus, store, texts(stale), source)
