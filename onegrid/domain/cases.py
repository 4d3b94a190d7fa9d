"""Cases and work orders: identities, records and the timeline (transitions: lifecycle.py).

A case is one reported problem; a work order is one department's share of it. Ids are
derived from the event's identity, so a redelivered event or a repeated dispatch lands on
the same records (handlers are idempotent by construction, not by luck).

`Case` and `WorkOrder` are the typed records; the store and the bus keep them as dicts with
the same field names (`to_record` / `from_record`). A record read from a dict gives back
exactly that dict: fields it did not have are not invented, fields no one modelled ride in
`extra`. They also read like those dicts (`case["status"]`, `case.get("overdue")`), so the
rules written over dicts take either.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from onegrid.domain.timeline import Head, link

if TYPE_CHECKING:  # only named in signatures: the records need neither intake nor routing
    from onegrid.domain.intake import Accepted
    from onegrid.domain.routing import Decision


def case_id(dedup_key: str) -> str:
    return "c-" + hashlib.sha256(dedup_key.encode()).hexdigest()[:16]


def work_order_id(case: str, department: str) -> str:
    return f"w-{case[2:]}-{department}"


class _Record:
    """A dataclass that round-trips a stored dict: required fields always, an optional field
    when it is set or the source had it (a stored null stays a null), unknown keys in `extra`."""

    extra: dict[str, Any]
    _keys: frozenset[str]

    @classmethod
    @functools.cache
    def _names(cls) -> dict[str, bool]:
        """Modelled field -> required."""
        return {
            f.name: f.default is MISSING and f.default_factory is MISSING
            for f in fields(cls)  # type: ignore[arg-type]
            if f.name not in ("extra", "_keys")
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        names = cls._names()
        values: dict[str, Any] = {k: v for k, v in record.items() if k in names}
        values.update(extra={k: v for k, v in record.items() if k not in names}, _keys=frozenset(record))
        return cls(**values)

    def to_record(self) -> dict[str, Any]:
        out = {
            name: getattr(self, name)
            for name, required in self._names().items()
            if required or getattr(self, name) is not None or name in self._keys
        }
        return {**out, **self.extra}

    def update(self, **values: Any) -> None:
        """Set fields (known or not); each is then part of the record, even when None."""
        names = self._names()
        for k, v in values.items():
            if k in names:
                setattr(self, k, v)
            else:
                self.extra[k] = v
        self._keys = self._keys | values.keys()

    # read like the dict it replaces
    def get(self, name: str, default: Any = None) -> Any:
        if name in self._names():
            value = getattr(self, name)
            return default if value is None and name not in self._keys else value
        return self.extra.get(name, default)

    def __getitem__(self, name: str) -> Any:
        if name in self._names():
            return getattr(self, name)
        return self.extra[name]


@dataclass(kw_only=True, eq=False)
class Case(_Record):
    """One reported problem. Required: what every stored case has and the rules read."""

    id: str
    tenant: str | None = None
    department: str
    event_type: str | None = None
    event_id: str
    source: str | None = None
    version: int | None = None
    category: str
    severity: str | None = None
    grid: str
    summary: str | None = None
    occurred_at: str | None = None
    reporter: dict[str, Any]
    location: dict[str, Any] | None
    data: dict[str, Any] | None = None
    status: str
    received_at: str | None = None
    at: float
    occurred: float | None = None
    level: str  # "" until dispatched
    unit: str | None = None
    reopen_count: int | None = None
    transport: str | None = None
    digest: str | None = None
    dispatched_at: str | None = None
    overdue: int | None = None  # 1 while a part is past a deadline
    chainhead: str | None = None  # the timeline's hash-chain head (onegrid.domain.timeline)
    resolved_at: str | None = None
    verified_at: str | None = None
    verified_by: str | None = None
    evidence_urls: list[str] | None = None
    outcome: str | None = None  # fixed | not_fixed
    closed_at: str | None = None
    on_time: bool | None = None
    satisfied: bool | None = None
    rejected_reason: str | None = None
    merged_into: str | None = None
    unmerged_from: str | None = None  # the case it was merged into until a person undid it
    linked: list[dict[str, Any]] | None = None  # the duplicates merged into this one
    arrival_due: float | None = None  # the grid worker's on-site deadline (epoch), armed at dispatch
    arrived_at: str | None = None  # the grid worker's check-in on site
    arrival_late: bool | None = None
    escalations: list[dict[str, Any]] | None = None  # the offices' items, oldest first (onegrid.domain.ladder)
    traceparent: str | None = None  # W3C trace context intake started or continued (onegrid.kernel.trace)
    extra: dict[str, Any] = field(default_factory=dict)
    _keys: frozenset[str] = field(default=frozenset(), repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Case) and self.to_record() == other.to_record()


@dataclass(kw_only=True, eq=False)
class WorkOrder(_Record):
    """A department's part of a case, with its deadlines (epoch seconds) and spans (seconds)."""

    id: str
    case_id: str
    department: str
    status: str
    level: str
    unit: str
    category: str | None = None
    severity: str | None = None
    grid: str | None = None
    summary: str | None = None
    reason: str | None = None
    rule: int | None  # index in the routing table; None: no rule matched
    dispatched_at: str | None = None
    event_id: str | None = None
    ack_span: float
    resolve_span: float
    ack_due: float
    resolve_due: float
    dispatched_epoch: float
    # the manifest's spans (10m, 8wh, 2wd): a re-armed deadline is found again on the calendar
    ack_deadline: str | None = None
    resolve_deadline: str | None = None
    accepted_at: str | None = None
    accepted_epoch: float | None = None
    extension_requested_at: str | None = None
    extension_requested_epoch: float | None = None
    extension_requested_s: float | None = None  # on the deadlines' clock
    resolved_at: str | None = None
    resolved_epoch: float | None = None
    returned_at: str | None = None
    returned_epoch: float | None = None
    note: str | None = None
    evidence_urls: list[str] | None = None
    on_time: bool | None = None  # resolved by its deadline, never overdue
    overdue_ack: int | None = None
    overdue_resolve: int | None = None
    acknowledge_fired: float | None = None  # the due of the last deadline that fired, per kind
    resolve_fired: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _keys: frozenset[str] = field(default=frozenset(), repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorkOrder) and self.to_record() == other.to_record()

    def fired(self, kind: str) -> float:
        """The due of the last `kind` deadline that fired; 0 if none."""
        return float(self.get(f"{kind}_fired") or 0)


CaseLike = Case | Mapping[str, Any]  # what the rules over records read
WorkOrderLike = WorkOrder | Mapping[str, Any]


def new_case(accepted: Accepted, received_at: str, transport: str) -> dict:
    env = accepted.envelope
    return Case(
        id=case_id(accepted.dedup_key),
        tenant=env.tenant,
        department=env.department,
        event_type=env.type,
        event_id=env.id,
        source=env.source,
        version=accepted.version,
        category=accepted.category,
        severity=accepted.severity,
        grid=accepted.grid,
        summary=accepted.data["summary"],
        occurred_at=accepted.data["occurred_at"],
        reporter=accepted.data["reporter"],
        location=accepted.data.get("location"),
        data=accepted.data,
        status="registered",
        received_at=received_at,
        at=datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp(),
        occurred=datetime.fromisoformat(accepted.data["occurred_at"].replace("Z", "+00:00")).timestamp(),
        level="",
        reopen_count=0,
        transport=transport,
        digest=accepted.digest,
    ).to_record()


def new_work_order(
    case: dict | Case,
    department: str,
    decision: Decision,
    reason: str,
    at: str,
    spans: tuple[float, float],
    now: float,
    written: tuple[str, str] | None = None,
) -> dict:
    """A department's part of a case, with its deadlines: acknowledge and resolve spans in
    seconds from `now` (the tenant's deadline table on its calendar), the epoch times they
    fall due, and the spans as the table `written` them."""
    return WorkOrder(
        id=work_order_id(case["id"], department),
        case_id=case["id"],
        department=department,
        status="dispatched",
        level=decision.level,
        unit=decision.unit,
        category=case["category"],
        severity=case["severity"],
        grid=case["grid"],
        summary=case["summary"],
        reason=reason,
        rule=decision.rule,
        dispatched_at=at,
        event_id=case["event_id"],
        ack_span=spans[0],
        resolve_span=spans[1],
        ack_due=now + spans[0],
        resolve_due=now + spans[1],
        dispatched_epoch=now,
        ack_deadline=written[0] if written else None,
        resolve_deadline=written[1] if written else None,
    ).to_record()


@dataclass(frozen=True)
class Step:
    """One line of a case's append-only timeline: who, when, what, from which state to which."""

    at: str
    actor: str
    action: str
    from_state: str | None
    to_state: str
    note: str = ""
    work_order: str | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


def registration_step(case: Mapping[str, Any]) -> Step:
    """The first line of a case's timeline: the report that made it."""
    reporter = case.get("reporter") or {}
    return Step(
        case["received_at"],
        f"{case['department']}/{reporter.get('kind', '?')}",
        "register",
        None,
        "registered",
        case["event_type"],
    )


def first_entry(tenant: str, case: Mapping[str, Any]) -> tuple[dict, Head]:
    """The registration line chained from the case's genesis, and the head after it."""
    return link(Head.start(tenant, case["id"]), registration_step(case).as_dict())


def dispatch_step(case: Mapping[str, Any], wo: Mapping[str, Any], at: str, actor: str) -> Step:
    """A work order's line: which department, at which level and unit, and why."""
    note = f"{wo['department']} at {wo['level']} {wo['unit']} ({wo['reason']})"
    return Step(at, actor, "dispatch", case["status"], "dispatched", note, wo["id"])


def case_of_work_order(work_order: str) -> str | None:
    """The case a work order id (work_order_id) belongs to; None for anything else."""
    if not work_order.startswith("w-") or len(work_order) < 20 or work_order[18] != "-":
        return None
    return "c-" + work_order[2:18]
