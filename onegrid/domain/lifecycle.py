"""The case and work-order state machines (docs/lifecycle.md draws them).

A transition table per record, and the few rules that tie them: a case starts when one of
its parts is accepted and is resolved when every active part is resolved.
"""

from __future__ import annotations

from collections.abc import Sequence

from onegrid.domain.cases import CaseLike, WorkOrderLike
from onegrid.kernel.tenant import COMMAND_CENTRE

OPEN_CASE = ("registered", "dispatched", "in_progress", "resolved", "verified", "reopened")
TERMINAL_CASE = ("closed", "rejected", "merged")
TERMINAL_EVENTS = tuple(f"case.{s}" for s in TERMINAL_CASE)  # announced when a case ends
CASE_STATES = OPEN_CASE + TERMINAL_CASE
WORK_ORDER_STATES = ("dispatched", "accepted", "extension_requested", "resolved", "returned", "cancelled")
ACTIVE_WORK_ORDER = ("dispatched", "accepted", "extension_requested", "resolved")
OPEN_WORK_ORDER = ("dispatched", "accepted", "extension_requested")  # still to do: on a queue, cancellable
WORKED_CASE = ("dispatched", "in_progress", "reopened")  # parts on departments' desks: deadlines apply
OUTCOMES = ("fixed", "not_fixed")

CASE_TRANSITIONS = {
    ("registered", "dispatch"): "dispatched",
    # settled on site by the grid worker (onegrid.domain.onsite): closed fixed, or held for a check
    ("registered", "close_on_site"): "closed",
    ("registered", "resolve_on_site"): "resolved",
    # a duplicate: routing merges at registration, the command centre on a suggestion later
    **{(s, "merge"): "merged" for s in ("registered", "dispatched", "in_progress")},
    ("merged", "unmerge"): "registered",  # its own case again; routing (or its restored parts) dispatch it
    ("registered", "reject"): "rejected",
    ("dispatched", "reject"): "rejected",
    ("dispatched", "start"): "in_progress",
    ("in_progress", "resolve"): "resolved",
    ("resolved", "verify"): "verified",
    ("resolved", "verify_failed"): "reopened",
    ("verified", "satisfied"): "closed",
    ("verified", "no_answer"): "closed",
    ("verified", "not_satisfied"): "reopened",
    ("reopened", "dispatch"): "dispatched",
    **{(s, "close_not_fixed"): "closed" for s in OPEN_CASE},
    # actions that keep the state: a higher level, an overdue flag, more parts, a duplicate linked
    **{
        (s, a): s
        for s in ("registered", "dispatched", "in_progress", "reopened")
        for a in ("escalate", "supervise", "whistle", "link_duplicate")
    },
    **{(s, "link_duplicate"): s for s in ("resolved", "verified")},
}

WORK_ORDER_TRANSITIONS = {
    ("dispatched", "accept"): "accepted",
    ("dispatched", "return"): "returned",
    ("accepted", "return"): "returned",
    ("accepted", "request_extension"): "extension_requested",
    ("extension_requested", "grant_extension"): "accepted",
    ("extension_requested", "deny_extension"): "accepted",
    ("accepted", "resolve"): "resolved",
    ("extension_requested", "resolve"): "resolved",
    ("resolved", "reopen"): "dispatched",
    **{(s, "cancel"): "cancelled" for s in OPEN_WORK_ORDER},
    ("cancelled", "restore"): "dispatched",  # an un-merge gives back the parts the merge cancelled
}
DEPARTMENT_ACTIONS = ("accept", "return", "request_extension", "resolve")


class TransitionRefused(Exception):
    """An action the record's state does not allow; says which record, state and action."""


def allowed(table: dict, state: str) -> list[str]:
    return sorted(a for (s, a) in table if s == state)


def case_next(case: CaseLike, action: str) -> str:
    nxt = CASE_TRANSITIONS.get((case["status"], action))
    if nxt is None:
        raise TransitionRefused(
            f"case {case['id']} is {case['status']}; cannot {action} "
            f"(allowed: {', '.join(allowed(CASE_TRANSITIONS, case['status'])) or 'nothing'})"
        )
    return nxt


def work_order_next(work_order: WorkOrderLike, action: str, department: str | None = None) -> str:
    """The work order's next state, or TransitionRefused. A department acts only on its own;
    the command centre cannot hand a work order back, it dispatches by hand."""
    if department is not None and work_order["department"] != department:
        raise TransitionRefused(
            f"work order {work_order['id']} belongs to {work_order['department']}, not {department}"
        )
    if action == "return" and work_order["department"] == COMMAND_CENTRE:
        raise TransitionRefused(
            f"work order {work_order['id']}: the command centre cannot return a work order; it dispatches it by hand"
        )
    nxt = WORK_ORDER_TRANSITIONS.get((work_order["status"], action))
    if nxt is None:
        raise TransitionRefused(
            f"work order {work_order['id']} of case {work_order['case_id']} is {work_order['status']}; cannot {action}"
        )
    return nxt


def case_after_parts(case_status: str, work_orders: Sequence[WorkOrderLike]) -> str | None:
    """The case action its parts now call for ("start" or "resolve"), or None."""
    active = [w for w in work_orders if w["status"] in ACTIVE_WORK_ORDER]
    if case_status in ("dispatched", "in_progress") and active and all(w["status"] == "resolved" for w in active):
        return "start" if case_status == "dispatched" else "resolve"
    if case_status == "dispatched" and any(w["status"] != "dispatched" for w in active):
        return "start"
    return None
