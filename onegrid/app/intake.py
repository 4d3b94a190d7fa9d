"""intake's use case: one department event judged, then registered as a case and announced
(`case.registered`), or kept in quarantine with its reason.

The transport (services/intake) says who authenticated and hands over the event with the
headers it vouches for; what comes out says what happened, for the answer and the metrics.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass

from onegrid.app.ports import CaseStore, Clock, GridLocator, Publisher, Usage
from onegrid.app.receipts import tell
from onegrid.contracts import Registry
from onegrid.domain.cases import first_entry, new_case
from onegrid.domain.intake import Accepted, RawEvent, Rejected, admit, expired, on_resend
from onegrid.domain.receipts import Receipt, event_id_of, of_case
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology, trace
from onegrid.kernel.tenant import Tenant

PUBLIC = ("outcome", "case_id", "reason", "detail", "quarantine_id", "event_id")  # what a sender is told


@dataclass(frozen=True)
class Outcome:
    outcome: str  # registered | duplicate | quarantined
    case_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    quarantine_id: str | None = None
    event_id: str | None = None
    source: str | None = None  # not told: the receipt carries it
    department: str = "unknown"  # metric labels, not told: a department id or "unknown" ...
    category: str | None = None  # ... and the case's category
    event_type: str | None = None  # not told: the contract version an accepted event used
    version: int | None = None

    def public(self) -> dict:
        """The answer to the sender: the fields that say something."""
        return {k: getattr(self, k) for k in PUBLIC if getattr(self, k) is not None}


@dataclass(frozen=True)
class Admitted:
    """An accepted event and the case it makes, before the store has registered it."""

    verdict: Accepted
    case: dict


@dataclass(frozen=True)
class Intake:
    tenant: Tenant
    registry: Registry
    store: CaseStore
    bus: Publisher
    clock: Clock
    locator: GridLocator | None = None  # the grid boundaries, to place events that name no grid
    usage: Usage | None = None  # counts accepted events per contract version and department

    def ingest(self, raw: RawEvent, department: str | None = None) -> Outcome:
        """Judge one event; `department` is the one the transport authenticated (None: none),
        the only one told the outcome (its receipt). Idempotent: a redelivered event finds its
        case and is a duplicate, announced again only while the case is still `registered` (the
        first delivery may have died before); its receipt is published again, with the same id."""
        return self.ingest_many([(raw, department)])[0]

    def ingest_many(self, items: Sequence[tuple[RawEvent, str | None]]) -> list[Outcome]:
        """`ingest` for each (event, authenticated department) of a batch, the outcomes in the
        same order: every event judged first, the accepted ones registered with one store call
        (one Redis round trip), then each settled in turn as `ingest` would (announced, resent,
        quarantined, counted, told). The store registers them in order, so an event that comes
        twice in one batch is one case and a duplicate, and an id reused with other content is
        quarantined, as if they had come one batch apart."""
        judged = [self._admit(raw, department) for raw, department in items]
        accepted = [(i, j) for i, j in enumerate(judged) if isinstance(j, Admitted)]
        registered: dict[int, tuple[bool, str, str, str]] = {}
        if accepted:
            replies = self.store.register_cases([(j.case, j.verdict.dedup_key) for _, j in accepted])
            registered = {i: reply for (i, _), reply in zip(accepted, replies, strict=True)}
        outcomes = []
        for i, ((raw, department), j) in enumerate(zip(items, judged, strict=True)):
            outcome = self.quarantine(raw, j) if isinstance(j, Rejected) else self._settle(raw, j, registered[i])
            if department is not None and department in self.tenant.departments:
                tell(self.store, self.bus, self.tenant.id, "intake", self._receipt(raw, department, outcome))
            outcomes.append(outcome)
        return outcomes

    def _receipt(self, raw: RawEvent, department: str, outcome: Outcome) -> Receipt:
        at = self.clock.now_iso()
        if outcome.outcome == "quarantined":
            return Receipt(
                "quarantined",
                department,
                event_id_of(raw.headers, raw.body, raw.content_type),
                at,
                reason=outcome.reason,
                detail=outcome.detail,
                quarantine_id=outcome.quarantine_id,
            )
        case = self.store.case(outcome.case_id or "") if outcome.outcome == "duplicate" else None
        if case is not None:  # a resend of an event routing has merged since
            return of_case(case, department, at)
        return Receipt(
            "accepted", department, outcome.event_id or "", at, source=outcome.source, case_id=outcome.case_id
        )

    def _admit(self, raw: RawEvent, department: str | None) -> Admitted | Rejected:
        """The verdict on one event (admit is pure) and, if accepted, the case it would make."""
        locate = self.locator.covering if self.locator is not None else None
        verdict = admit(raw, self.tenant, self.registry, department, locate)
        if isinstance(verdict, Rejected):
            return verdict
        # the case keeps the trace it came with (or starts one): every event about it continues it
        case = {
            **new_case(verdict, self.clock.now_iso(), raw.transport),
            "traceparent": trace.child(verdict.envelope.traceparent),
        }
        case["chainhead"] = str(first_entry(self.tenant.id, case)[1])  # what the store's first line leaves
        return Admitted(verdict, case)

    def _settle(self, raw: RawEvent, admitted: Admitted, registered: tuple[bool, str, str, str]) -> Outcome:
        """An accepted event once the store has answered its registration: announced if new (or
        if its case never left `registered`), quarantined if its id was reused, counted."""
        verdict, case = admitted.verdict, admitted.case
        created, case_id, recorded, status = registered
        action = "register" if created else on_resend(verdict.digest, recorded, status)
        if action == "id_reused":
            detail = (
                f"event id {verdict.envelope.id!r} from {verdict.envelope.source} already made case "
                f"{case_id} with other content"
            )
            return self.quarantine(raw, Rejected("id_reused", detail, verdict.envelope.department))
        if action == "register":
            self._announce(case)
        elif action == "republish":  # the first delivery's record, with its own timeline head
            self._announce({**case, "id": case_id, "chainhead": (self.store.case(case_id) or {}).get("chainhead")})
        env = verdict.envelope
        if self.usage is not None:  # a resend is still a use: the department still sends this version
            self.usage.record_use(env.department, env.type, verdict.version, self.clock.now())
        return Outcome(
            "registered" if created else "duplicate",
            case_id=case_id,
            event_id=verdict.envelope.id,
            source=verdict.envelope.source,
            department=verdict.envelope.department,
            category=verdict.category if created else None,
            event_type=env.type,
            version=verdict.version,
        )

    def expired(self, raw: RawEvent, department: str | None, ttl_ms: str | None = None) -> Outcome:
        """An event the broker dead-lettered unread because its per-message TTL ran out:
        quarantined with its bytes as `expired`, so no event on the bus goes unjudged."""
        known = department if department in self.registry.departments else None
        return self.quarantine(raw, expired(known, ttl_ms))

    def quarantine(self, raw: RawEvent, rejected: Rejected) -> Outcome:
        """Keep the event's bytes and headers with the reason; the same event twice is one entry."""
        _, entry = self.store.quarantine(
            raw.body,
            raw.headers,
            raw.content_type,
            raw.routing_key,
            raw.transport,
            rejected.reason,
            rejected.detail,
            rejected.department,
        )
        self._keep(raw, rejected, entry)
        return Outcome(
            "quarantined",
            reason=rejected.reason,
            detail=rejected.detail,
            quarantine_id=entry,
            department=rejected.department,
        )

    def _keep(self, raw: RawEvent, rejected: Rejected, entry: str) -> None:
        """The quarantined event, bytes and reason, onto the bus's history (history.intake, bound
        to `intake.quarantined`; mandatory, so an unbound stream is an error, never a silent gap).
        Sent again for the same bytes: the first time may have died before; readers keep one per
        ce-id. An accepted event needs no record of its own: its `case.registered` is kept."""
        env = ce.new(
            tenant=self.tenant.id,
            department=rejected.department,
            type=topology.QUARANTINED,
            source=f"/{self.tenant.id}/intake",
            subject=entry,
            id=f"{entry}.quarantined",
        )
        self.bus.publish(env, quarantine_record(raw, rejected, entry, self.clock.now_iso()))

    def _announce(self, case: dict) -> None:
        env = ce.new(
            tenant=case["tenant"],
            department=case["department"],
            type="case.registered",
            source=f"/{case['tenant']}/intake",
            subject=case["id"],
            id=f"{case['id']}.registered",
            traceparent=case.get("traceparent"),
            chainhead=case.get("chainhead"),
        )
        self.bus.publish(env, case)


def quarantine_record(raw: RawEvent, rejected: Rejected, entry: str, at: str) -> dict:
    """What history.intake keeps of a quarantined event: the reason, and the original bytes and
    headers as intake got them (onegrid.app.history reads them back into a RawEvent)."""
    record = {
        "quarantine_id": entry,
        "reason": rejected.reason,
        "detail": rejected.detail,
        "department": rejected.department,
        "received_at": at,
        "transport": raw.transport,
        "content_type": raw.content_type,
        "routing_key": raw.routing_key,
        "headers": {str(k): v if isinstance(v, (str, int, float, bool)) else str(v) for k, v in raw.headers.items()},
        "body_base64": base64.b64encode(raw.body).decode(),
    }
    return {k: v for k, v in record.items() if v is not None}


def quarantine_view(entry: dict) -> dict:
    """A quarantine entry as its department reads it: the reason and the whole detail the
    operator sees, the event's id, and the original bytes (as text when they are UTF-8, and
    always as base64)."""
    body = entry.get("body") or b""
    try:
        headers = json.loads(entry.get("headers") or "{}")
    except ValueError:
        headers = {}
    view = {
        "id": entry["id"],
        "event_id": event_id_of(headers, body, entry.get("content_type")) or None,
        "reason": entry.get("reason"),
        "detail": entry.get("detail"),
        "transport": entry.get("transport"),
        "received_at": entry.get("received_at"),
        "content_type": entry.get("content_type") or None,
        "routing_key": entry.get("routing_key") or None,
        "headers": headers,
        "body_base64": base64.b64encode(body).decode(),
    }
    try:
        view["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return {k: v for k, v in view.items() if v is not None}
