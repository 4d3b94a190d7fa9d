"""`make chaos-redis`: the Redis faults of the chaos run, each on private Redis processes so
nothing shared is disturbed (RabbitMQ is used, never restarted), each reconciled like make
chaos: every published event exactly one case, a merge or a quarantine entry.

- failover: a primary, its replica and three Sentinels (bench/redis_sentinel.py); the primary
  is SIGKILLed under load, the Sentinels promote the replica, the old primary rejoins as its
  replica. The services follow the Sentinels and WAIT for a replica before acking a case.
- maxmemory: Redis with noeviction is filled to its maxmemory under load: every write is
  refused, handlers retry and then dead-letter with the reason; the memory-alert expression
  (used/max, from the INFO fields redis_exporter exports) is checked; then memory is raised
  and the dead letters replayed.
- stall: the Redis is SIGSTOPped for 30 s under load, then SIGCONTinued.
Prints the figures and exits non-zero on any discrepancy.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import redis

from bench.chaos import redis_failover
from bench.redis_private import PrivateRedis, spare_port, wait
from bench.redis_sentinel import SentinelSet
from onegrid.app.registry import load_strict
from onegrid.cli.ui import console, table
from onegrid.operator import ops
from sim.accounting import gather
from sim.live import LiveCounty
from sim.reconcile import reconcile
from sim.runner import free_port_base
from sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("CHAOS_REDIS_EVENTS", "400"))
RATE = float(os.environ.get("CHAOS_REDIS_RATE", "20"))
STALL_S = float(os.environ.get("CHAOS_REDIS_STALL", "30"))
ALERT_RATIO = 0.9  # OneGridRedisMemoryNearMax: redis_memory_used_bytes / redis_memory_max_bytes > 0.9


def _settled(store, n: int) -> bool:
    s = store.stats()
    return s.get("cases_dispatched", 0) + s.get("merged", 0) + s.get("quarantined", 0) >= n


def _county(tmp: Path, env: dict):
    tenant_id = f"chaosr-{uuid.uuid4().hex[:6]}"
    contracts = ops.clone_tenant(ROOT / "contracts", "zhongyuan-qinling", tenant_id, tmp / f"contracts-{tenant_id}")
    registry = load_strict(contracts)
    tenant = registry.tenants[tenant_id]
    county = LiveCounty(
        tenant,
        env={"CONTRACTS_DIR": str(contracts), "ONEGRID_TIME_SCALE": "1", **env},
        services=("intake", "routing"),
        log_dir=ROOT / "run",
        actors=False,
    )
    return county, Simulator(tenant, county.uri, registry=registry, seed=12)


def _run(name: str, tmp: Path, env: dict, fault) -> list:
    """Publish EVENTS at RATE with `fault(county)` in the middle; settle; reconcile."""
    os.environ.update(env)
    county, sim = _county(tmp, env)
    try:
        county.start()
        planned = sim.plan(EVENTS, bad_every=50, duplicate_every=40)
        pub = threading.Thread(target=sim.publish, args=(planned,), kwargs={"rate": RATE})
        pub.start()
        time.sleep(EVENTS / RATE / 3)
        started = time.monotonic()
        note = fault(county)
        took = time.monotonic() - started
        pub.join()
        wait(lambda: _settled(county.store, len(planned)), f"{name}: every event processed", timeout=300)
        case_of, reason_of = gather(county.store, planned)
        rec = reconcile(planned, case_of, reason_of)
        twice = sum(n - 1 for n in Counter(c["event_id"] for c in case_of.values()).values() if n > 1)
        stats = county.store.stats()
        problems = list(rec.problems)
        if stats.get("cases", 0) != len(case_of):
            problems.append(f"{stats.get('cases', 0)} cases in the store for {len(case_of)} events that made one")
        accounted = rec.cases_found + sum(rec.quarantine_found.values())
        for p in problems[:10]:
            console.print(f"  [red]{name}:[/] {p}")
        return [
            name,
            f"{took:.1f}s",
            note,
            len(planned),
            stats.get("cases", 0),
            f"{accounted}/{len(planned)}",
            twice,
            len(problems),
        ]
    finally:
        county.close()
        for key in env:
            os.environ.pop(key, None)


def failover(tmp: Path) -> list:
    with SentinelSet(tmp / "sentinel") as s:
        env = {**s.env(), "REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_MS": "1000"}

        return _run("failover under load", tmp, env, lambda county: redis_failover(s))


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def maxmemory(tmp: Path) -> list:
    with PrivateRedis(_dir(tmp / "full"), port=spare_port()) as r:
        r.client().config_set("maxmemory-policy", "noeviction")

        def fault(county) -> str:
            c = r.client()
            c.config_set("maxmemory", int(c.info("memory")["used_memory"]))  # full from now on
            time.sleep(1)
            info = c.info("memory")
            ratio = info["used_memory"] / info["maxmemory"]
            # the retries (1 s, 5 s, 30 s) run out: the refused messages are dead-lettered
            wait(lambda: _dead(county), "a message dead-lettered for maxmemory", timeout=120)
            dead = ops.dead_letters(county.tenant.id)
            oom = sum("maxmemory" in d["error"] for d in dead)
            c.config_set("maxmemory", 0)
            time.sleep(3)  # a last attempt refused just before has reached its dead-letter queue
            replayed = len(ops.dead_letters(county.tenant.id, replay=True))
            return (
                f"used/max {ratio:.2f} ({'over' if ratio > ALERT_RATIO else 'UNDER'} the alert's {ALERT_RATIO}); "
                f"{len(dead)} dead-lettered ({oom} refused by maxmemory), {replayed} replayed after raising maxmemory"
            )

        return _run("maxmemory, noeviction", tmp, {"REDIS_URL": r.url}, fault)


def _dead(county) -> bool:
    return any("maxmemory" in d["error"] for d in ops.dead_letters(county.tenant.id))


def stall(tmp: Path) -> list:
    with PrivateRedis(_dir(tmp / "stall"), port=spare_port()) as r:
        pid = int(r.client().info("server")["process_id"])

        def fault(county) -> str:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(STALL_S)
            os.kill(pid, signal.SIGCONT)
            wait(lambda: redis.Redis(port=r.port).ping(), "redis after the stall")
            return f"SIGSTOP for {STALL_S:.0f}s, then SIGCONT"

        return _run(f"{STALL_S:.0f} s Redis stall", tmp, {"REDIS_URL": r.url}, fault)


FAULTS = {"failover": failover, "maxmemory": maxmemory, "stall": stall}


def main(argv: list[str]) -> int:
    chosen = argv or list(FAULTS)
    # HTTP ports no one else here listens on (the services bind with SO_REUSEPORT: on the
    # default 8101.. another run's services could answer the readiness asked for)
    os.environ.setdefault("ONEGRID_PORT_BASE", str(free_port_base()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            console.print(f"[yellow]fault:[/] {name}")
            rows.append(FAULTS[name](Path(tmp)))
            console.print(f"[yellow]{name}:[/] {rows[-1]}")
    cols = ["fault", "took", "what happened", "published", "cases", "accounted for", "cases twice", "discrepancies"]
    console.print(table("Redis faults", cols, rows))
    bad = sum(r[-1] for r in rows)
    console.print(
        "[green]every published event is accounted for exactly once[/]" if not bad else f"[red]{bad} discrepancies[/]"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
