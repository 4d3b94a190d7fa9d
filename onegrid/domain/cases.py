"""Cases and work orders: identities, records and the timeline (transitions: lifecycle.py).

A case is one reported problem; a work order is one department's share of it. Ids are
derived from the event's identity, so a redelivered event or a repeated dispatch lands on
the same records (handlers are idempotent by construction, not by luck).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from onegrid.domain.intake import Accepted
from onegrid.domain.routing import Decision


def case_id(dedup_key: str) -> str:
    return "c-" + hashlib.sha256(dedup_key.encode()).hexdigest()[:16]


def work_order_id(case: str, department: str) -> str:
    return f"w-{case[2:]}-{department}"


def new_case(accepted: Accepted, received_at: str, transport: str) -> dict:
    env = accepted.envelope
    return {
        "id": case_id(accepted.dedup_key),
        "tenant": env.tenant,
        "department": env.department,
        "event_type": env.type,
        "event_id": env.id,
        "source": env.source,
        "version": accepted.version,
        "category": accepted.category,
        "severity": accepted.severity,
        "grid": accepted.grid,
        "summary": accepted.data["summary"],
        "occurred_at": accepted.data["occurred_at"],
        "reporter": accepted.data["reporter"],
        "location": accepted.data.get("location"),
        "data": accepted.data,
        "status": "registered",
        "received_at": received_at,
        "at": datetime.fromisoformat(received_at.replace("Z", "+00:00")).timestamp(),
        "occurred": datetime.fromisoformat(accepted.data["occurred_at"].replace("Z", "+00:00")).timestamp(),
        "level": "",
        "reopen_count": 0,
        "transport": transport,
        "digest": accepted.digest,
    }


def new_work_order(case: dict, department: str, decision: Decision, reason: str, at: str,
                   spans: tuple[float, float], now: float) -> dict:
    """A department's part of a case, with its deadlines: acknowledge and resolve spans in
    seconds (from the tenant's deadline table) and the epoch times they fall due."""
    return {
        "id": work_order_id(case["id"], department),
        "case_id": case["id"],
        "department": department,
        "status": "dispatched",
        "level": decision.level,
        "unit": decision.unit,
        "category": case["category"],
        "severity": case["severity"],
        "grid": case["grid"],
        "summary": case["summary"],
        "reason": reason,
        "rule": decision.rule,
        "dispatched_at": at,
        "event_id": case["event_id"],
        "ack_span": spans[0],
        "resolve_span": spans[1],
        "ack_due": now + spans[0],
        "resolve_due": now + spans[1],
        "dispatched_epoch": now,
    }


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
