"""What the history streams cost intake: the drain rate of a backlog (intake and routing,
from their start until the last work order is in its department's queue) with the streams
bound, and with their bindings removed, alternately (the machine is shared: repeat). First,
the broker's side alone: confirmed publishes, one at a time as intake makes them, of a
case.registered-sized message to onegrid.events, with and without the streams bound.

    .venv/bin/python -m bench.history_cost        # BENCH_EVENTS=3000 BENCH_ROUNDS=2
    BENCH_DRAIN=0 .venv/bin/python -m bench.history_cost   # the broker's side only (a minute)
"""

from __future__ import annotations

import os
import sys
import time

from kombu import Connection

from bench.run import drain_backlog, pipeline
from onegrid.adapters.amqp.bus import Bus
from onegrid.cli.ui import console
from onegrid.kernel import topology


def _bind(uri: str, departments, bound: bool) -> None:
    with Connection(uri) as conn:
        channel = conn.channel()
        for exchange, stream, key in topology.history_routes(departments):
            (channel.queue_bind if bound else channel.queue_unbind)(stream, exchange, key)
        channel.close()


def publish_rate(uri: str, messages: int) -> float:
    """Confirmed publishes/s of a 1.5 KB case.registered (what routing, scoring, notify and the
    streams are bound to) through onegrid.adapters.amqp.bus.Bus, as intake publishes."""
    bus, body = Bus(uri, pool_size=1), b"x" * 1500
    try:
        started = time.perf_counter()
        for i in range(messages):
            bus.publish_raw(body, {"ce-id": str(i)}, "application/json", topology.EVENTS, "case.registered")
        return messages / (time.perf_counter() - started)
    finally:
        bus.close()


def main(argv: list[str] | None = None) -> int:
    if {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):  # how to run it, not a run
        console.print(__doc__.strip(), markup=False, highlight=False)
        return 0
    events, rounds = int(os.environ.get("BENCH_EVENTS", "3000")), int(os.environ.get("BENCH_ROUNDS", "2"))
    results: dict[str, list[float]] = {}
    with pipeline(seed=7) as bench:
        tenant, uri, sim, services = bench.tenant, bench.uri, bench.sim, bench.services
        for _ in range(rounds):
            for label in ("broker only, with the streams", "broker only, without"):
                _bind(uri, tenant.departments, "with the" in label)
                results.setdefault(label, []).append(publish_rate(uri, 2000))
                console.print(f"{label}: {results[label][-1]:,.0f} publishes/s")
        _purge(uri)  # those were no events: nobody is to read them
        if os.environ.get("BENCH_DRAIN", "1") == "0":
            return _report(results)
        services.start()
        drain_backlog(sim, tenant, services, 500)  # warm-up
        for _ in range(rounds):
            for label in ("with the streams", "without"):
                results.setdefault(label, [])
                _bind(uri, tenant.departments, label == "with the streams")
                run = drain_backlog(sim, tenant, services, events)
                results[label].append(run.per_second if run.finished else 0.0)
                console.print(f"{label}: {results[label][-1]:,.0f} events/s")
    return _report(results)


def _purge(uri: str) -> None:
    with Connection(uri) as conn:
        channel = conn.channel()
        for queue, (exchange, _) in topology.CONSUMED.items():
            if exchange == topology.EVENTS:
                channel.queue_purge(queue)
        channel.close()


def _report(results: dict[str, list[float]]) -> int:
    for label, rates in results.items():
        console.print(f"{label}: " + ", ".join(f"{r:,.0f}" for r in rates) + "/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
