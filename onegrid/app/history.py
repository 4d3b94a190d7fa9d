"""The bus's own history: what a county's history streams hold, read through the
HistoryReader port (onegrid.adapters.amqp.history on the broker, a fake in the unit tests).

history.intake holds every accepted event (its `case.registered`, the case as intake
registered it) and every quarantined one (`intake.quarantined`: bytes, headers and reason);
history.lifecycle every case.* and work_order.* event. `entries` reads one in a time window,
once per ce-id (a publish retried after a lost confirm is kept twice); `replay` sends the
accepted events into another county's intake as they first came, so its services process them.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from onegrid.app.ports import HistoryReader, IntakeInbox, Kept
from onegrid.domain.intake import RawEvent
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology

STREAMS = (topology.HISTORY_INTAKE, topology.HISTORY_LIFECYCLE)
ACCEPTED = "case.registered"


@dataclass(frozen=True)
class Window:
    """[since, until) in epoch seconds (the events' own time), and from the stream's `offset`
    on; None: open."""

    since: float | None = None
    until: float | None = None
    offset: int | None = None

    def holds(self, at: float) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


def parse_time(text: str) -> float:
    """An ISO-8601 time (a date alone is its midnight UTC) as epoch seconds."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class Entry:
    """One event of a history stream, decoded."""

    stream: str
    offset: int
    type: str
    id: str
    department: str
    at: float  # the event's ce-time
    data: dict
    headers: dict


def decode(stream: str, kept: Kept) -> Entry | None:
    """The event a kept message carries; None for one that is not a JSON CloudEvent."""
    h = {str(k).lower(): v for k, v in kept.headers.items()}
    try:
        data = json.loads(kept.body)
        at = datetime.fromisoformat(str(h["ce-time"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, ValueError):
        return None
    if not isinstance(data, dict) or not h.get("ce-id"):
        return None
    kind = str(h.get("ce-type") or kept.routing_key)
    return Entry(stream, kept.offset, kind, str(h["ce-id"]), str(h.get("ce-department") or ""), at, data, h)


def entries(reader: HistoryReader, stream: str, window: Window = Window()) -> Iterator[Entry]:
    """`stream`'s events in `window`, oldest first, once per ce-id."""
    seen: set[str] = set()
    for kept in reader.read(stream, window.since, window.offset):
        entry = decode(stream, kept)
        if entry is None or entry.id in seen or not window.holds(entry.at):
            continue
        if window.offset is not None and entry.offset < window.offset:
            continue
        seen.add(entry.id)
        yield entry


def count(reader: HistoryReader, window: Window = Window()) -> Counter:
    """(stream, event type, department) -> events in the window."""
    out: Counter = Counter()
    for stream in STREAMS:
        for entry in entries(reader, stream, window):
            out[(stream, entry.type, entry.department)] += 1
    return out


def on_events_exchange(reader: HistoryReader, since: float | None = None) -> Iterator[Kept]:
    """history.lifecycle as onegrid.events carried it: every copy (a redelivered publish too),
    in order, without the work-order copies of onegrid.workorders (their routing key is a
    department). What scoring (case.#, work_order.#) consumed, to feed a fresh county's
    scoring the same history (bench/chaos.py's score check)."""
    for kept in reader.read(topology.HISTORY_LIFECYCLE, since):
        if kept.routing_key.startswith(("case.", "work_order.")):
            yield kept


def published_heads(reader: HistoryReader, case_id: str, since: float | None = None) -> list[str]:
    """The chain heads (`ce-chainhead`) the bus carried on case `case_id`'s lifecycle events
    kept on history.lifecycle from about epoch `since` on, each once, in the order first seen.
    A case's events name it as their `ce-subject`, a dispatched work order's (on
    onegrid.workorders) its work order, whose id is the case's (onegrid.domain.cases.work_order_id):
    read from the headers alone, no body is parsed. Reads every lifecycle event of the county
    from `since` on (the cost: O(the stream from there))."""
    part_of = f"w-{case_id[2:]}-"
    heads: dict[str, None] = {}
    for kept in reader.read(topology.HISTORY_LIFECYCLE, since):
        h = {str(k).lower(): v for k, v in kept.headers.items()}
        subject, head = str(h.get("ce-subject") or ""), h.get(ce.HEADER_PREFIX + ce.CHAINHEAD)
        if head and (subject == case_id or subject.startswith(part_of)):
            heads.setdefault(str(head), None)
    return list(heads)


# -- the events intake took, as they came -----------------------------------------------------
def accepted_event(case: dict, tenant_id: str) -> RawEvent:
    """The department event a registered case came from, as a structured CloudEvent addressed
    to `tenant_id`: the same id, source, type, version and data, so intake there makes the
    same case (the case id is a hash of department, source and id)."""
    env = ce.Envelope(
        id=case["event_id"],
        source=case["source"],
        type=case["event_type"],
        tenant=tenant_id,
        department=case["department"],
        dataschema=ce.dataschema(case["event_type"], int(case["version"])),
        time=case.get("received_at"),
    )
    body = json.dumps(env.structured(case["data"]), ensure_ascii=False).encode()
    return RawEvent(body, {}, ce.STRUCTURED, case["event_type"], str(case.get("transport") or "amqp"))


def quarantined_event(record: dict) -> RawEvent:
    """The event intake quarantined, bytes and headers as it got them."""
    return RawEvent(
        base64.b64decode(record.get("body_base64") or ""),
        dict(record.get("headers") or {}),
        record.get("content_type"),
        record.get("routing_key"),
        str(record.get("transport") or "amqp"),
    )


@dataclass
class Replayed:
    accepted: int = 0  # sent into the scratch county's intake
    quarantined: int = 0  # in the window, not sent (intake would refuse them again)
    skipped: int = 0  # accepted, but of a department the scratch county has not enabled


def replay(
    reader: HistoryReader,
    window: Window,
    inbox: IntakeInbox,
    tenant_id: str,
    departments: tuple[str, ...],
    progress: Callable[[Replayed], None] | None = None,
) -> Replayed:
    """Send every event accepted in `window` into county `tenant_id`'s intake, oldest first."""
    done = Replayed()
    for entry in entries(reader, topology.HISTORY_INTAKE, window):
        if entry.type == topology.QUARANTINED:
            done.quarantined += 1
        elif entry.type == ACCEPTED:
            if entry.data.get("department") not in departments:
                done.skipped += 1
            else:
                inbox.send(accepted_event(entry.data, tenant_id), entry.data["department"])
                done.accepted += 1
        if progress is not None:
            progress(done)
    return done
