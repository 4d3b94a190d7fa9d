"""The cost of one timer tick with many open cases: the tick asks Redis only for what is due,
so it should not grow with the number of timers waiting. Timers are loaded straight into a
scratch tenant's sorted set (two per open case: acknowledge and resolve), all in the future
but for a handful due now."""

from __future__ import annotations

import statistics
import time
import uuid

import redis

from onegrid.adapters.redis.store import Store
from onegrid.cli.ui import console
from onegrid.kernel import settings

DUE_PER_TICK = 10


def tick_cost(open_cases: int, ticks: int = 200) -> dict:
    store = Store(redis.Redis.from_url(settings.redis_url()), f"bench-timers-{uuid.uuid4().hex[:6]}")
    try:
        future = time.time() + 86400
        pipe = store.r.pipeline(transaction=False)
        for i in range(open_cases):
            pipe.zadd(store.timers.due_key, {f"acknowledge|w-{i}": future + i, f"resolve|w-{i}": future + 2 * i})
            if i % 10_000 == 9_999:
                pipe.execute()
        pipe.execute()
        idle, busy = [], []
        for t in range(ticks):
            for j in range(DUE_PER_TICK):  # a few fall due before every other tick
                store.timers.arm(f"acknowledge|due-{t}-{j}", 1.0)
            for samples in (busy, idle):
                started = time.perf_counter()
                claimed = store.timers.claim(time.time())
                samples.append(time.perf_counter() - started)
                for member, _ in claimed:
                    store.timers.done(member)
        memory = store.r.memory_usage(store.timers.due_key) or 0
        return {
            "open cases": open_cases,
            "timers": store.timers.pending(),
            "idle tick ms": statistics.median(idle) * 1000,
            "tick with 10 due ms": statistics.median(busy) * 1000,
            "p99 ms": sorted(busy)[int(0.99 * len(busy))] * 1000,
            "MiB": memory / 2**20,
        }
    finally:
        store.r.delete(store.timers.due_key, store.timers.inflight_key, store.timers.inflight_due)


def run(sizes=(10_000, 100_000, 1_000_000)) -> list[dict]:
    rows = []
    for n in sizes:
        with console.status(f"timer tick with {n:,} open cases"):
            rows.append(tick_cost(n))
    return rows
