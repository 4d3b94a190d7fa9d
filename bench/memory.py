"""Redis memory per case: cases registered and dispatched through the services' own code
(intake's `ingest`, routing's `on_case_registered`, and for closed cases the departments'
and supervision's actions, each announcing from the outbox) on a private redis-server, so the
figure holds nothing but this county's keys. The services run in this process with their
nameko dependencies replaced by the same adapters (Store, Casework) and a bus that drops
what it is given; every Redis write is the one a running service makes.

Measured at each size in MEMORY_CASES (cumulative: the first size is a prefix of the next,
to show linearity) as used_memory after minus before, and by key family: MEMORY USAGE of up
to MEMORY_SAMPLE keys of each family (every key of a smaller family), times the family's
key count. Then the first MEMORY_CLOSED of the same cases again, on an empty Redis, each
taken through its whole lifecycle to closed (fixed): every work order accepted and resolved,
the case verified and the citizen satisfied; then the same closed cases folded into their
archived form (onegrid.adapters.redis.archive), measured from the same baseline.

Env: MEMORY_CASES (default 10000,100000), MEMORY_CLOSED (10000; 0 skips), MEMORY_SAMPLE (1000).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from bench.plot import draw, save
from bench.redis_private import PrivateRedis
from bench.run import ROOT, host, md_table, stamp, write_figures
from onegrid.adapters.geo import locator_for
from onegrid.adapters.nameko.reliable import Inbound
from onegrid.adapters.redis.casework import Casework
from onegrid.adapters.redis.registry import Published
from onegrid.adapters.redis.store import Store
from onegrid.app.registry import load_strict
from onegrid.cli.ui import console, table
from onegrid.domain.intake import RawEvent
from onegrid.domain.supervision import policy
from sim.simulator import Simulator

TENANT = "zhongyuan-qinling"  # the real manifest and id (the key prefix is part of every key's size)
DEFAULTS = {"MEMORY_CASES": "10000,100000", "MEMORY_CLOSED": "10000", "MEMORY_SAMPLE": "1000"}
BEGIN, END = "<!-- memory: written by python -m bench.memory -->", "<!-- end of memory -->"
CHUNK = 2_000
# key segments that name a kind of key rather than one case, department, grid or status
LITERALS = frozenset({"timeline", "work_orders", "queue", "due", "inflight", "seen", "query"})


def family(key: str, prefix: str) -> str:
    """The family of a key: its segments after the tenant prefix, each that names one thing
    (a case, a work order, a department, a status...) replaced by `*`:
    og:{t}:case:c-1:timeline -> case:*:timeline, og:{t}:idx:status:dispatched -> idx:status:*."""
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    head, *tail = rest.split(":")
    if head == "idx" and tail:  # idx:<kind>:<value>
        return f"idx:{tail[0]}:*"
    return ":".join([head, *(part if part in LITERALS else "*" for part in tail)])


def setting(name: str) -> str:
    return os.environ.get(name, DEFAULTS[name])


def env_sizes() -> tuple[list[int], int, int]:
    return (
        sorted(int(n) for n in setting("MEMORY_CASES").split(",")),
        int(setting("MEMORY_CLOSED")),
        int(setting("MEMORY_SAMPLE")),
    )


warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")  # the services import nameko


class NullBus:
    """Takes what a service publishes and keeps only the last case announced (routing's input)."""

    def __init__(self):
        self.registered: tuple | None = None

    def publish(self, env, data, exchange=None, routing_key=None, mandatory=True) -> None:
        if env.type == "case.registered":
            self.registered = (env, data)

    def deferred(self) -> NullBus:  # a batch handler's publisher (Bus.deferred): nothing to flush here
        return self

    def flush(self) -> int:
        return 0


class County:
    """Intake, routing, departments and supervision in this process, on `store`."""

    def __init__(self, tenant, registry, store: Store):
        from services.departments.service import DepartmentsService
        from services.intake.service import IntakeService
        from services.routing.service import RoutingService
        from services.supervision.service import SupervisionService

        self.bus, self.store = NullBus(), store
        ctx = SimpleNamespace(tenant=tenant, registry=registry, locator=locator_for(tenant.geography))
        work = Casework(store, tenant, policy(tenant), 1.0)
        self.intake, self.routing = IntakeService(), RoutingService()
        self.departments, self.supervision = DepartmentsService(), SupervisionService()
        for svc in (self.intake, self.routing, self.departments, self.supervision):
            svc.ctx, svc.store, svc.work, svc.bus = ctx, store, work, self.bus
        self.intake.usage = Published(store.r, tenant.id)  # what intake counts per contract version

    def register(self, planned) -> list[str]:
        """Each event as intake takes it off `intake.events`, then as routing takes its
        `case.registered`; the ids of the cases made."""
        ids = []
        for p in planned:
            self.bus.registered = None
            out = self.intake.ingest(RawEvent(p.body, p.headers, p.content_type, p.routing_key, "amqp"))
            if out.outcome != "registered" or self.bus.registered is None:
                raise RuntimeError(f"event {p.event_id} was not registered: {out}")
            env, case = self.bus.registered
            body = json.dumps(case, ensure_ascii=False, separators=(",", ":")).encode()
            self.routing.on_case_registered([Inbound(body, env.headers(), "application/json", env.type, False, None)])
            ids.append(out.case_id)
        return ids

    def close(self, case_id: str) -> bool:
        """Take a dispatched case to closed (fixed) the way departments and a grid worker and
        the citizen do; False for a case routing merged into another."""
        if self.store.case(case_id)["status"] != "dispatched":
            return False
        for wo in self.store.work_orders_of(case_id):
            actor = {"actor": f"{wo['department']}-duty"}
            self.departments._act(wo["department"], wo["id"], "accept", actor)
            self.departments._act(
                wo["department"], wo["id"], "resolve", {**actor, "note": "已现场处置", "evidence_urls": [EVIDENCE]}
            )
        self.supervision.act(case_id, "verify", "grid-worker", "现场复核", [EVIDENCE])
        self.supervision.act(case_id, "satisfied", "citizen", "满意")
        return True


EVIDENCE = "https://evidence.onegrid.invalid/site-photo.jpg"


def measure(store: Store, sample: int, seed: int = 1) -> dict:
    """Every key's family by SCAN; MEMORY USAGE over a uniform sample of each family."""
    rng = random.Random(seed)
    counts: Counter = Counter()
    picked: dict[str, list[bytes]] = {}
    for key in store.r.scan_iter(count=2000):
        fam = family(key.decode(), store.prefix)
        counts[fam] += 1
        keep = picked.setdefault(fam, [])
        if len(keep) < sample:  # reservoir sampling: each key of the family equally likely
            keep.append(key)
        elif (j := rng.randrange(counts[fam])) < sample:
            keep[j] = key
    families = {}
    for fam, keys in picked.items():
        pipe = store.r.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        sizes = [s or 0 for s in pipe.execute()]
        per_key = sum(sizes) / len(sizes)
        families[fam] = {"keys": counts[fam], "bytes_per_key": per_key, "bytes": per_key * counts[fam]}
    return families


def snapshot(store: Store, label: str, state: str, cases: int, baseline: int, sample: int, took: float) -> dict:
    used = store.r.info("memory")["used_memory"]
    stats = store.stats()
    with console.status(f"{label}: MEMORY USAGE by key family"):
        families = measure(store, sample)
    return {
        "label": label,
        "state": state,
        "cases": cases,
        "used_memory_before": baseline,
        "used_memory_after": used,
        "bytes_per_case": (used - baseline) / cases,
        "keys": store.r.dbsize(),
        "work_orders": stats.get("work_orders", 0),
        "merged": stats.get("merged", 0),
        "timers": store.timers.pending(),
        "seconds": took,
        "families": families,
    }


def planned_in_chunks(sim: Simulator, n: int):
    while n > 0:
        yield sim.plan(min(CHUNK, n))
        n -= CHUNK


def run_open(county: County, tenant, registry, sizes: list[int], sample: int, baseline: int) -> list[dict]:
    sim = Simulator(tenant, "amqp://unused", registry=registry, seed=2026, run_id="memory")
    out, done, started = [], 0, time.perf_counter()
    with console.status("registering") as status:
        for target in sizes:
            for chunk in planned_in_chunks(sim, target - done):
                done += len(county.register(chunk))
                status.update(f"registered and dispatched {done:,} of {sizes[-1]:,} cases")
            out.append(
                snapshot(
                    county.store, f"{target:,} open", "open", target, baseline, sample, time.perf_counter() - started
                )
            )
            console.print(f"{target:,} open cases: {out[-1]['bytes_per_case']:,.0f} bytes each")
    return out


def run_closed(county: County, tenant, registry, n: int, sample: int, baseline: int) -> dict:
    sim = Simulator(tenant, "amqp://unused", registry=registry, seed=2026, run_id="memory")  # the same cases
    closed, done, started = 0, 0, time.perf_counter()
    with console.status("closing") as status:
        for chunk in planned_in_chunks(sim, n):
            for cid in county.register(chunk):
                closed += county.close(cid)
                done += 1
                if done % 200 == 0:
                    status.update(f"registered and closed {done:,} of {n:,} cases")
    snap = snapshot(county.store, f"{n:,} closed", "closed", n, baseline, sample, time.perf_counter() - started)
    snap["closed"] = closed
    console.print(
        f"{n:,} cases taken to closed ({closed:,}; the rest merged): {snap['bytes_per_case']:,.0f} bytes each"
    )
    return snap


def run_archived(county: County, n: int, sample: int, baseline: int) -> dict:
    """The closed cases folded into the archive, as supervision does once they are past
    ONEGRID_ARCHIVE_AFTER_S (here at once: `onegrid archive --all`); same baseline as closed."""
    started = time.perf_counter()
    with console.status("archiving"):
        counts = county.store.archive_all_closed()
    snap = snapshot(
        county.store, f"{n:,} closed, archived", "archived", n, baseline, sample, time.perf_counter() - started
    )
    snap["archived"] = counts.get("archived", 0)
    console.print(f"{n:,} cases archived ({counts}): {snap['bytes_per_case']:,.0f} bytes each")
    return snap


def main() -> int:
    if not shutil.which("redis-server"):
        console.print("[red]bench.memory needs redis-server on this machine[/]")
        return 2
    sizes, closed_n, sample = env_sizes()
    registry = load_strict(ROOT / "contracts")
    tenant = registry.tenants[TENANT]
    runs = []
    with tempfile.TemporaryDirectory() as tmp, PrivateRedis(Path(tmp), port=None, appendonly=False) as private:
        store = Store(private.client(), TENANT)
        county = County(tenant, registry, store)
        version = store.r.info("server")["redis_version"]
        baseline = store.r.info("memory")["used_memory"]
        runs += run_open(county, tenant, registry, sizes, sample, baseline)
        if closed_n:
            store.r.flushall()
            baseline = store.r.info("memory")["used_memory"]
            runs.append(run_closed(county, tenant, registry, closed_n, sample, baseline))
            runs.append(run_archived(county, closed_n, sample, baseline))
    report(runs, {**host(), "redis": version}, sizes, closed_n, sample)
    return 0


def report(runs: list[dict], machine: dict, sizes: list[int], closed_n: int, sample: int) -> None:
    when, _ = stamp()
    smoke = (",".join(map(str, sizes)), str(closed_n)) != (DEFAULTS["MEMORY_CASES"], DEFAULTS["MEMORY_CLOSED"])
    cols = [
        "run",
        "cases",
        "work orders",
        "timers",
        "keys",
        "used before MiB",
        "used after MiB",
        "bytes per case",
        "sum of families per case",
    ]
    rows = [
        [
            r["label"],
            f"{r['cases']:,}",
            f"{r['work_orders']:,}",
            f"{r['timers']:,}",
            f"{r['keys']:,}",
            f"{r['used_memory_before'] / 2**20:.1f}",
            f"{r['used_memory_after'] / 2**20:.1f}",
            f"{r['bytes_per_case']:,.0f}",
            f"{sum(f['bytes'] for f in r['families'].values()) / r['cases']:,.0f}",
        ]
        for r in runs
    ]
    fams = sorted(
        {f for r in runs for f in r["families"]},
        key=lambda f: -max(r["families"].get(f, {}).get("bytes", 0) / r["cases"] for r in runs),
    )
    fam_cols = ["key family", *(f"{r['label']}: keys/case, bytes/key, bytes/case" for r in runs)]
    fam_rows = [[f"`{f}`", *(_cell(r, f) for r in runs)] for f in fams]
    console.print(table("Redis memory per case", cols, rows))
    console.print(table("By key family (MEMORY USAGE, sampled)", fam_cols, fam_rows))
    save("memory", {"when": when, "machine": machine, "sample": sample, "smoke": smoke, "runs": runs})
    draw(["memory"])
    lines = [
        f"Last `python -m bench.memory`: {when}; Redis {machine['redis']} (a private redis-server, empty but for this"
        f" county), {machine['cpu']}."
        + (
            f" **Smoke size** (MEMORY_CASES={','.join(map(str, sizes))}, MEMORY_CLOSED={closed_n}; the defaults are"
            f" {DEFAULTS['MEMORY_CASES']} and {DEFAULTS['MEMORY_CLOSED']})."
            if smoke
            else ""
        ),
        "",
        md_table(cols, rows),
        "",
        "By key family: keys per case, mean MEMORY USAGE per key (a sample of up to"
        f" {sample:,} keys of each family), bytes per case:",
        "",
        md_table(fam_cols, fam_rows),
        "",
        "- **bytes per case**: used_memory after minus before, divided by the cases; it includes what MEMORY USAGE"
        " does not see (the keyspace's hash tables, the scripts), hence more than the sum of the families.",
        "- **open**: registered by intake and dispatched by routing (work orders, two deadline timers each, the"
        " indexes); **closed**: the same cases taken on to closed (fixed) by the departments, a grid worker and"
        " the citizen, every lifecycle event announced through the outbox; **closed, archived**: the same closed"
        " cases folded into their archived form (`onegrid archive --all`, what supervision does a week after a case"
        " closed), from the same baseline.",
        "- Not counted: scoring's and notify's keys (points, assessments, parked notifications).",
        "",
        "![Redis memory per case](bench/memory.png)",
    ]
    write_figures(ROOT / "docs" / "benchmarks.md", "\n".join(lines), BEGIN, END)
    console.print("written to docs/benchmarks.md and docs/bench/memory.json")


def _cell(run: dict, fam: str) -> str:
    f = run["families"].get(fam)
    if not f:
        return "—"
    keys = f"{f['keys'] / run['cases']:.2f}" if f["keys"] * 100 >= run["cases"] else f"{f['keys']:,} in all"
    return f"{keys}, {f['bytes_per_key']:,.0f}, {f['bytes'] / run['cases']:,.0f}"


if __name__ == "__main__":
    raise SystemExit(main())
