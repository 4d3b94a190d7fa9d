"""`make chaos`: faults during a run of at least 10,000 events, then a reconciliation.

While the simulated county publishes and its departments, grid workers and citizens work,
every service is killed with SIGKILL once and restarted, RabbitMQ is restarted, and Redis
(a private one with append-only persistence, so a restart keeps what was acknowledged) is
restarted. Afterwards every published event must be exactly one case (or a merge into the
case it duplicates) or one quarantine entry; no case twice; no deadline fired twice; and the
scores scoring kept through the faults must equal a replay of the history: every lifecycle
event the county published, recorded on a queue of its own during the run, replayed into a
fresh county's scoring.
Prints the reconciliation and exits non-zero on any discrepancy.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests
from kombu import Connection, Queue, binding

from bench.redis_private import PrivateRedis, wait
from bench.run import md_table, stamp, write_figures
from onegrid import ops
from onegrid.accounting import gather
from onegrid.adapters import topology
from onegrid.adapters.management import Management
from onegrid.figures import scoring_snapshot
from onegrid.contracts import load_strict
from onegrid.live import LiveCounty
from onegrid.reconcile import reconcile
from onegrid.runner import ServiceSet
from onegrid.simulator import Simulator
from onegrid.ui import console, table

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("CHAOS_EVENTS", "10000"))
CHAOS_BEGIN, CHAOS_END = "<!-- chaos: written by make chaos -->", "<!-- end of chaos -->"
RATE = float(os.environ.get("CHAOS_RATE", "150"))
HISTORY = "chaos.history"  # a copy of what scoring consumes, kept for the replay

def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True)


def history_queue() -> Queue:
    """Bound like scoring's own queues, so it holds the history scoring was fed."""
    keys = [key for name, (_, key) in topology.CONSUMED.items() if name.startswith("scoring.")]
    return Queue(HISTORY, bindings=[binding(topology.EVENTS, routing_key=k) for k in keys], durable=True,
                 queue_arguments=topology.durable_args())


def _take_history(uri: str) -> list[tuple]:
    taken = []

    def on_message(message):
        taken.append((message.delivery_info["routing_key"], dict(message.headers or {}), message.body,
                      message.content_type))
        message.ack()
    with Connection(uri) as conn:
        with conn.Consumer([history_queue()], on_message=on_message, prefetch_count=512):
            idle = 0
            while idle < 3:
                try:
                    conn.drain_events(timeout=1)
                    idle = 0
                except TimeoutError:
                    idle += 1
    return taken


def _scoring_caught_up(tenant_id: str) -> bool:
    queues = [q for q in Management().queues(tenant_id) if q["name"].startswith("scoring.")]
    return all(q.get("messages", 1) == 0 for q in queues if not q["name"].endswith(".dlq"))


def _applied(scoring_url: str, tenant_id: str) -> int:
    text = requests.get(scoring_url + "/metrics", timeout=10).text
    return sum(int(float(v)) for v in re.findall(
        rf'^onegrid_scoring_events_total{{outcome="\w+",tenant="{re.escape(tenant_id)}"}} (\S+)', text, re.M))


def scores_replay(tenant, contracts: Path, live_scoring: str, env: dict, workdir: Path) -> dict:
    """The live county's scores beside a fresh county's after replaying the recorded history."""
    wait(lambda: _scoring_caught_up(tenant.id), "scoring caught up", timeout=300)
    time.sleep(6)  # the management API's queue figures lag by up to 5 s: look once more
    wait(lambda: _scoring_caught_up(tenant.id), "scoring caught up", timeout=300)
    dead = sum(q.get("messages", 0) for q in Management().queues(tenant.id)
               if q["name"].startswith("scoring.") and q["name"].endswith(".dlq"))
    history = _take_history(ops.uri(tenant.id))
    replay_id = f"{tenant.id}-replay"
    registry = load_strict(ops.clone_tenant(contracts, tenant.id, replay_id, workdir / "replay-contracts"))
    ops.onboard(registry.tenants[replay_id], reset=True)
    scoring = ServiceSet(replay_id, ops.uri(replay_id), port_base=8150, log_dir=ROOT / "run", services=("scoring",),
                         env={**env, "CONTRACTS_DIR": str(workdir / "replay-contracts")})
    try:
        with console.status(f"replaying {len(history):,} lifecycle events into a fresh county's scoring"):
            scoring.start()
            with Connection(ops.uri(replay_id), transport_options={"confirm_publish": True}) as conn:
                producer = conn.Producer()
                for key, headers, body, content_type in history:
                    producer.publish(body, exchange=topology.EVENTS.name, routing_key=key, headers=headers,
                                     content_type=content_type, content_encoding="binary", delivery_mode=2)
            url = scoring.url("scoring")
            wait(lambda: _applied(url, replay_id) >= len(history), "the replay applied", timeout=600)
            live, replayed = scoring_snapshot(live_scoring, tenant.id), scoring_snapshot(url, replay_id)
    finally:
        scoring.stop()
        ops.offboard(replay_id, delete_data=True, force=True)
    differ = [f"{part}.{key}" for part in live for key in set(live[part]) | set(replayed[part])
              if live[part].get(key) != replayed[part].get(key)]
    return {"events": len(history), "dead-lettered": dead, "differ": differ}


def faults(services: ServiceSet, private: PrivateRedis, log: list, duration: float) -> None:
    """Spread the faults over the run: each service killed once, then the broker, then Redis."""
    plan = [(f"kill -9 {name}", lambda n=name: (services.kill(n), services.start_one(n), services.wait_ready()))
            for name in services.names]
    plan += [("restart RabbitMQ", restart_rabbitmq), ("restart Redis (append-only)", private.restart)]
    gap = duration / (len(plan) + 1)
    for what, act in plan:
        time.sleep(gap)
        started = time.monotonic()
        act()
        log.append((what, f"{time.monotonic() - started:.1f}s"))
        console.print(f"[yellow]fault:[/] {what} ({log[-1][1]})")


def main() -> int:
    if not shutil.which("redis-server") or not shutil.which("rabbitmqctl"):
        console.print("[red]chaos needs redis-server and rabbitmqctl on this machine[/]")
        return 2
    tenant_id = f"chaos-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        private = PrivateRedis(Path(tmp))
        private.start()
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{private.port}/0"
        contracts = ops.clone_tenant(ROOT / "contracts", "zhongyuan-qinling", tenant_id, Path(tmp) / "contracts")
        registry = load_strict(contracts)
        tenant = registry.tenants[tenant_id]
        uri = ops.uri(tenant_id)
        env = {"CONTRACTS_DIR": str(contracts), "ONEGRID_TIME_SCALE": "3600", "REDIS_URL": os.environ["REDIS_URL"]}
        county = LiveCounty(tenant, env=env, log_dir=ROOT / "run")
        log: list = []
        try:
            county.start()
            with Connection(uri) as conn:
                history_queue()(conn.channel()).declare()
            sim = Simulator(tenant, uri, registry=registry, seed=7)
            planned = sim.plan(EVENTS, bad_every=50, duplicate_every=40)
            chaos = threading.Thread(target=faults, args=(county.services, private, log, EVENTS / RATE), daemon=True)
            chaos.start()
            with console.status(f"publishing {EVENTS} events at {RATE:.0f}/s through the faults"):
                sent = sim.publish(planned, rate=RATE)
            chaos.join()
            with console.status("waiting for the county to settle"):
                wait(lambda: _settled(county.store, len(planned)), "every event processed", timeout=300)
            county.actors.close()
            for name, proc in county.services.procs.items():  # no more events: the history is complete
                if name != "scoring":
                    proc.terminate()
                    proc.wait(30)
            scores = scores_replay(tenant, contracts, county.services.url("scoring"), env, Path(tmp))
            return report(planned, sent, county.store, log, scores)
        finally:
            county.close()
            ops.offboard(tenant_id, delete_data=True, force=True)  # its users, vhost and keys
            private.stop()


def _settled(store, n: int) -> bool:
    s = store.stats()
    return s.get("cases_dispatched", 0) + s.get("merged", 0) + s.get("quarantined", 0) >= n


def report(planned, sent, store, log, scores: dict) -> int:
    case_of, reason_of = gather(store, planned)
    ids = Counter()
    rec = reconcile(planned, case_of, reason_of)
    stats = store.stats()
    for case in case_of.values():
        ids[case["event_id"]] += 1
    twice, doubled = 0, []
    for case in case_of.values():
        fired = Counter((s.get("work_order"), s.get("note"), s.get("due", s.get("at")))
                        for s in store.timeline(case["id"]) if s["action"] == "supervise")
        for firing, n in fired.items():
            if n > 1:
                twice += n - 1
                doubled.append(f"{case['id']}: {firing} recorded {n} times")
    problems = list(rec.problems)
    if stats.get("cases", 0) != len(case_of):
        problems.append(f"{stats.get('cases', 0)} cases in the store for {len(case_of)} events that made one")
    if twice:
        problems.append(f"{twice} deadline firings recorded twice: {'; '.join(doubled[:5])}")
    if scores["differ"]:
        problems.append(f"scores differ from a replay of the history in {', '.join(scores['differ'][:8])}")
    if scores["dead-lettered"]:
        problems.append(f"{scores['dead-lettered']} lifecycle events dead-lettered by scoring")
    rows = [[len(planned), stats.get("cases", 0), stats.get("merged", 0), stats.get("quarantined", 0),
             f"{rec.cases_found + sum(rec.quarantine_found.values())}/{len(planned)}",
             sum(n - 1 for n in ids.values() if n > 1), twice, stats.get("supervisions", 0),
             f"{scores['events']:,} events: " + ("equal" if not scores["differ"] else "DIFFER"), len(problems)]]
    cols = ["published", "cases", "merged", "quarantined", "accounted for", "cases twice", "timers fired twice",
            "supervisions", "scores vs replay", "discrepancies"]
    when, commit = stamp()
    write_figures(ROOT / "docs" / "benchmarks.md", "\n".join([
        f"Last `make chaos`: {when}, commit {commit or 'uncommitted'}, {EVENTS} events at {RATE:.0f}/s.", "",
        md_table(["fault", "took"], log), "", md_table(cols, rows)]), CHAOS_BEGIN, CHAOS_END)
    console.print(table("Faults", ["fault", "took"], log))
    console.print(table("Reconciliation", cols, rows))
    if problems:
        console.print(f"[red]{len(problems)} discrepancies[/]")
        for p in problems[:30]:
            console.print("  " + p)
        return 1
    console.print("[green]every published event is accounted for exactly once[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
