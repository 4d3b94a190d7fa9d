"""`make chaos`: faults during a run of at least 10,000 events, then a reconciliation.

While the simulated county publishes and its departments, grid workers and citizens work,
every service is killed with SIGKILL once and restarted, RabbitMQ is restarted, and Redis
(a private one with append-only persistence, so a restart keeps what was acknowledged) is
restarted. Afterwards every published event must be exactly one case (or a merge into the
case it duplicates) or one quarantine entry; no case twice; no deadline fired twice.
Prints the reconciliation and exits non-zero on any discrepancy.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import redis

from bench.run import write_figures
from onegrid import ops
from onegrid.accounting import gather
from onegrid.actors import Actors
from onegrid.notify_receiver import WebhookReceiver
from onegrid.contracts import load_strict
from onegrid.reconcile import reconcile
from onegrid.runner import ServiceSet
from onegrid.simulator import Simulator
from onegrid.ui import console, table

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("CHAOS_EVENTS", "10000"))
CHAOS_BEGIN, CHAOS_END = "<!-- chaos: written by make chaos -->", "<!-- end of chaos -->"
RATE = float(os.environ.get("CHAOS_RATE", "150"))


class PrivateRedis:
    def __init__(self, workdir: Path, port: int = 6390):
        self.port, self.dir = port, workdir

    def start(self) -> None:
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
                        "--appendfsync", "everysec", "--save", "", "--dir", str(self.dir), "--daemonize", "yes",
                        "--logfile", str(self.dir / "redis.log")], check=True)
        _wait(lambda: redis.Redis(port=self.port).ping(), "private redis")

    def restart(self) -> None:
        redis.Redis(port=self.port).shutdown(nosave=False)  # SHUTDOWN flushes the append-only file
        time.sleep(0.5)
        self.start()

    def stop(self) -> None:
        try:
            redis.Redis(port=self.port).shutdown(nosave=True)
        except redis.ConnectionError:
            pass


def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True)


def _wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - still coming up
            pass
        time.sleep(0.2)
    raise TimeoutError(what)


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
        ops.onboard(tenant, reset=True)
        uri = ops.uri(tenant_id)
        secret = secrets.token_hex(16)
        receiver = WebhookReceiver(secret.encode()).start()
        services = ServiceSet(tenant_id, uri, log_dir=ROOT / "run",
                              env={"CONTRACTS_DIR": str(contracts), "ONEGRID_TIME_SCALE": "3600",
                                   "REDIS_URL": os.environ["REDIS_URL"], "ONEGRID_WEBHOOK_SECRET": secret,
                                   "NOTIFY_WEBHOOK_URL": receiver.url})
        log: list = []
        try:
            services.start()
            actors = Actors(uri, services.url("departments"), services.url("supervision"), tenant.departments).start()
            sim = Simulator(tenant, uri, registry=registry, seed=7)
            planned = sim.plan(EVENTS, bad_every=50, duplicate_every=40)
            chaos = threading.Thread(target=faults, args=(services, private, log, EVENTS / RATE), daemon=True)
            chaos.start()
            with console.status(f"publishing {EVENTS} events at {RATE:.0f}/s through the faults"):
                sent = sim.publish(planned, rate=RATE)
            chaos.join()
            store = ops.store(tenant_id)
            with console.status("waiting for the county to settle"):
                _wait(lambda: _settled(store, len(planned)), "every event processed", timeout=300)
            actors.close()
            return report(planned, sent, store, log)
        finally:
            services.stop()
            receiver.close()
            ops.offboard(tenant_id, delete_data=True, force=True)  # its users, vhost and keys
            private.stop()


def _settled(store, n: int) -> bool:
    s = store.stats()
    return s.get("cases_dispatched", 0) + s.get("merged", 0) + s.get("quarantined", 0) >= n


def report(planned, sent, store, log) -> int:
    case_of, reason_of = gather(store, planned)
    ids = Counter()
    rec = reconcile(planned, case_of, reason_of)
    stats = store.stats()
    for case in case_of.values():
        ids[case["event_id"]] += 1
    twice = 0
    for case in case_of.values():
        fired = Counter((s.get("work_order"), s.get("note"), s.get("to_state"), s.get("at")[:19])
                        for s in store.timeline(case["id"]) if s["action"] == "supervise")
        twice += sum(n - 1 for n in fired.values() if n > 1)
    problems = list(rec.problems)
    if stats.get("cases", 0) != len(case_of):
        problems.append(f"{stats.get('cases', 0)} cases in the store for {len(case_of)} events that made one")
    if twice:
        problems.append(f"{twice} deadline firings recorded twice")
    rows = [[len(planned), stats.get("cases", 0), stats.get("merged", 0), stats.get("quarantined", 0),
             f"{rec.cases_found + sum(rec.quarantine_found.values())}/{len(planned)}",
             sum(n - 1 for n in ids.values() if n > 1), twice, stats.get("supervisions", 0), len(problems)]]
    cols = ["published", "cases", "merged", "quarantined", "accounted for", "cases twice", "timers fired twice",
            "supervisions", "discrepancies"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    write_figures(ROOT / "docs" / "benchmarks.md", "\n".join([
        f"Last `make chaos`: {when}, commit {commit or 'uncommitted'}, {EVENTS} events at {RATE:.0f}/s.", "",
        "| fault | took |", "|---|---|", *[f"| {a} | {b} |" for a, b in log], "",
        "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
        *["| " + " | ".join(str(c) for c in row) + " |" for row in rows]]), CHAOS_BEGIN, CHAOS_END)
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
