"""Scaling on one broker: (a) 1, 4 and 16 tenants, each with its own intake and routing
processes, draining a backlog spread over all of them; (b) one tenant with 1 and 2
replicas of the busiest service on the measured path (by CPU in the one-tenant run). Both
measured as bench.run's drained backlog (the events wait in `intake.events` while the
services are down; the clock runs from starting them until the last work order is in its
department's queue), beside the raw broker ceiling measured in the same run. Also: how long
the processes took to start, their memory (RSS), and CPU use.

Before onboarding, the tenant counts are checked against the broker's file handles (each
queue and connection holds one; at its limit RabbitMQ hangs instead of refusing, for every
user of the broker): a count that does not fit is skipped, and said so.

Env: SCALING_TENANTS (default 1,4,16), SCALING_EVENTS (16000: the backlog, spread evenly over
the tenants), SCALING_REPLICAS (1,2), SCALING_REPLICA_EVENTS (10000), SCALING_SERVICE (auto:
the service of the measured path with the most CPU in the one-tenant run, else intake, as
profiled in docs/benchmarks.md), SCALING_RAW_MESSAGES (10000), SCALING_START_TIMEOUT (300 s),
SCALING_FORCE (0; 1 runs tenant counts that look too many for the broker's file handles).
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.cpu import CpuSampler, processes, rss_bytes
from bench.plot import draw, save
from bench.raw import ceiling
from bench.run import ROOT, drain_backlogs, machine, md_table, stamp, write_figures
from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.management import Management
from onegrid.app.registry import load_strict
from onegrid.cli.ui import console, table
from onegrid.kernel import settings
from onegrid.operator import ops
from onegrid.operator import provisioning as prov
from sim.runner import ServiceSet, free_port_base, port_span
from sim.simulator import Simulator

DEFAULTS = {
    "SCALING_TENANTS": "1,4,16",
    "SCALING_EVENTS": "16000",
    "SCALING_REPLICAS": "1,2",
    "SCALING_REPLICA_EVENTS": "10000",
    "SCALING_SERVICE": "auto",
    "SCALING_RAW_MESSAGES": "10000",
    "SCALING_START_TIMEOUT": "300",
    "SCALING_FORCE": "0",
}
BEGIN, END = "<!-- scaling: written by python -m bench.scaling -->", "<!-- end of scaling -->"
MEASURED = ("intake", "routing")  # the measured path, as in bench.run


def setting(name: str) -> str:
    return os.environ.get(name, DEFAULTS[name])


def numbers(name: str) -> list[int]:
    return [int(n) for n in setting(name).split(",") if n.strip()]


# -- what the broker can take -------------------------------------------------------------
CONNECTIONS_PER_PROCESS = 18  # a nameko consumer connection, the bus's pool of up to 16, one more
FD_RESERVE = 97  # RabbitMQ keeps this many of its open-file limit for itself


def broker_budget() -> dict:
    """RabbitMQ's file-handle budget (its open-file limit less its reserve) and what uses it
    now: every queue holds about one handle and every connection one. Over the budget the
    broker does not fail, it waits: queue declarations and new vhosts hang, for every user."""
    mgmt = Management(settings.management_url())
    node = (mgmt._get("/nodes") or [{}])[0]
    totals = mgmt.overview().get("object_totals", {})
    return {
        "limit": int(node.get("fd_total") or 0) - FD_RESERVE,
        "queues": int(totals.get("queues", 0)),
        "connections": int(totals.get("connections", 0)),
    }


def handles_needed(tenants: int, queues_per_tenant: int, processes_per_tenant: int) -> int:
    return tenants * (queues_per_tenant + processes_per_tenant * CONNECTIONS_PER_PROCESS)


def fitting(counts: list[int], budget: dict, queues_per_tenant: int, processes_per_tenant: int) -> list[int]:
    """The tenant counts whose queues and connections fit the broker's free handles."""
    free = budget["limit"] - budget["queues"] - budget["connections"]
    return [n for n in counts if handles_needed(n, queues_per_tenant, processes_per_tenant) <= free]


# -- many service sets at once ------------------------------------------------------------
def start_all(sets: list[ServiceSet], timeout: float) -> float:
    """Start every set's processes together; seconds until every one answers /health."""
    started = time.perf_counter()
    for s in sets:
        s.spawn()
    deadline = started + timeout
    for s in sets:
        s.wait_ready(max(1.0, deadline - time.perf_counter()))
    return time.perf_counter() - started


def stop_all(sets: list[ServiceSet]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(sets))) as pool:
        list(pool.map(lambda s: s.stop(), sets))


class Tenants:
    """`n` private counties cloned from zhongyuan-qinling (duplicate merging off, so every
    event reaches a department's queue), onboarded; offboarded with their data on exit."""

    def __init__(self, n: int, tmp: Path):
        run = uuid.uuid4().hex[:6]
        self.ids = [f"scale-{run}-{i:02d}" for i in range(n)]
        self.onboarded: list[str] = []
        self.contracts = Path(tmp) / "contracts"
        for tenant_id in self.ids:
            ops.clone_tenant(
                ROOT / "contracts",
                "zhongyuan-qinling",
                tenant_id,
                self.contracts,
                {"lifecycle": {"duplicates": {"window": "1s", "distance_m": 0}}},
            )
        self.registry = load_strict(self.contracts)
        self.tenants = [self.registry.tenants[t] for t in self.ids]

    def onboard(self) -> float:
        started = time.perf_counter()
        with console.status("onboarding") as status:
            for tenant in self.tenants:
                status.update(f"onboarding {tenant.id} ({len(self.onboarded) + 1} of {len(self.tenants)})")
                self.onboarded.append(tenant.id)
                ops.onboard(tenant, reset=True)
        return time.perf_counter() - started

    def simulator(self, i: int, seed: int) -> Simulator:
        return Simulator(self.tenants[i], ops.uri(self.ids[i]), registry=self.registry, seed=seed)

    def offboard(self) -> None:
        with console.status("offboarding the tenants"):
            for tenant_id in self.onboarded:
                try:
                    ops.offboard(tenant_id, delete_data=True, force=True)  # users, vhost, Redis user and keys
                except Exception as exc:  # noqa: BLE001 - offboard the others all the same
                    console.print(f"[red]offboarding {tenant_id} failed: {exc}[/]")


def service_sets(tenants: Tenants, n: int, log_dir: Path, replicas: dict | None = None) -> list[ServiceSet]:
    span = port_span(replicas)
    base = free_port_base(span * n)
    return [
        ServiceSet(
            t,
            ops.uri(t),
            port_base=base + i * span,
            log_dir=log_dir,
            services=MEASURED,
            env={"CONTRACTS_DIR": str(tenants.contracts)},
            replicas=replicas,
        )
        for i, t in enumerate(tenants.ids[:n])
    ]


def drain(tenants: Tenants, sets: list[ServiceSet], events_each: int, seed: int, timeout: float) -> dict:
    """One drained backlog over the given sets' tenants; the figures, aggregate and per tenant.
    CPU is taken between the first work order and the last (any tenant's)."""
    loads = [(tenants.simulator(i, seed + i), tenants.tenants[i]) for i in range(len(sets))]
    with CpuSampler(sets) as cpu:
        results = drain_backlogs(loads, lambda: stop_all(sets), lambda: start_all(sets, timeout), events_each)
        rss = sum(rss_bytes(p) for p in processes(sets).values()) / 2**20
    started = results[0][0].started
    ok = all(run.finished for run, _ in results)
    end = max(run.finished for run, _ in results) if ok else time.perf_counter()
    arrivals = [t for _, a in results for t in a.values()]
    first, last = (min(arrivals), max(arrivals)) if arrivals else (0.0, 0.0)
    use = cpu.between(first, last) if last > first else {}
    per_tenant = [run.per_second for run, _ in results]
    total = events_each * len(sets)
    return {
        "events": total,
        "ok": ok,
        "seconds": end - started,
        "per_second": total / (end - started) if ok else 0.0,
        "per_second_after_first": total / (last - first) if ok and last > first else 0.0,
        "tenant_min": min(per_tenant),
        "tenant_max": max(per_tenant),
        "tenant_after_first": [len(a) / (max(a.values()) - min(a.values())) if len(a) > 1 else 0.0 for _, a in results],
        "rss_mib": rss,
        "processes": len(processes(sets)),
        "cpu_percent": {k: use[k] for k in ("rabbitmq", "redis", "machine (all cores)") if k in use},
        "process_cpu_percent": {k: v for k, v in use.items() if "/" in k},
    }


def busiest(tenant_rows: list[dict]) -> str:
    """The service of the measured path with the most CPU in the one-tenant run."""
    one = next((row for row in tenant_rows if row["tenants"] == 1), None)
    if one is None:
        return "intake"  # the profile in docs/benchmarks.md
    use = by_service(one["process_cpu_percent"])
    return max(MEASURED, key=lambda name: use.get(name, 0.0))


def by_service(own: dict[str, float]) -> dict[str, float]:
    """Sum the per-process CPU percentages by instance name (tenant/intake-2 -> intake-2)."""
    out: dict[str, float] = {}
    for name, pct in own.items():
        key = name.split("/", 1)[1]
        out[key] = out.get(key, 0.0) + pct
    return out


def main() -> int:
    counts, total = numbers("SCALING_TENANTS"), int(setting("SCALING_EVENTS"))
    replica_counts, replica_events = numbers("SCALING_REPLICAS"), int(setting("SCALING_REPLICA_EVENTS"))
    service, timeout = setting("SCALING_SERVICE"), float(setting("SCALING_START_TIMEOUT"))
    log_dir = ROOT / "run" / "scaling"
    results: dict = {"tenants": [], "replicas": [], "service": service, "skipped": []}
    per_tenant = len(prov.queues(load_strict(ROOT / "contracts").tenants["zhongyuan-qinling"]))
    budget = broker_budget()
    fit = counts if setting("SCALING_FORCE") == "1" else fitting(counts, budget, per_tenant, len(MEASURED))
    for n in sorted(set(counts) - set(fit)):
        need = handles_needed(n, per_tenant, len(MEASURED))
        results["skipped"].append({"tenants": n, "handles_needed": need, **budget})
        console.print(
            f"[red]{n} tenants skipped: ~{need} more file handles than the broker has free "
            f"({budget['limit']} in all, {budget['queues']} queues and {budget['connections']} connections "
            f"now); a broker started with a higher open-file limit (ulimit -n) takes them[/]"
        )
    counts = fit
    with tempfile.TemporaryDirectory() as tmp:
        tenants = Tenants(max(counts + [1]), Path(tmp))
        sets: list[ServiceSet] = []
        try:
            results["onboard_seconds"], results["onboarded"] = tenants.onboard(), len(tenants.ids)
            console.print(f"{len(tenants.ids)} tenants onboarded in {results['onboard_seconds']:.1f}s")
            sim = tenants.simulator(0, seed=1)
            size = sum(len(p.body) for p in sim.plan(200)) // 200
            with console.status("raw broker ceiling"):
                raw = ceiling(
                    ops.uri(tenants.ids[0]), int(setting("SCALING_RAW_MESSAGES")), size, 4, topology.durable_args()
                )
            results["raw"] = {"messages": raw.messages, "per_second": raw.per_second}
            results["event_bytes"] = size
            console.print(f"raw ceiling: {raw.per_second:,.0f} msg/s")
            for n in counts:
                sets = service_sets(tenants, n, log_dir)
                with console.status(f"starting {n * len(MEASURED)} service processes for {n} tenants"):
                    startup = start_all(sets, timeout)
                idle_rss = sum(rss_bytes(p) for p in processes(sets).values()) / 2**20
                console.print(f"{n} tenants: {n * len(MEASURED)} processes up in {startup:.1f}s, {idle_rss:,.0f} MiB")
                row = drain(tenants, sets, total // n, seed=100 * n, timeout=timeout)
                row.update(tenants=n, startup_seconds=startup, idle_rss_mib=idle_rss)
                results["tenants"].append(row)
                console.print(f"{n} tenants: {row['per_second']:,.0f} events/s")
                stop_all(sets)
                sets = []
            if service == "auto":
                service = busiest(results["tenants"])
                console.print(f"busiest service on the measured path: {service}")
            results["service"] = service
            for k in replica_counts:
                sets = service_sets(tenants, 1, log_dir, replicas={service: k})
                with console.status(f"starting {service} x{k} and the rest of the measured path"):
                    startup = start_all(sets, timeout)
                row = drain(tenants, sets, replica_events, seed=1000 + k, timeout=timeout)
                row.update(
                    replicas=k,
                    service=service,
                    startup_seconds=startup,
                    cpu_percent={**by_service(row.pop("process_cpu_percent")), **row["cpu_percent"]},
                )
                results["replicas"].append(row)
                console.print(f"{service} x{k}: {row['per_second']:,.0f} events/s")
                stop_all(sets)
                sets = []
        finally:
            stop_all(sets)
            tenants.offboard()
    report(results, total, replica_events)
    return 0


def report(results: dict, total: int, replica_events: int) -> None:
    m = machine()
    when, _ = stamp()
    raw = results["raw"]["per_second"]
    smoke = any(
        setting(k) != DEFAULTS[k]
        for k in ("SCALING_TENANTS", "SCALING_EVENTS", "SCALING_REPLICAS", "SCALING_REPLICA_EVENTS")
    )
    cols = [
        "tenants",
        "processes",
        "start-up s",
        "backlog",
        "events/s from start-up",
        "events/s from first work order",
        "per tenant min–max /s",
        "vs raw",
        "RSS MiB (idle → after)",
        "CPU: services, broker, Redis, machine",
    ]
    rows = [
        [
            t["tenants"],
            t["processes"],
            f"{t['startup_seconds']:.1f}",
            f"{t['events']:,}",
            _rate(t),
            f"{t['per_second_after_first']:,.0f}",
            f"{_num(t['tenant_min'])}–{_num(t['tenant_max'])}",
            f"{t['per_second'] / raw:.2f}",
            f"{t['idle_rss_mib']:,.0f} → {t['rss_mib']:,.0f}",
            _cpu(t),
        ]
        for t in results["tenants"]
    ]
    rep_cols = [
        "replicas",
        "processes",
        "start-up s",
        "backlog",
        "events/s from start-up",
        "events/s from first work order",
        "vs raw",
        "RSS MiB",
        "CPU % of a core, first to last work order",
    ]
    rep_rows = [
        [
            f"{r['service']} x{r['replicas']}",
            r["processes"],
            f"{r['startup_seconds']:.1f}",
            f"{r['events']:,}",
            _rate(r),
            f"{r['per_second_after_first']:,.0f}",
            f"{r['per_second'] / raw:.2f}",
            f"{r['rss_mib']:,.0f}",
            ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_percent"].items()),
        ]
        for r in results["replicas"]
    ]
    console.print(table(f"Tenants on one broker (raw ceiling {raw:,.0f} msg/s)", cols, rows))
    console.print(table("Replicas in one tenant", rep_cols, rep_rows))
    save("scaling", {"when": when, "machine": m, "smoke": smoke, **results})
    draw(["scaling"])
    lines = [
        f"Last `python -m bench.scaling`: {when}; {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; RabbitMQ"
        f" {m['rabbitmq']}, Redis {m['redis']}; events of ~{results['event_bytes']} bytes, quorum queues;"
        f" {results['onboarded']} tenants onboarded in {results['onboard_seconds']:.0f}s;"
        f" raw broker ceiling {raw:,.0f} msg/s in the same run."
        + (
            f" **Smoke size** ({', '.join(f'{k}={setting(k)}' for k in DEFAULTS if setting(k) != DEFAULTS[k])};"
            " the defaults are in bench/scaling.py)."
            if smoke
            else ""
        ),
        "",
        f"Tenants: a backlog of {total:,} events spread evenly over the tenants, each tenant with its own intake and"
        " routing processes:",
        "",
        md_table(cols, rows),
        "",
        *[
            f"- **{k['tenants']} tenants: not run**: they need ~{k['handles_needed']:,} of the broker's file handles"
            f" (a queue or a connection each) and it had {k['limit'] - k['queues'] - k['connections']:,} free of"
            f" {k['limit']:,} (its open-file limit less {FD_RESERVE}); over its budget RabbitMQ does not refuse,"
            " it hangs queue declarations and new vhosts for every user. Start it with a higher `ulimit -n`"
            " (scripts/ensure-services.sh does when it starts it)."
            for k in results["skipped"]
        ],
        *([""] if results["skipped"] else []),
        f"Replicas: one tenant, a backlog of {replica_events:,} events, {results['service']} run as that many"
        f" processes (each its own HTTP port) beside one"
        f" {' and one '.join(n for n in MEASURED if n != results['service'])}"
        f" ({results['service']}: the service of the measured path that used the most CPU in the one-tenant run):",
        "",
        md_table(rep_cols, rep_rows),
        "",
        "- **events/s from start-up**: the backlog divided by the time from starting the processes to the last work"
        " order (start-up included, as bench.run's drained backlog); **from first work order**: from the first"
        " work order of any tenant to the last, start-up excluded.",
        "- **per tenant**: each tenant's backlog over its own time from start-up to its last work order.",
        "- **CPU**: percent of one core between the first work order and the last (with many tenants, the"
        " start-up of the later ones overlaps it); the machine's as a percent of all its cores (two), which"
        " includes whatever else ran on the machine meanwhile.",
        "- `case.registered` and `case.dispatched` also land in the scoring and notify queues, which nobody"
        " consumes here (as in bench.run): the broker stores them.",
        "",
        "![Capacity against tenants and replicas](bench/scaling.png)",
    ]
    write_figures(ROOT / "docs" / "benchmarks.md", "\n".join(lines), BEGIN, END)
    console.print("written to docs/benchmarks.md and docs/bench/scaling.json")


def _num(x: float) -> str:
    return f"{x:,.1f}" if x < 10 else f"{x:,.0f}"


def _rate(row: dict) -> str:
    return f"{row['per_second']:,.0f}" if row["ok"] else "did not finish"


def _cpu(row: dict) -> str:
    cpu = row["cpu_percent"]
    if not cpu:
        return "—"
    return (
        f"{sum(row['process_cpu_percent'].values()):.0f}%, {cpu['rabbitmq']:.0f}%, {cpu['redis']:.0f}%,"
        f" {cpu['machine (all cores)']:.0f}% of all"
    )


if __name__ == "__main__":
    raise SystemExit(main())
