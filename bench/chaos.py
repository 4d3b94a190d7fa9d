"""`make chaos`: faults during a run of 10,000 events, then a reconciliation.

The county runs on a RabbitMQ node of the run's own (bench.rabbit_private; the machine's
broker is never restarted or alarmed) and on a Redis primary with its replica and three
Sentinels (bench.redis_sentinel; the services follow the Sentinels and a case is acked only
once the replica has it). While the simulated county publishes and its departments, grid
workers and citizens work: every service is killed with SIGKILL once and restarted; the
RabbitMQ node is restarted; the Redis primary is restarted (append-only, nothing acked lost);
it is SIGKILLed and the Sentinels fail over to its replica; it is held at its maxmemory with
noeviction (writes refused, handlers retry, then dead-letter with the reason; then memory is
raised and the dead letters replayed); it is stalled (SIGSTOP) for 30 s; the broker raises its
memory alarm and then its disk alarm (publishers blocked, then released); and the services'
link to the broker stalls for 30 s (a TCP proxy between them stops forwarding; nothing is
closed). Afterwards every published event must be exactly one case (or a merge into the case
it duplicates) or one quarantine entry; no case twice; no deadline fired twice; no fault that
failed; and the scores scoring kept through the faults must equal a replay of the history:
every lifecycle event the county published, as its history.lifecycle stream kept it (the
broker's own log, onegrid.app.history.on_events_exchange), replayed into a fresh county's scoring.
Prints the reconciliation and exits non-zero on any discrepancy.

CHAOS_FAULTS=broker makes only the broker's faults, CHAOS_FAULTS=none none (the
reconciliation and the replay alone); CHAOS_BROKER=shared runs on the machine's broker and then
leaves out every broker fault but the stalled link. CHAOS_EVENTS, CHAOS_RATE size the run.
A service still running 30 s after the closing SIGTERM is killed and reported as a failed step;
the reconciliation runs all the same. Only a full run (10,000 events or more, every fault, the
private broker) writes its figures to docs/benchmarks.md; a smaller one prints them.

    make chaos                                             the full run (10,000 events at 40/s)
    CHAOS_EVENTS=1200 .venv/bin/python -m bench.chaos      the quick form, every fault
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import requests
from kombu import Connection

from bench.rabbit_private import PrivateRabbit, StallProxy
from bench.redis_private import wait
from bench.redis_sentinel import SentinelSet
from bench.run import md_table, stamp, write_figures
from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.bus import amqp_uri
from onegrid.adapters.amqp.history import StreamReader
from onegrid.adapters.amqp.management import Management
from onegrid.app.history import on_events_exchange
from onegrid.app.registry import load_strict
from onegrid.cli.ui import console, table
from onegrid.kernel import settings
from onegrid.operator import ops
from sim.accounting import gather
from sim.figures import scoring_snapshot
from sim.live import LiveCounty
from sim.reconcile import reconcile
from sim.runner import ServiceSet, free_port_base
from sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("CHAOS_EVENTS", "10000"))
CHAOS_BEGIN, CHAOS_END = "<!-- chaos: written by make chaos -->", "<!-- end of chaos -->"
RATE = float(os.environ.get("CHAOS_RATE", "40"))  # slow enough that every fault comes under load
FAULTS = os.environ.get("CHAOS_FAULTS", "all")  # all | broker (the alarm and the stall only)
# private: a RabbitMQ node of the run's own (restarted, alarmed); shared: the machine's broker
# (then only its brief memory alarm: the run never restarts a broker others use)
BROKER = os.environ.get("CHAOS_BROKER", "private")
STALL_SECONDS = float(os.environ.get("CHAOS_STALL_SECONDS", "30"))
# the memory alarm blocks every publisher of the node: kept short on the broker others share
ALARM_SECONDS = float(os.environ.get("CHAOS_ALARM_SECONDS", "15"))
# settling gives up when no event was processed for this long: longer than a message takes
# through every retry tier (1 s, 5 s, 30 s) and its handler's own waits
STUCK_SECONDS = 180
STOP_SECONDS = 30  # a service still running this long after SIGTERM is killed (and reported)
ALERT_RATIO = 0.9  # OneGridRedisMemoryNearMax: redis_memory_used_bytes / redis_memory_max_bytes > 0.9


def memory_alarm(rabbit: PrivateRabbit, seconds: float) -> str:
    """The broker's memory alarm for `seconds`: every publisher of the node is blocked, then
    released. Cleared whatever happens."""
    try:
        rabbit.memory_alarm(True)
        raised = rabbit.alarmed()
        time.sleep(seconds)
    finally:
        rabbit.memory_alarm(False)
    return "alarm raised, then cleared" if raised else "FAILED: no alarm in effect"


def disk_alarm(rabbit: PrivateRabbit, seconds: float) -> str:
    """The broker's disk alarm (a free-disk limit no disk meets) for `seconds`, then cleared."""
    try:
        rabbit.disk_alarm(True)
        wait(rabbit.alarmed, "the disk alarm", timeout=30)  # the disk monitor checks in its own time
        time.sleep(seconds)
    finally:
        rabbit.disk_alarm(False)
    return "alarm raised, then cleared"


def redis_failover(redis_set: SentinelSet) -> str:
    """The primary SIGKILLed under load; the Sentinels promote its replica; the old primary
    rejoins as the new one's replica."""
    old = redis_set.kill_primary()
    killed = time.monotonic()
    new = redis_set.await_failover(old)
    promoted = time.monotonic() - killed
    redis_set.rejoin(old)
    return f"{old} killed, {new} promoted in {promoted:.1f}s, {old} rejoined; primary now {redis_set.primary_port()}"


def redis_full(redis_set: SentinelSet, tenant_id: str) -> str:
    """The primary at its maxmemory with noeviction: every write refused, handlers retry and
    then dead-letter with the reason; the memory alert's expression is checked; then memory
    is raised and the dead letters replayed (what an operator does)."""
    primary = redis_set.primary()
    primary.config_set("maxmemory-policy", "noeviction")
    primary.config_set("maxmemory", int(primary.info("memory")["used_memory"]))
    try:
        time.sleep(1)
        info = primary.info("memory")
        ratio = info["used_memory"] / info["maxmemory"]
        # the retries (1 s, 5 s, 30 s) run out: the refused messages are dead-lettered
        wait(
            lambda: any("maxmemory" in d["error"] for d in ops.dead_letters(tenant_id)),
            "a message dead-lettered for maxmemory",
            timeout=120,
        )
    finally:
        primary.config_set("maxmemory", 0)
    time.sleep(3)  # a last attempt refused just before has reached its dead-letter queue
    dead = ops.dead_letters(tenant_id, replay=True)
    oom = sum("maxmemory" in d["error"] for d in dead)
    alert = "over" if ratio > ALERT_RATIO else "UNDER"
    note = (
        f"used/max {ratio:.2f} ({alert} the alert's {ALERT_RATIO}); "
        f"{len(dead)} dead-lettered ({oom} for maxmemory), replayed"
    )
    # anything else dead-lettered by now was given up on in an earlier fault: the replay
    # hides it from the reconciliation, so it is called out here
    other = Counter(f"{d['queue']}: {d['error'].splitlines()[-1][:160]}" for d in dead if "maxmemory" not in d["error"])
    return f"FAILED: {note}; dead-lettered for other reasons: {dict(other)}" if other else note


def stall(proxy: StallProxy, seconds: float) -> None:
    """The services' link to the broker stops forwarding for `seconds` (a broker that hangs)."""
    proxy.stall()
    try:
        time.sleep(seconds)
    finally:
        proxy.resume()


def _scoring_caught_up(tenant_id: str) -> bool:
    queues = [q for q in Management().queues(tenant_id) if q["name"].startswith("scoring.")]
    return all(q.get("messages", 1) == 0 for q in queues if not q["name"].endswith(".dlq"))


def _applied(scoring_url: str, tenant_id: str) -> int:
    text = requests.get(scoring_url + "/metrics", timeout=10).text
    return sum(
        int(float(v))
        for v in re.findall(
            rf'^onegrid_scoring_events_total{{outcome="\w+",tenant="{re.escape(tenant_id)}"}} (\S+)', text, re.M
        )
    )


def scores_replay(tenant, contracts: Path, live_scoring: str, env: dict, workdir: Path) -> dict:
    """The live county's scores beside a fresh county's after replaying its lifecycle history."""
    wait(lambda: _scoring_caught_up(tenant.id), "scoring caught up", timeout=300)
    time.sleep(6)  # the management API's queue figures lag by up to 5 s: look once more
    wait(lambda: _scoring_caught_up(tenant.id), "scoring caught up", timeout=300)
    dead = sum(
        q.get("messages", 0)
        for q in Management().queues(tenant.id)
        if q["name"].startswith("scoring.") and q["name"].endswith(".dlq")
    )
    # why (the reason each dead letter carries), for the report
    reasons = {f"{q}: {e}": k for (q, e), k in dead_letter_reasons(tenant.id).items() if q.startswith("scoring.")}
    # what scoring consumed, in order, a redelivered publish's copies too: the county's own
    # lifecycle stream (it survived the broker's restart: a stream is durable)
    history = [
        (k.routing_key, k.headers, k.body, k.content_type) for k in on_events_exchange(StreamReader(ops.uri(tenant.id)))
    ]
    replay_id = f"{tenant.id}-replay"
    registry = load_strict(ops.clone_tenant(contracts, tenant.id, replay_id, workdir / "replay-contracts"))
    ops.onboard(registry.tenants[replay_id], reset=True)
    scoring = ServiceSet(
        replay_id,
        ops.uri(replay_id),
        port_base=free_port_base(),  # ports no one else here listens on (see main)
        log_dir=ROOT / "run",
        services=("scoring",),
        # its own vhost: not the run's AMQP_URI (through the stall proxy, to the run's vhost)
        env={**{k: v for k, v in env.items() if k != "AMQP_URI"}, "CONTRACTS_DIR": str(workdir / "replay-contracts")},
    )
    try:
        with console.status(f"replaying {len(history):,} lifecycle events into a fresh county's scoring"):
            scoring.start()
            with Connection(ops.uri(replay_id), transport_options={"confirm_publish": True}) as conn:
                producer = conn.Producer()
                for key, headers, body, content_type in history:
                    producer.publish(
                        body,
                        exchange=topology.EVENTS.name,
                        routing_key=key,
                        headers=headers,
                        content_type=content_type,
                        content_encoding="binary",
                        delivery_mode=2,
                    )
            url = scoring.url("scoring")
            wait(lambda: _applied(url, replay_id) >= len(history), "the replay applied", timeout=600)
            live, replayed = scoring_snapshot(live_scoring, tenant), scoring_snapshot(url, registry.tenants[replay_id])
    finally:
        scoring.stop()
        ops.offboard(replay_id, delete_data=True, force=True)
    differ = [
        f"{part}.{key}"
        for part in live
        for key in set(live[part]) | set(replayed[part])
        if live[part].get(key) != replayed[part].get(key)
    ]
    # kept for a look (which department, grid or worker, by how much; the events behind it)
    for name, snap in (("live", live), ("replay", replayed)):
        (ROOT / "run" / f"chaos-scores-{name}.json").write_text(json.dumps(snap, indent=1, ensure_ascii=False))
    with (ROOT / "run" / "chaos-history.jsonl").open("w") as out:
        for key, headers, body, _ in history:
            out.write(json.dumps({"key": key, "headers": headers, "body": body.decode()}, default=str) + "\n")
    return {"events": len(history), "dead-lettered": dead, "reasons": reasons, "differ": differ}


def _kill(services: ServiceSet, name: str) -> str:
    services.kill(name)
    services.start_one(name)
    services.wait_ready()
    return "SIGKILL, started again"


def plan(services: ServiceSet, redis_set: SentinelSet, proxy: StallProxy, rabbit, tenant_id: str) -> list:
    """(what, act) for every fault of the run, in order; act may return a note of what happened."""
    steps: list = []
    if FAULTS == "all":
        steps += [(f"kill -9 {name}", lambda n=name: _kill(services, n)) for name in services.names]
        if rabbit:
            steps.append(("restart RabbitMQ (the run's node)", lambda: rabbit.restart() or "stop_app, start_app"))
        steps += [
            ("restart Redis primary (append-only)", lambda: f"port {redis_set.restart_primary()}"),
            ("Redis failover to its replica", lambda: redis_failover(redis_set)),
            ("Redis at maxmemory, noeviction", lambda: redis_full(redis_set, tenant_id)),
            (
                f"Redis stalled {STALL_SECONDS:g}s",
                lambda: f"SIGSTOP/SIGCONT port {redis_set.stall_primary(STALL_SECONDS)}",
            ),
        ]
    if FAULTS in ("all", "broker"):
        if rabbit:  # an alarm blocks every publisher of a node: never on the broker others share
            steps.append((f"broker memory alarm {ALARM_SECONDS:g}s", lambda: memory_alarm(rabbit, ALARM_SECONDS)))
            steps.append((f"broker disk alarm {ALARM_SECONDS:g}s", lambda: disk_alarm(rabbit, ALARM_SECONDS)))
        steps.append((f"broker link stalled {STALL_SECONDS:g}s", lambda: stall(proxy, STALL_SECONDS)))
    return steps


def faults(steps: list, log: list, duration: float) -> None:
    """Spread the faults over the publishing (fault i due at i/(n+1) of it; one that is due
    while another still runs starts when it ends). A fault that fails is a discrepancy."""
    begun = time.monotonic()
    for i, (what, act) in enumerate(steps, 1):
        time.sleep(max(0.0, begun + i * duration / (len(steps) + 1) - time.monotonic()))
        started = time.monotonic()
        try:
            note = act() or ""
        except Exception as exc:  # noqa: BLE001 - reported as a discrepancy, the run goes on
            note = f"FAILED: {type(exc).__name__}: {exc}"
        log.append((what, f"{time.monotonic() - started:.1f}s", note))
        console.print(f"[yellow]fault:[/] {what} ({log[-1][1]}) {note}")


def main(argv: list[str] | None = None) -> int:
    if {"-h", "--help"} & set(sys.argv[1:] if argv is None else argv):  # how to run it, not a run
        console.print(__doc__.strip(), markup=False, highlight=False)
        return 0
    if not shutil.which("redis-server") or not shutil.which("rabbitmqctl"):
        console.print("[red]chaos needs redis-server and rabbitmqctl on this machine[/]")
        return 2
    tenant_id = f"chaos-{uuid.uuid4().hex[:6]}"
    # HTTP ports no one else here listens on: the services bind with SO_REUSEPORT, so on the
    # default 8101.. another run's services on this machine would answer half the requests
    # (a scores snapshot read from someone else's scoring)
    os.environ["ONEGRID_PORT_BASE"] = str(free_port_base())
    with tempfile.TemporaryDirectory() as tmp:
        redis_set = SentinelSet(Path(tmp) / "redis").start()  # a primary, its replica, three Sentinels
        os.environ.update(redis_set.env())
        rabbit = PrivateRabbit(Path(tmp) / "rabbit").start() if BROKER == "private" else None
        if rabbit:
            os.environ.update(rabbit.env())  # onboarding, the simulator, the services: the private node
        broker = urlparse(settings.amqp_base())
        proxy = StallProxy(broker.port or 5672)  # the services reach the broker through it
        through = broker._replace(netloc=f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}").geturl()
        contracts = ops.clone_tenant(ROOT / "contracts", "zhongyuan-qinling", tenant_id, Path(tmp) / "contracts")
        registry = load_strict(contracts)
        tenant = registry.tenants[tenant_id]
        uri = ops.uri(tenant_id)
        env = {
            "CONTRACTS_DIR": str(contracts),
            "ONEGRID_TIME_SCALE": "3600",
            **redis_set.env(),
            # a case is acked only once its replica has it: a failover loses no acknowledged case
            "REDIS_WAIT_REPLICAS": "1",
            "REDIS_WAIT_MS": "1000",
            "AMQP_URI": amqp_uri(through, tenant_id),
            **(rabbit.env() if rabbit else {}),
        }
        county = LiveCounty(tenant, env=env, log_dir=ROOT / "run")
        log: list = []
        try:
            county.start()
            sim = Simulator(tenant, uri, registry=registry, seed=7)
            planned = sim.plan(EVENTS, bad_every=50, duplicate_every=40)
            steps = plan(county.services, redis_set, proxy, rabbit, tenant_id)
            chaos = threading.Thread(target=faults, args=(steps, log, EVENTS / RATE), daemon=True)
            chaos.start()
            with console.status(f"publishing {EVENTS} events at {RATE:.0f}/s through the faults"):
                sent = sim.publish(planned, rate=RATE)
            chaos.join()
            settle(county.store, tenant_id, len(planned), log)
            county.actors.close()
            # no more events: the history is complete (scoring stays up for the live scores)
            stop_all_but_scoring(county.services, log)
            try:
                scores = scores_replay(tenant, contracts, county.services.url("scoring"), env, Path(tmp))
            except Exception as exc:  # noqa: BLE001 - reported; the events are reconciled all the same
                scores = {"events": 0, "dead-lettered": 0, "reasons": {}, "differ": [], "failed": f"{exc!r}"[:300]}
                console.print(f"[red]the scores replay failed: {scores['failed']}[/]")
            return report(planned, sent, county.store, log, scores)
        finally:
            county.close()
            ops.offboard(tenant_id, delete_data=True, force=True)  # its users, vhost and keys
            redis_set.stop()
            proxy.close()
            if rabbit:
                rabbit.stop()


def stop_all_but_scoring(services: ServiceSet, log: list, timeout: float = STOP_SECONDS) -> None:
    """SIGTERM to every service but scoring. One that does not stop within `timeout` is
    killed and reported as a failed step: the reconciliation still runs (a stop problem must
    not hide it, and a kill loses nothing: every message is acked only once handled)."""
    started = time.monotonic()
    killed = services.stop(timeout, only=[n for n in services.procs if n != "scoring"])
    took = f"{time.monotonic() - started:.1f}s"
    if killed:
        note = f"FAILED: {', '.join(killed)} still running {timeout:g}s after SIGTERM: killed"
        console.print(f"[red]{note}[/]")
    else:
        note = "every service but scoring stopped"
    log.append(("stop services (SIGTERM)", took, note))


def _processed(store) -> int:
    s = store.stats()
    return s.get("cases_dispatched", 0) + s.get("merged", 0) + s.get("quarantined", 0)


def backlog(tenant_id: str) -> dict[str, int]:
    """Messages still in the county's queues (work queues, retry tiers, dead letters)."""
    return {q["name"]: q.get("messages", 0) for q in Management().queues(tenant_id) if q.get("messages")}


def dead_letter_reasons(tenant_id: str) -> Counter:
    """(queue, error) -> how many: what the dead-letter queues hold, read and put back."""
    return Counter((d["queue"], d["error"].splitlines()[-1][:200]) for d in ops.dead_letters(tenant_id))


def settle(store, tenant_id: str, n: int, log: list) -> None:
    """Wait until every published event has been processed (a case dispatched, a merge or a
    quarantine entry). The faults leave a backlog that drains at the services' pace: waiting
    goes on while it moves, up to 1 s per 5 events; stuck (no event processed for longer than
    the retry tiers take) or past that, what is missing is logged as a failed step."""
    started = last_move = time.monotonic()
    cap = max(300.0, n / 5)
    done = seen = _processed(store)
    while done < n:
        time.sleep(5)
        done = _processed(store)
        now = time.monotonic()
        if done > seen:
            seen, last_move = done, now
        if int(now - started) % 30 < 5:
            console.print(f"settling: {done:,}/{n:,} processed after {now - started:.0f}s")
        if now - started > cap or now - last_move > STUCK_SECONDS:
            queued = backlog(tenant_id)
            dead = dead_letter_reasons(tenant_id)
            note = (
                f"FAILED: {n - done:,} of {n:,} events not processed after {now - started:.0f}s "
                f"({now - last_move:.0f}s without progress); queued: {queued or 'nothing'}; "
                f"dead letters: {dict(dead) or 'none'}"
            )
            log.append(("settling", f"{now - started:.0f}s", note))
            console.print(f"[red]{note}[/]")
            return
    log.append(("settling", f"{time.monotonic() - started:.0f}s", f"{n:,} processed"))


FAULT_COLS = ["fault", "took", "what happened"]


def report(planned, sent, store, log, scores: dict) -> int:
    case_of, reason_of = gather(store, planned)
    ids = Counter()
    rec = reconcile(planned, case_of, reason_of)
    stats = store.stats()
    for case in case_of.values():
        ids[case["event_id"]] += 1
    twice, doubled = 0, []
    for case in case_of.values():
        fired = Counter(
            (s.get("work_order"), s.get("note"), s.get("due", s.get("at")))
            for s in store.timeline(case["id"])
            if s["action"] == "supervise"
        )
        for firing, n in fired.items():
            if n > 1:
                twice += n - 1
                doubled.append(f"{case['id']}: {firing} recorded {n} times")
    problems = list(rec.problems)
    problems += [f"fault {what}: {note}" for what, _, note in log if note.startswith("FAILED")]
    if stats.get("cases", 0) != len(case_of):
        problems.append(f"{stats.get('cases', 0)} cases in the store for {len(case_of)} events that made one")
    if twice:
        problems.append(f"{twice} deadline firings recorded twice: {'; '.join(doubled[:5])}")
    if scores.get("failed"):
        problems.append(f"the scores replay failed: {scores['failed']}")
    if scores["differ"]:
        problems.append(f"scores differ from a replay of the history in {', '.join(scores['differ'][:8])}")
    if scores["dead-lettered"]:
        problems.append(f"{scores['dead-lettered']} lifecycle events dead-lettered by scoring: {scores['reasons']}")
    rows = [
        [
            len(planned),
            stats.get("cases", 0),
            stats.get("merged", 0),
            stats.get("quarantined", 0),
            f"{rec.cases_found + sum(rec.quarantine_found.values())}/{len(planned)}",
            sum(n - 1 for n in ids.values() if n > 1),
            twice,
            stats.get("supervisions", 0),
            _scores_cell(scores),
            len(problems),
        ]
    ]
    cols = [
        "published",
        "cases",
        "merged",
        "quarantined",
        "accounted for",
        "cases twice",
        "timers fired twice",
        "supervisions",
        "scores vs replay",
        "discrepancies",
    ]
    when, commit = stamp()
    console.print(table("Faults", FAULT_COLS, log))
    console.print(table("Reconciliation", cols, rows))
    if FAULTS == "all" and BROKER == "private" and EVENTS >= 10_000:  # a full run's figures; others only print
        _write(when, commit, log, cols, rows)
    if problems:
        console.print(f"[red]{len(problems)} discrepancies[/]")
        for p in problems[:30]:
            console.print("  " + p)
        return 1
    console.print("[green]every published event is accounted for exactly once[/]")
    return 0


def _scores_cell(scores: dict) -> str:
    if scores.get("failed"):
        return "replay FAILED"
    return f"{scores['events']:,} events: " + ("equal" if not scores["differ"] else "DIFFER")


def _write(when, commit, log, cols, rows) -> None:
    write_figures(
        ROOT / "docs" / "benchmarks.md",
        "\n".join(
            [
                f"Last `make chaos`: {when}, commit {commit or 'uncommitted'}, {EVENTS} events at {RATE:.0f}/s.",
                "",
                md_table(FAULT_COLS, log),
                "",
                md_table(cols, rows),
            ]
        ),
        CHAOS_BEGIN,
        CHAOS_END,
    )


if __name__ == "__main__":
    raise SystemExit(main())
