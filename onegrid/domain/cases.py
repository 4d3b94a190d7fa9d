"""Cases and work orders: identities, records, the allowed transitions, the timeline.

A case is one reported problem; a work order is one department's share of it. Ids are
derived from the event's identity, so a redelivered event or a repeated dispatch lands on
the same records (handlers are idempotent by construction, not by luck).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from onegrid.domain.intake import Accepted
from onegrid.domain.routing import Decision

# (state, action) -> next state. Anything else is refused.
WORK_ORDER_TRANSITIONS = {
    ("dispatched", "accept"): "accepted",
    ("dispatched", "return"): "returned",
    ("accepted", "return"): "returned",
    ("accepted", "resolve"): "resolved",
}
CASE_STATES = ("registered", "dispatched", "resolved")
WORK_ORDER_STATES = ("dispatched", "accepted", "returned", "resolved")


class TransitionRefused(Exception):
    """An action the record's state does not allow; says which record, state and action."""


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
        "data": accepted.data,
        "status": "registered",
        "received_at": received_at,
        "transport": transport,
        "digest": accepted.digest,
    }


def new_work_order(case: dict, department: str, decision: Decision, reason: str, at: str) -> dict:
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


def act(work_order: dict, department: str, action: str) -> str:
    """The work order's next state, or TransitionRefused. A department acts only on its own."""
    if work_order["department"] != department:
        raise TransitionRefused(f"work order {work_order['id']} belongs to {work_order['department']}, "
                                f"not {department}")
    if action == "return" and department == "governance":
        raise TransitionRefused(f"work order {work_order['id']}: the command centre cannot return a "
                                "work order; it dispatches it by hand")
    nxt = WORK_ORDER_TRANSITIONS.get((work_order["status"], action))
    if nxt is None:
        raise TransitionRefused(f"work order {work_order['id']} of case {work_order['case_id']} is "
                                f"{work_order['status']}; cannot {action}")
    return nxt


def case_status(work_orders: list[dict]) -> str:
    """A case is resolved when every work order still its departments' is resolved."""
    active = [w for w in work_orders if w["status"] != "returned"]
    if active and all(w["status"] == "resolved" for w in active):
        return "resolved"
    return "dispatched"
