"""The ports: what the use cases need from the world, as the smallest typed interfaces.

The adapters implement them (onegrid.adapters.redis.store.Store is a CaseStore,
onegrid.adapters.amqp.bus.Bus a Publisher, onegrid.adapters.redis.casework.Casework a Casework;
onegrid.adapters.nameko.providers wraps the outbox announcer and the clock); unit tests hand
the use cases in-memory fakes. Structural (typing.Protocol): no adapter imports this module,
so the layers point one way, down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from onegrid.contracts import Overlay
from onegrid.domain import notify as nd
from onegrid.domain import scoring as sc
from onegrid.domain.casework import Closure
from onegrid.domain.duplicates import Candidates, Suggestion
from onegrid.domain.intake import RawEvent
from onegrid.domain.replies import Question
from onegrid.domain.routing import Decision, Dispatch
from onegrid.domain.supervision import Policy
from onegrid.domain.versions import Use
from onegrid.kernel.envelope import Envelope


class Clock(Protocol):
    """onegrid.kernel.clock.SystemClock in the services; a fake in the unit tests."""

    def now(self) -> float:
        """Epoch seconds: deadlines and due times."""
        ...

    def now_iso(self) -> str:
        """UTC ISO-8601 with milliseconds and `Z`: what records and timelines say."""
        ...


class GridLocator(Protocol):
    """The county's grid boundaries as a spatial index (onegrid.adapters.geo.ShapelyLocator);
    onegrid.domain.geo decides what the answer means."""

    def covering(self, lon: float, lat: float) -> list[str]:
        """The codes of the grids whose boundary covers the point (in the boundaries' CRS)."""
        ...


class CaseStore(Protocol):
    """One tenant's cases, work orders and quarantine. The writes are all-or-nothing and
    idempotent on the record's identity (a redelivery lands on the same records)."""

    def register_case(self, case: dict, dedup_key: str) -> tuple[bool, str, str, str]:
        """(created, case id, digest on record, status on record)."""
        ...

    def register_cases(self, cases: list[tuple[dict, str]]) -> list[tuple[bool, str, str, str]]:
        """register_case for each (case, dedup key), in order, in one call (a batch): a later
        one with an earlier one's dedup key finds the case the earlier one made."""
        ...

    def case(self, case_id: str) -> dict | None: ...

    def cases(self, case_ids: list[str]) -> list[dict]:
        """`case` for each id that exists, in order, read together (one round trip)."""
        ...

    def timeline(self, case_id: str) -> list[dict]: ...

    def recent(self, category: str, since: float, until: float) -> list[dict]:
        """Cases of a category that occurred in [since, until]: duplicate candidates."""
        ...

    def dispatch(
        self, case: dict, decision: Decision, work_orders: list[dict], at: str, arrival: float | None = None
    ) -> tuple[list[str], str | None]:
        """Record the work orders not yet recorded and mark a registered case dispatched at
        the decision's level: (the ids of those it recorded, the timeline's chain head after).
        `arrival`: the grid worker's on-site arrival deadline, armed in the same write when
        this is the case's first dispatch (once per case: a redelivery keeps the first)."""
        ...

    def dispatch_many(self, dispatches: list[Dispatch]) -> list[tuple[list[str], str | None]]:
        """`dispatch` for each (of different cases), in one call where nothing wrote their
        cases since they were read (a batch)."""
        ...

    def work_order(self, wo_id: str) -> dict | None: ...

    def work_orders_of(self, case_id: str) -> list[dict]: ...

    def department_queue(self, department: str, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        """(how many in the queue, one page of them)."""
        ...

    def quarantine(
        self,
        body: bytes,
        headers: dict,
        content_type: str | None,
        routing_key: str | None,
        transport: str,
        reason: str,
        detail: str,
        department: str,
    ) -> tuple[bool, str]:
        """(created, entry id): the same bytes and headers twice are one entry."""
        ...

    def record_receipt(self, department: str, event_id: str, receipt: dict) -> None:
        """Keep the latest receipt of a department's event (what `GET /events/<id>` answers)."""
        ...

    def receipt(self, department: str, event_id: str) -> dict | None: ...

    def quarantined_from(self, who: str, count: int = 100, start: str = "-") -> list[dict]:
        """The quarantine entries the principal `who` sent, oldest first, from `start`."""
        ...


class Publisher(Protocol):
    """Publishing on the tenant's bus with publisher confirms; `mandatory` makes "no queue
    bound" an error. The routing key defaults to the envelope's type."""

    def publish(
        self,
        env: Envelope,
        data: Any,
        exchange: str = ...,  # a name from onegrid.kernel.topology; the platform events' by default
        routing_key: str | None = None,
        mandatory: bool = True,
    ) -> None: ...


class Outbox(Protocol):
    """Publishes the lifecycle events casework wrote in the same transaction as its change,
    as the service it is given to (the events' `source`)."""

    def announce(self, event_ids: list[str]) -> int:
        """Publish those still in the outbox and remove them; how many it published."""
        ...

    def sweep(self) -> int:
        """Publishes what an announcer that died left behind."""
        ...


class Changes(Protocol):
    """What a casework transition did (onegrid.adapters.redis.casework.Outcome)."""

    @property
    def case(self) -> dict: ...

    @property
    def events(self) -> list[tuple[str, dict]]: ...

    @property
    def work_order(self) -> dict | None: ...

    @property
    def outbox(self) -> list[str]:
        """The ids of the events written to the outbox, to announce."""
        ...

    @property
    def closure(self) -> Closure | None:
        """The case this transition closed, for the figures; None when it closed none."""
        ...


class Casework(Protocol):
    """The case lifecycle's transitions, each all-or-nothing with its outbox; they raise
    onegrid.domain.lifecycle.TransitionRefused for what the state does not allow and
    LookupError for an unknown case or work order."""

    @property
    def policy(self) -> Policy: ...

    def department_act(
        self,
        wo_id: str,
        department: str,
        action: str,
        actor: str,
        note: str = "",
        evidence: list[str] | None = None,
        extension: float | None = None,
    ) -> Changes: ...

    def extension(
        self, wo_id: str, grant: bool, actor: str, seconds: float | None = None, note: str = ""
    ) -> Changes: ...

    def overdue(self, kind: str, wo_id: str, due: float) -> Changes | None: ...

    def office_due(self, item_id: str, due: float) -> Changes | None: ...

    def arrival_due(self, case_id: str, due: float) -> Changes | None: ...

    def check_in(self, case_id: str, actor: str, lat: float, lon: float, note: str = "") -> Changes: ...

    def office_acknowledge(self, item_id: str, actor: str, note: str = "") -> Changes: ...

    def office_act(
        self,
        item_id: str,
        actor: str,
        action: str,
        note: str = "",
        departments: list[str] | None = None,
        wo_id: str | None = None,
    ) -> Changes: ...

    def whistle(self, case_id: str, actor: str, to_level: str | None, departments: list[str], note: str) -> Changes: ...

    def case_act(
        self, case_id: str, action: str, actor: str, note: str = "", evidence: list[str] | None = None
    ) -> Changes: ...

    def attach_evidence(self, case_id: str, actor: str, evidence: dict, note: str = "") -> Changes: ...

    def settle_on_site(self, case_id: str, sampled: bool, actor: str = ...) -> Changes: ...

    def merge(self, case_id: str, primary_id: str, actor: str = ..., note: str = ...) -> Changes: ...

    def unmerge(self, case_id: str, actor: str, note: str = "") -> Changes: ...


class DuplicateBook(Protocol):
    """Duplicate suggestions for the command centre, and the pairs people said are distinct
    (onegrid.adapters.redis.duplicates.DuplicateBook)."""

    def suggest(self, s: Suggestion, score: float) -> bool:
        """Record once; False when it was there already."""
        ...

    def suggestion(self, case_id: str) -> Suggestion | None: ...

    def decide(self, s: Suggestion) -> bool:
        """Record the decision on an open suggestion; False when one was recorded already."""
        ...

    def mark_distinct(self, a: str, b: str) -> None: ...

    def distinct(self, pairs: list[str]) -> set[str]: ...

    def recent_ids(self, windows: list[tuple[str, float, float]]) -> list[list[str]]:
        """For each (category, since, until): the ids of the cases of the category that
        occurred in it, read together (one round trip)."""
        ...

    def candidates(
        self, case_id: str, category: str, since: float, until: float, ids: list[str] | None = None
    ) -> Candidates:
        """The duplicate candidates of a case: the others of its category that occurred in
        [since, until], their records read now, with the pairs among them said distinct.
        `ids`: the window's ids as `recent_ids` read them a moment ago, else read here."""
        ...

    def count(self, name: str) -> None: ...

    def open(self, offset: int = 0, limit: int = 50) -> tuple[int, list[Suggestion]]: ...

    def counts(self) -> dict[str, int]: ...


# -- supervision's reads and timers ------------------------------------------------------
class CaseReader(Protocol):
    def case(self, case_id: str) -> dict | None: ...

    def work_orders_of(self, case_id: str) -> list[dict]: ...

    def timeline(self, case_id: str) -> list[dict]: ...

    def office_queue(self, unit: str, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]: ...

    def query(
        self,
        status: str | None = None,
        department: str | None = None,
        grid: str | None = None,
        level: str | None = None,
        overdue: bool = False,
        since: float | None = None,
        until: float | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[dict]]: ...


class EvidenceStore(Protocol):
    """Where a county keeps evidence photos: an S3-compatible bucket, or a local directory."""

    def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store the bytes under `key`; returns where they are kept (an s3:// or file: URL)."""
        ...

    def get(self, key: str) -> tuple[bytes, str] | None:
        """(bytes, content type), or None when nothing is kept under `key`."""
        ...


class RegisteredCases(Protocol):
    """The monthly report's read (onegrid.adapters.redis.store.Store)."""

    def registered(self, since: float, until: float, fields: tuple[str, ...]) -> list[dict]:
        """`fields` of every case registered in [since, until) (epoch seconds), whatever
        became of it."""
        ...


class Timers(Protocol):
    def claim(self, now: float) -> list[tuple[str, float]]:
        """Due timers (member, due), owned by the caller until `done` or their lease runs out."""
        ...

    def done(self, member: str) -> None: ...


# -- scoring --------------------------------------------------------------------------------
class ScoreStore(Protocol):
    def apply(self, event: sc.Event, case_id: str, cfg: sc.Config) -> tuple[sc.Outcome, dict | None]:
        """Applies one event once; the colour change it caused (a duplicate: the one recorded)."""
        ...

    def adjust(
        self, worker: str, points: int, reason: str, inspector: str, month: str, adjustment_id: str, at: str
    ) -> tuple[bool, dict]: ...

    def audit(self, month: str | None = None, worker: str | None = None) -> list[dict]: ...

    def workers(self, month: str, cfg: sc.Config) -> dict[str, dict]: ...

    def grid_points(self, month: str, cfg: sc.Config) -> dict[str, int]: ...

    def assessment(self, period: str, departments: Any, cfg: sc.Config) -> dict[str, dict]: ...

    def colours(self) -> dict[str, dict]: ...

    def worker_grid(self) -> dict[str, str]: ...


# -- notify ---------------------------------------------------------------------------------
class NotificationOutbox(Protocol):
    def enqueue(self, n: nd.Notification, now: float) -> bool:
        """False when the notification's idempotency key is known already."""
        ...

    def claim(self, now: float, lease: float, limit: int) -> list[str]: ...

    def pending(self) -> int: ...

    def stats(self) -> dict[str, int]: ...

    def parked(self, limit: int = 1000) -> list[dict]: ...


class Deliveries(Protocol):
    """Attempts at sending, each on its own so a slow receiver delays only its own messages."""

    def free(self) -> int:
        """How many more attempts can run now."""
        ...

    def start(self, key: str) -> None:
        """One attempt at the notification `key` (sent, retried later or parked), not awaited."""
        ...


class ReplyBook(Protocol):
    """The satisfaction questions open per phone number, and the SMS replies received."""

    def ask(self, phone_key: str, q: Question) -> None: ...

    def settle(self, case_id: str) -> None:
        """The case no longer awaits the citizen's verdict: its question is closed."""

    def questions(self, phone_key: str) -> list[Question]: ...

    def claim(self, message_key: str) -> dict | None:
        """None: the caller handles the message; else the outcome already recorded for it (or
        {"busy": True} while another handles it)."""

    def release(self, message_key: str) -> None: ...

    def record(self, message_key: str, answer: dict, kept: dict, retention_s: int) -> None: ...

    def replies(self, outcome: str | None = None, limit: int = 100) -> list[dict]: ...


class Verdicts(Protocol):
    """supervision's case action, the one the citizen's word takes (satisfied, not_satisfied):
    TransitionRefused or LookupError when the case cannot take it."""

    def act(self, case_id: str, action: str, actor: str, note: str) -> None: ...


@dataclass(frozen=True)
class Kept:
    """One message of a history stream, as the broker appended it."""

    offset: int
    routing_key: str
    headers: dict
    body: bytes
    content_type: str | None = None


class HistoryReader(Protocol):
    """A county's history streams (onegrid.kernel.topology.HISTORY_INTAKE, HISTORY_LIFECYCLE);
    onegrid.adapters.amqp.history.StreamReader reads them on the broker."""

    def read(self, stream: str, since: float | None = None, offset: int | None = None) -> Iterator[Kept]:
        """Oldest first, from `offset`, else from about epoch `since` (a few earlier ones may
        come first), else from the first kept, up to the newest one the stream held when the
        read began."""
        ...


class RawPublisher(Protocol):
    """Publishing bytes as they are (onegrid.adapters.amqp.bus.Bus), with confirms."""

    def publish_raw(
        self,
        body: bytes,
        headers: dict,
        content_type: str | None,
        exchange: str,
        routing_key: str,
        mandatory: bool = True,
        timeout: float | None = None,
    ) -> None: ...


class IntakeInbox(Protocol):
    """A county's intake, reached as the department that sent an event (onegrid.operator.ops.
    IntakeSender on the broker): where `onegrid history replay` sends the events it replays."""

    def send(self, raw: RawEvent, department: str) -> None: ...


class Usage(Protocol):
    """How often each contract version is used: intake records, the registry reads."""

    def record_use(self, department: str, key: str, version: int, at: float) -> None:
        """One event of `key` v`version` from `department` accepted at `at` (epoch s)."""

    def uses(self) -> list[Use]: ...


class PublishedStore(Usage, Protocol):
    """What a county's registry service published on top of the image's contracts."""

    def revision(self) -> int: ...

    def overlay(self) -> Overlay: ...

    def published_version(self, key: str, version: int) -> dict | None: ...

    def add_version(self, department: str, key: str, version: int, entry: dict) -> tuple[bool, int]:
        """Store a new version once, never overwritten: (stored, the revision after)."""

    def put_manifest(self, doc: dict) -> int:
        """Replace the county's manifest; the revision after."""

    def retire(self, key: str, version: int) -> tuple[bool, int]:
        """(whether it was not retired before, the revision after)."""
