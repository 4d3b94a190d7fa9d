"""What the store holds for a run's published events: the case each made, the quarantine
reasons each got. The demo, the chaos run and the end-to-end test reconcile from this."""

from __future__ import annotations

import json

from onegrid.adapters.redis.store import Store
from onegrid.domain.cases import case_id
from onegrid.domain.intake import identity


def gather(store: Store, planned) -> tuple[dict, dict]:
    """(event id -> case, event id -> [quarantine reasons]) for the planned events."""
    case_of = {}
    for p in planned:
        if p.expect in ("case", "merged"):
            case = store.case(case_id(identity(p.department, p.headers["ce-source"], p.event_id)))
            if case:
                case_of[p.event_id] = case
    reason_of: dict[str, list] = {}
    for entry in store.quarantined(count=1_000_000):
        reason_of.setdefault(json.loads(entry["headers"]).get("ce-id"), []).append(entry["reason"])
    return case_of, reason_of
