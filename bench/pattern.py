"""The bus's share of an event: OneGrid's message pattern and nothing else, drained like the
real pipeline, in the same run (part of `make bench`'s throughput part; BENCH_PATTERN=0 skips).

Two stand-in processes do on the bus exactly what intake and routing do, and only that: consume
their queue in batches (BATCH_SIZE messages or BATCH_WAIT_MS, prefetch two batches), publish for
each event the messages the real service publishes for it — bodies and headers captured from the
real services' messages earlier in the same run, each event's id put in — through OneGrid's own
`Bus.publish_many` (one wait for the batch's confirms), then one `multiple` ack. No Redis, no
contract, no routing table, no eventlet or nameko. The broker, its queues and bindings are the
tenant's own, so every message fans out to the same queues (counted from the management API for
both runs). Its drained rate is what the broker and the AMQP client allow OneGrid's pattern on
this machine: the ceiling the services' own work comes on top of.

`python -m bench.pattern stage <intake|routing> <amqp uri> <templates.json>` runs one stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kombu import Connection, Queue

from onegrid.adapters.amqp.bus import Bus, Outgoing
from onegrid.adapters.amqp.management import Management
from onegrid.adapters.nameko.batch import DEFAULT_SIZE, DEFAULT_WAIT_MS, PREFETCH_BATCHES
from onegrid.kernel import settings
from onegrid.kernel import topology as names

ROOT = Path(__file__).resolve().parent.parent
# what each stand-in consumes, and the messages the real service publishes per event it takes
STAGES = {
    "intake": ("intake.events", ("case.registered", "receipt")),
    "routing": ("routing.case-registered", ("work_order.dispatched", "case.dispatched")),
}


@dataclass(frozen=True)
class Template:
    """One real message: its body with `event_id` where the event's id goes, and where it went."""

    body: bytes
    headers: dict
    exchange: str
    routing_key: str
    event_id: str

    def for_event(self, event_id: str) -> Outgoing:
        body = self.body.replace(self.event_id.encode(), event_id.encode())
        headers = {k: v.replace(self.event_id, event_id) if isinstance(v, str) else v for k, v in self.headers.items()}
        return Outgoing(body, headers, "application/json", self.exchange, self.routing_key, True)

    def as_json(self) -> dict:
        return {
            "body": self.body.decode(),
            "headers": self.headers,
            "exchange": self.exchange,
            "routing_key": self.routing_key,
            "event_id": self.event_id,
        }

    @classmethod
    def of_json(cls, d: dict) -> Template:
        return cls(d["body"].encode(), d["headers"], d["exchange"], d["routing_key"], d["event_id"])


def event_id_in(body: bytes) -> str:
    """The department's event id a case, work order or receipt carries (`"event_id":"…"`)."""
    marker = b'"event_id":"'
    start = body.index(marker) + len(marker)
    return body[start : body.index(b'"', start)].decode()


def capture(uri: str, tenant) -> dict[str, Template]:
    """A real message of each kind the pattern needs, from the queues the benchmark leaves
    unconsumed (notify's copy of the case events, a department's receipts); the work order is
    the one case.dispatched carries, with its own headers, as routing publishes it. No receipt
    when the run's events came as no department (the benchmark publishes as the tenant's
    services' user): intake tells only a department the broker authenticated."""
    found: dict[str, Template] = {}
    with Connection(uri) as conn:
        channel = conn.channel()
        for _ in range(5000):
            message = channel.basic_get("notify.case-events", no_ack=True)
            if message is None:
                break
            kind = message.headers.get("ce-type")
            if kind in ("case.registered", "case.dispatched") and kind not in found:
                found[kind] = Template(
                    bytes(message.body), dict(message.headers), names.EVENTS, kind, event_id_in(bytes(message.body))
                )
            if len(found) == 2:
                break
        for department in tenant.departments:
            message = channel.basic_get(names.receipt_queue(department), no_ack=True)
            if message is not None:
                body = bytes(message.body)
                found["receipt"] = Template(body, dict(message.headers), names.RECEIPTS, department, event_id_in(body))
                break
    dispatched = found["case.dispatched"]
    wo = json.loads(dispatched.body)["work_orders"][0]
    headers = {**dispatched.headers, "ce-type": "work_order.dispatched", "ce-subject": wo["id"]}
    body = json.dumps(wo, ensure_ascii=False, separators=(",", ":")).encode()
    found["work_order.dispatched"] = Template(body, headers, names.WORKORDERS, wo["department"], wo["event_id"])
    return found


def stage(role: str, uri: str, templates_path: str) -> int:
    """One stand-in: consume in batches, publish the pattern's messages per event, ack the batch."""
    queue_name, kinds = STAGES[role]
    templates = {k: Template.of_json(v) for k, v in json.loads(Path(templates_path).read_text()).items()}
    size, wait = DEFAULT_SIZE, DEFAULT_WAIT_MS / 1000
    bus = Bus(uri)
    pending: list = []
    first = [0.0]

    def on_message(message) -> None:
        if not pending:
            first[0] = time.monotonic()
        pending.append(message)

    def flush() -> None:
        items = []
        for m in pending:
            event_id = m.headers["ce-id"] if role == "intake" else event_id_in(bytes(m.body))
            items += [templates[k].for_event(event_id) for k in kinds if k in templates]
        bus.publish_many(items)
        pending[-1].ack(multiple=True)
        pending.clear()

    with Connection(uri, heartbeat=0) as conn:
        channel = conn.channel()
        channel.basic_qos(0, size * PREFETCH_BATCHES, False)
        queue = Queue(queue_name, no_declare=True)
        with conn.Consumer([queue], channel=channel, on_message=on_message, no_ack=False):
            while True:
                try:
                    conn.drain_events(timeout=wait)
                except TimeoutError:
                    pass
                if pending and (len(pending) >= size or time.monotonic() - first[0] >= wait):
                    flush()


class StandIns:
    """The two stand-ins as processes, started and stopped as a ServiceSet is."""

    def __init__(self, uri: str, templates: dict[str, Template]):
        self.uri = uri
        self.dir = tempfile.TemporaryDirectory()
        self.path = Path(self.dir.name) / "templates.json"
        self.path.write_text(json.dumps({k: t.as_json() for k, t in templates.items()}))
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, "-m", "bench.pattern", "stage", role, self.uri, str(self.path)], cwd=ROOT)
            for role in STAGES
        ]
        time.sleep(1.0)
        dead = [p.args[4] for p in self.procs if p.poll() is not None]
        if dead:
            self.stop()
            raise RuntimeError(f"the {' and '.join(dead)} stand-in exited at start (its error is above)")

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(20)
        self.procs = []


def enqueued(tenant_id: str) -> dict[str, int]:
    """Messages each of the tenant's queues has taken so far (its message_stats.publish)."""
    queues = Management(settings.management_url()).queues(tenant_id)
    return {q["name"]: (q.get("message_stats") or {}).get("publish", 0) for q in queues}


def fan_out(tenant_id: str, measured: Callable[[], object], events: int) -> tuple[object, float]:
    """Run `measured`, and the queue writes it made per event (management stats settle in ~5 s)."""
    time.sleep(6)
    before = enqueued(tenant_id)
    result = measured()
    time.sleep(6)
    after = enqueued(tenant_id)
    return result, sum(after.get(q, 0) - before.get(q, 0) for q in after) / events


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "stage":
        return stage(argv[1], argv[2], argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
