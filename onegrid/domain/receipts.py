"""A department's receipt: what became of one event it sent, told to that department only.

Three outcomes, each a CloudEvent of its own type on the department's `receipts.<department>`
queue (subject = the event's id) and the answer of `GET /events/<event id>`:

  event.accepted     the event is case `case_id` (a resend of it is accepted again, same case)
  event.merged       routing found it duplicates case `merged_into` (same category, near in
                     time and place, described alike: onegrid.domain.duplicates): work goes on
                     there; `case_id` is the merged case
  event.quarantined  refused with `reason` and `detail` (what the operator sees), kept as
                     quarantine entry `quarantine_id`

The receipt's own id is `<event id>.<outcome>`: a redelivery publishes the same id again, so a
consumer that keeps the ids it has seen reads each receipt once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

OUTCOMES = ("accepted", "merged", "quarantined")


@dataclass(frozen=True)
class Receipt:
    outcome: str  # one of OUTCOMES
    department: str  # the authenticated department it is told to
    event_id: str  # the event's CloudEvents id ("" when the event had none readable)
    at: str
    source: str | None = None
    case_id: str | None = None
    merged_into: str | None = None
    reason: str | None = None
    detail: str | None = None
    quarantine_id: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"a receipt's outcome is one of {OUTCOMES}, not {self.outcome!r}")

    @property
    def type(self) -> str:
        return f"event.{self.outcome}"

    @property
    def subject(self) -> str:
        """The event's id; an event without one is named by its quarantine entry."""
        return self.event_id or f"quarantine/{self.quarantine_id}"

    @property
    def id(self) -> str:
        return f"{self.subject}.{self.outcome}"[:200]

    def as_dict(self) -> dict:
        """The receipt's data: the fields that say something."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def of_case(case: dict, department: str, at: str) -> Receipt:
    """What an event that became `case` is told: merged if routing merged the case, else accepted."""
    if case.get("merged_into"):
        return Receipt(
            "merged",
            department,
            case["event_id"],
            at,
            source=case.get("source"),
            case_id=case["id"],
            merged_into=case["merged_into"],
        )
    return Receipt("accepted", department, case["event_id"], at, source=case.get("source"), case_id=case["id"])


def event_id_of(headers: dict, body: bytes, content_type: str | None) -> str:
    """The id a refused event carried, as well as it can be read: its `ce-id` header (binary
    mode) or the `id` of a structured event; "" if neither is readable."""
    value = headers.get("ce-id")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value:
        return _sayable(value[:200])
    if content_type and "cloudevents+json" in content_type:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return ""
        if isinstance(doc, dict) and isinstance(doc.get("id"), str):
            return _sayable(doc["id"][:200])
    return ""


def _sayable(value: str) -> str:
    """An id that UTF-8 can carry (a lone surrogate cannot be a header, a key or JSON text);
    else "": the receipt then names the event by its quarantine entry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return value
