"""End-to-end throughput and latency — from a department's publish to the work order sitting
in the department's queue — beside the raw kombu ceiling, measured in the same run on the
same broker, written to docs/benchmarks.md.

Env: BENCH_EVENTS (default 10000), BENCH_PUBLISHERS (4), BENCH_RATES (offered loads, 200,400,600),
BENCH_UNBATCHED (1: the drain and the first rate again with BATCH_SIZE=1; 0 skips),
ONEGRID_QUEUE_TYPE (quorum, or classic).
"""

from __future__ import annotations

import os
import platform
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.cpu import CpuSampler
from bench.pattern import StandIns, capture, event_id_in, fan_out
from bench.plot import draw, save
from bench.raw import ceiling, consume_until
from bench.stats import Run
from bench.timers import run as timer_ticks
from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.management import Management
from onegrid.app.registry import load_strict
from onegrid.cli.ui import console, table
from onegrid.domain.cases import case_id
from onegrid.domain.intake import identity
from onegrid.domain.scoring import epoch
from onegrid.kernel import settings
from onegrid.kernel.envelope import HEADER_PREFIX
from onegrid.kernel.tenant import Tenant
from onegrid.operator import ops
from sim.runner import ServiceSet
from sim.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent


def end_to_end(sim: Simulator, tenant, events: int, publishers: int, rate: float, name: str) -> Run:
    planned = sim.plan(events, bad_every=0)
    wanted, done = {p.event_id for p in planned}, threading.Event()
    run = Run(name, events)
    made: dict[str, float] = {}
    arrived = collect_work_orders(sim.uri, tenant, wanted, run, done, made)
    time.sleep(0.5)
    with console.status(
        f"{name}: {events} events, {publishers} publishers"
        + (f", {rate:.0f}/s offered" if rate else ", as fast as confirms allow")
    ):
        run.started = time.perf_counter()
        sent = sim.publish(planned, threads=publishers, rate=rate)
        run.published = time.perf_counter()
        done.wait(600)
    run.latencies = [arrived[e] - sent.published_at[e] for e in arrived]
    run.until_made = [made[e] - sent.published_at[e] for e in arrived if e in made]
    if not done.is_set():
        console.print(f"[red]{name}: only {len(arrived)}/{events} work orders arrived[/]")
    return run


def collect_work_orders(
    uri: str, tenant, wanted: set, run: Run, done: threading.Event, made: dict[str, float] | None = None
) -> dict[str, float]:
    """In a thread, take work orders off every department's queue; note when the first one
    of each wanted event arrived (and in `made` when routing made it: its envelope's `time`),
    and finish `run` (set `done`) when all have."""
    arrived: dict[str, float] = {}

    def on_message(message):
        event_id = _event_id(message.body)
        if event_id in wanted and event_id not in arrived:
            arrived[event_id] = time.time()
            made_at = epoch((message.headers or {}).get(HEADER_PREFIX + "time"))
            if made is not None and made_at is not None:
                made[event_id] = made_at
            if len(arrived) == len(wanted):
                run.finished = time.perf_counter()
                done.set()
        message.ack()

    queues = [topology.work_queue(d) for d in tenant.departments]
    threading.Thread(target=consume_until, args=(uri, queues, on_message, done), daemon=True).start()
    return arrived


def _event_id(body: bytes) -> str | None:
    try:
        return event_id_in(body)
    except ValueError:  # not a work order of a department's event
        return None


def host() -> dict:
    """This machine: CPU, cores, memory, kernel, Python."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        (
            int(line.split()[1]) // 1024 // 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def machine() -> dict:
    """This machine and the broker's and Redis's versions."""
    rabbit = Management(settings.management_url()).overview()
    redis_v = ops.store("x").r.info("server")["redis_version"]
    return {
        **host(),
        "rabbitmq": rabbit.get("rabbitmq_version"),
        "erlang": rabbit.get("erlang_version"),
        "redis": redis_v,
    }


@dataclass(frozen=True)
class Pipeline:
    """A throwaway tenant for a benchmark: its broker URI, a simulator, and intake and routing
    (the measured path; the other services consume beside it, not on it), not yet started."""

    tenant: Tenant
    uri: str
    sim: Simulator
    services: ServiceSet


@contextmanager
def pipeline(seed: int) -> Iterator[Pipeline]:
    """A clone of zhongyuan-qinling under a fresh id, onboarded; afterwards its services are
    stopped and it is offboarded (its users, vhost, Redis user and keys)."""
    tenant_id = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        # no duplicate merging: every benchmark event must reach a department's queue
        contracts = ops.clone_tenant(
            ROOT / "contracts",
            "zhongyuan-qinling",
            tenant_id,
            Path(tmp) / "contracts",
            {"lifecycle": {"duplicates": {"window": "1s", "distance_m": 0}}},
        )
        registry = load_strict(contracts)
        tenant = registry.tenants[tenant_id]
        ops.onboard(tenant, reset=True)
        uri = ops.uri(tenant_id)
        services = ServiceSet(
            tenant_id, uri, log_dir=ROOT / "run", env={"CONTRACTS_DIR": str(contracts)}, services=("intake", "routing")
        )
        try:
            yield Pipeline(tenant, uri, Simulator(tenant, uri, registry=registry, seed=seed), services)
        finally:
            services.stop()
            ops.offboard(tenant_id, delete_data=True, force=True)


def drain_backlog(sim: Simulator, tenant, services: ServiceSet, events: int) -> Run:
    """Pipeline capacity without the load generator competing for the CPU: the events wait in
    intake's queue while the services are stopped; the clock runs from their start until the
    last work order is in its department's queue."""
    return drain_backlogs([(sim, tenant)], services.stop, services.start, events)[0][0]


def _forget_merged(tenant, planned, want: set, arrived: dict, run: Run, done: threading.Event) -> None:
    """An event that happens to look like an earlier run's (same grid and category within the
    duplicate window) is merged, not dispatched: stop waiting for its work order."""
    missing = [p for p in planned if p.event_id in want and p.event_id not in arrived]
    if not missing or len(missing) > 100:
        return
    store = ops.store(tenant.id)
    for p in missing:
        case = store.case(case_id(identity(p.department, p.headers["ce-source"], p.event_id)))
        if case and case.get("status") == "merged":
            want.discard(p.event_id)
    if len(arrived) >= len(want) and not done.is_set():
        run.messages = len(want)
        run.finished = time.perf_counter()
        done.set()


def drain_backlogs(loads: list, stop, start, events: int, timeout: float = 600) -> list[tuple[Run, dict]]:
    """drain_backlog over several tenants at once: `loads` is (simulator, tenant) pairs, each
    given a backlog of `events` while `stop` has the services down; the clock runs from calling
    `start` until every tenant's last work order arrived. One (Run, arrivals) per tenant, all
    started at the same instant; arrivals maps each event to when (time.time()) its first
    work order arrived. A run whose work orders did not all arrive has `finished` 0."""
    stop()
    backlog = []
    for sim, tenant in loads:
        planned = sim.plan(events, bad_every=0)
        sim.publish(planned, threads=4)
        backlog.append((sim, tenant, planned))
    out, dones, wanted = [], [], []
    for sim, tenant, planned in backlog:
        run, done = Run(f"end to end, draining a backlog of {events * len(loads)}", events), threading.Event()
        wanted.append({p.event_id for p in planned})
        out.append((run, collect_work_orders(sim.uri, tenant, wanted[-1], run, done)))
        dones.append(done)
    with console.status(
        f"draining a backlog of {events * len(loads)} events"
        + (f" over {len(loads)} tenants" if len(loads) > 1 else "")
    ):
        started = time.perf_counter()
        start()
        deadline = started + timeout
        for (_, tenant, planned), done, want, (run, arrived) in zip(backlog, dones, wanted, out, strict=True):
            while not done.wait(min(2.0, max(0.0, deadline - time.perf_counter()))):
                if time.perf_counter() >= deadline:
                    break
                _forget_merged(tenant, planned, want, arrived, run, done)
    for (run, arrived), done in zip(out, dones, strict=True):
        run.started = run.published = started
        if not done.is_set():
            console.print(f"[red]only {len(arrived)}/{run.messages} work orders arrived in {timeout:.0f}s[/]")
            done.set()  # stops its consumer
    return out


def main() -> int:
    events = int(os.environ.get("BENCH_EVENTS", "10000"))
    publishers = int(os.environ.get("BENCH_PUBLISHERS", "4"))
    rates = [float(r) for r in os.environ.get("BENCH_RATES", "200,400,600").split(",")]
    with pipeline(seed=99) as bench:
        sim, tenant, services = bench.sim, bench.tenant, bench.services
        size = sum(len(p.body) for p in sim.plan(200)) // 200
        runs = []
        with console.status("raw broker ceiling"):
            raw = ceiling(bench.uri, events, size, publishers, topology.durable_args())
        console.print(f"raw ceiling: {raw.per_second:,.0f} msg/s")
        with console.status("starting services"):
            services.start()
        end_to_end(sim, tenant, 500, publishers, 0, "warm-up")
        runs.append(end_to_end(sim, tenant, events, publishers, 0, "end to end, saturated"))
        for rate in rates:
            runs.append(end_to_end(sim, tenant, int(rate * 10), 1, rate, f"end to end, {rate:.0f}/s offered"))
        (drained, cpu), writes = fan_out(
            tenant.id, lambda: with_cpu(services, lambda: drain_backlog(sim, tenant, services, events)), events
        )
        runs.append(drained)
        pattern = {"onegrid_queue_writes_per_event": writes, "cpu_ms_per_event": cpu}
        if os.environ.get("BENCH_PATTERN", "1") == "1":  # the bus's share, in the same run
            runs.append(bus_alone(bench, events, pattern))
        if os.environ.get("BENCH_UNBATCHED", "1") == "1":  # what the batches buy, in the same run
            runs += unbatched(sim, tenant, services, events, rates[0])
    sizes = [int(x) for x in os.environ.get("BENCH_TIMER_SIZES", "10000,100000,1000000").split(",")]
    report(raw, runs, size, publishers, timer_ticks(sizes), pattern)
    return 0


def with_cpu(services: ServiceSet, drain: Callable[[], Run]) -> tuple[Run, dict[str, float]]:
    """A drain, and the CPU time it took per event (ms) from starting the services to the last
    work order: intake, routing, the broker, Redis, the rest (the kernel, the benchmark's own
    consumer) and the whole machine (all cores)."""
    offset = time.time() - time.perf_counter()  # Run's clock is perf_counter, the sampler's time.time
    with CpuSampler([services]) as sampler:
        run = drain()
    wall = run.finished - run.started
    if not run.finished or wall <= 0 or not run.messages:
        return run, {}
    use = sampler.between(run.started + offset, run.finished + offset)

    def ms(percent_of_a_core: float) -> float:
        return percent_of_a_core / 100 * wall * 1000 / run.messages

    cpu = {name: ms(sum(v for k, v in use.items() if k.endswith(f"/{name}"))) for name in ("intake", "routing")}
    cpu |= {"rabbitmq": ms(use.get("rabbitmq", 0.0)), "redis": ms(use.get("redis", 0.0))}
    machine = ms(use["machine (all cores)"] * (os.cpu_count() or 1))
    return run, {**cpu, "rest": max(0.0, machine - sum(cpu.values())), "machine": machine}


def bus_alone(bench: Pipeline, events: int, pattern: dict) -> Run:
    """The same drain through stand-ins that do only the bus's part of intake and routing
    (bench/pattern.py), with the real services' messages captured from this run."""
    stand_ins = StandIns(bench.uri, capture(bench.uri, bench.tenant))
    try:
        run, writes = fan_out(
            bench.tenant.id,
            lambda: drain_backlogs([(bench.sim, bench.tenant)], bench.services.stop, stand_ins.start, events)[0][0],
            events,
        )
    finally:
        stand_ins.stop()
    run.name = f"the bus's work alone (stand-ins), draining a backlog of {events}"
    pattern["stand_in_queue_writes_per_event"] = writes
    return run


def unbatched(sim: Simulator, tenant, services: ServiceSet, events: int, rate: float) -> list[Run]:
    """The same drain and the first offered rate with batching off (BATCH_SIZE=1: every message
    its own handler call, confirm wait, ack and Redis round trips), the services restarted."""
    services.env["BATCH_SIZE"] = "1"
    try:
        drained = drain_backlog(sim, tenant, services, events)
        offered = end_to_end(sim, tenant, int(rate * 10), 1, rate, f"BATCH_SIZE=1, {rate:.0f}/s offered")
    finally:
        services.env.pop("BATCH_SIZE")
    drained.name += " (BATCH_SIZE=1)"
    return [drained, offered]


def report(raw: Run, runs: list[Run], size: int, publishers: int, ticks: list[dict], pattern: dict) -> None:
    cols = ["run", "messages", "publish/s", "end-to-end/s", "p50 ms", "p95 ms", "p99 ms", "vs raw"]
    rows = [
        [
            r.name,
            r.messages,
            f"{r.publish_per_second:,.0f}" if r.published > r.started else "—",
            f"{r.per_second:,.0f}",
            *(f"{r.pct(q):.1f}" if r.latencies else "—" for q in (50, 95, 99)),
            f"{r.per_second / raw.per_second:.2f}",
        ]
        for r in [raw] + runs
    ]
    console.print(table("Benchmark", cols, rows))
    tick_cols = ["open cases", "timers", "idle tick ms", "tick with 10 due ms", "p99 ms", "MiB"]
    tick_rows = [
        [
            f"{t['open cases']:,}",
            f"{t['timers']:,}",
            f"{t['idle tick ms']:.3f}",
            f"{t['tick with 10 due ms']:.3f}",
            f"{t['p99 ms']:.2f}",
            f"{t['MiB']:.0f}",
        ]
        for t in ticks
    ]
    console.print(table("Timer tick (supervision)", tick_cols, tick_rows))
    split_cols = ["run", "until routing made the work order: p50 ms", "p99 ms", "the whole way: p50 ms", "p99 ms"]
    split_rows = [
        [
            r.name,
            f"{r.pct(50, r.until_made):.1f}",
            f"{r.pct(99, r.until_made):.1f}",
            f"{r.pct(50):.1f}",
            f"{r.pct(99):.1f}",
        ]
        for r in runs
        if r.until_made and r.name.endswith("/s offered")
    ]
    m = machine()
    when, commit = stamp()
    lines = [
        "# Benchmarks",
        "",
        "Figures written by `make bench` (bench/run.py); the figures below are from the last run. Each run",
        "measures the raw broker ceiling and OneGrid end to end in one go, on the same broker.",
        "",
        f"- when: {when}, commit {commit or 'uncommitted'}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; Linux {m['kernel']}",
        f"- RabbitMQ {m['rabbitmq']} (Erlang {m['erlang']}), Redis {m['redis']}, Python {m['python']}",
        f"- events: ~{size} bytes of JSON each, persistent, quorum queues, publisher confirms,"
        f" {publishers} publisher threads; the services as `nameko run` processes on the same machine",
        "",
        md_table(cols, rows),
        "",
        "- **raw kombu publish -> consume**: publishers with confirms into one quorum queue, one",
        "  consumer acking; latency from publish to consume. The ceiling for any pipeline here.",
        "- **end to end**: a department's publish to `onegrid.intake` until the work order is in the",
        "  department's `workorders.<department>` queue (consumed by the benchmark): intake",
        "  validates against the contract and registers the case in Redis, emits `case.registered`",
        "  with confirms; routing evaluates the routing table, records the work orders and puts each",
        "  on its department's queue with confirms. Two hops through the broker, two through Redis.",
        "- **vs raw**: end-to-end events/s divided by the raw ceiling's messages/s.",
        *bus_share(runs, pattern),
        *(
            [
                "- **where an event's time goes** at the offered rates: from the department's publish until",
                "  routing made the work order (its envelope's `time`: intake and routing, and the waits",
                "  before each), then the whole way (routing's publish and its confirm, the broker, the",
                "  benchmark's consumer after it):",
                "",
                md_table(split_cols, split_rows),
                "",
            ]
            if split_rows
            else []
        ),
        "- **BATCH_SIZE=1**: the same drain and the first offered rate with the hot path's batches",
        "  off (the services restarted with `BATCH_SIZE=1`; BENCH_UNBATCHED=0 skips them).",
        "",
        "One supervision tick (claiming the due timers from Redis) with two timers per open case,",
        "all in the future but for 10 due before every other tick; median of 200 ticks:",
        "",
        md_table(tick_cols, tick_rows),
        "",
        "- Latency at saturation is mostly queueing (the publishers outrun the pipeline); the",
        "  offered-load runs show the latency of one event while the pipeline keeps up.",
        "- **draining a backlog**: the pipeline's capacity with no load generator competing for the",
        "  two cores: events wait in `intake.events` while the services are down; the clock runs",
        "  from starting them (start-up included) to the last work order arriving.",
        f"- queue type: {topology.durable_args()['x-queue-type']} (ONEGRID_QUEUE_TYPE)",
        "",
        "![Latency against offered load](bench/latency.png)",
        "",
    ]
    save(
        "run",
        {
            "when": when,
            "commit": commit,
            "machine": m,
            "event_bytes": size,
            "publishers": publishers,
            "queue_type": topology.durable_args()["x-queue-type"],
            "raw": run_json(raw),
            "runs": [run_json(r) for r in runs],
            "timer_ticks": ticks,
            "pattern": pattern,
        },
    )
    draw(["run"])
    write_figures(ROOT / "docs" / "benchmarks.md", "\n".join(lines[2:]))
    console.print("written to docs/benchmarks.md and docs/bench/run.json")


def bus_share(runs: list[Run], pattern: dict) -> list[str]:
    """What the report says of the stand-ins' run: the queue writes per event of both drains,
    and OneGrid's drained rate as a share of the bus's alone."""
    drained = next((r for r in runs if r.name.startswith("end to end, draining")), None)
    alone = next((r for r in runs if r.name.startswith("the bus's work alone")), None)
    lines = [
        "- **queue writes per event**: messages the tenant's queues and streams took per event while",
        f"  OneGrid drained its backlog: {pattern['onegrid_queue_writes_per_event']:.2f}"
        + (
            f" (the stand-ins: {pattern['stand_in_queue_writes_per_event']:.2f})."
            if "stand_in_queue_writes_per_event" in pattern
            else "."
        ),
    ]
    cpu = pattern.get("cpu_ms_per_event")
    if cpu:
        lines += [
            "- **CPU per event while draining** (ms of one core, from /proc, the services' start to the",
            f"  last work order): intake {cpu['intake']:.2f}, routing {cpu['routing']:.2f},"
            f" RabbitMQ {cpu['rabbitmq']:.2f}, Redis {cpu['redis']:.2f},",
            f"  the rest (the kernel, the benchmark's consumer) {cpu['rest']:.2f}; the machine {cpu['machine']:.2f}.",
            f"  At 1,000 events/s {os.cpu_count()} cores allow {(os.cpu_count() or 1):.1f} ms per event.",
        ]
    if drained and alone and alone.per_second:
        lines += [
            "- **the bus's work alone**: two stand-ins (bench/pattern.py) consume, publish and ack",
            "  exactly what intake and routing do (the same batches, messages captured from this run,",
            "  OneGrid's `Bus.publish_many`), and nothing else: no Redis, no contract, no routing.",
            f"  OneGrid drains at {drained.per_second / alone.per_second:.2f} of that rate.",
        ]
    return lines


def run_json(run: Run) -> dict:
    """A run's figures for docs/bench/*.json (offered: the load asked for, events/s, if any)."""
    offered = run.name.split(", ")[-1].removesuffix("/s offered")
    return {
        "name": run.name,
        "messages": run.messages,
        "per_second": run.per_second,
        "publish_per_second": run.publish_per_second if run.published > run.started else None,
        "offered_per_second": float(offered) if offered.isdigit() else None,
        "batch_size": 1 if "BATCH_SIZE=1" in run.name else None,  # else the services' default
        **({f"p{q}_ms": run.pct(q) for q in (50, 95, 99)} if run.latencies else {}),
        **({f"made_p{q}_ms": run.pct(q, run.until_made) for q in (50, 99)} if run.until_made else {}),
    }


def stamp() -> tuple[str, str]:
    """When a benchmark ran (UTC, to the minute) and at which commit ('' outside a git checkout)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), commit.stdout.strip()


def md_table(cols: list[str], rows) -> str:
    return "\n".join(
        [
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
            *["| " + " | ".join(str(c) for c in row) + " |" for row in rows],
        ]
    )


BEGIN, END = "<!-- figures: written by make bench -->", "<!-- end of figures -->"


def write_figures(path: Path, figures: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the figures between the markers, keeping the hand-written analysis around them."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text:
        text = f"{text.rstrip()}\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1] if end in rest else ""
    path.write_text(f"{head}{begin}\n{figures.strip()}\n{end}{tail}", encoding="utf-8")
