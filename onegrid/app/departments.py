"""departments' use cases: a department lists its queue, reads a case, and acts on its own
work orders (accept, return, ask for more time, resolve); each action is a casework
transition whose lifecycle events are then announced from the outbox.

Who the caller is (a token over HTTP, OneGrid's own services over RPC) is the transport's to
establish; these take the department it speaks for.
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError

from onegrid.app.inputs import MAX_OFFSET, ActionRequest
from onegrid.app.ports import CaseStore, Casework, Outbox
from onegrid.domain.lifecycle import DEPARTMENT_ACTIONS
from onegrid.kernel.tenant import Tenant, parse_duration

NEEDS_NOTE = ("return", "resolve", "request_extension")


class UnknownDepartment(LookupError):
    pass


@dataclass(frozen=True)
class Action:
    """A department's request on a work order, validated."""

    action: str  # one of onegrid.domain.lifecycle.DEPARTMENT_ACTIONS
    actor: str
    note: str = ""
    evidence_urls: tuple[str, ...] = ()
    extension: int | None = None  # seconds more, for request_extension


@dataclass(frozen=True)
class Departments:
    tenant: Tenant
    store: CaseStore
    work: Casework
    outbox: Outbox

    @property
    def source(self) -> str:
        return f"/{self.tenant.id}/departments"

    def known(self, department: str) -> None:
        if department not in self.tenant.departments:
            raise UnknownDepartment(f"department {department!r} is not enabled for {self.tenant.id}")

    def list_work_orders(self, department: str, offset: int = 0, limit: int = 50) -> dict:
        """One page of the department's queue, oldest dispatch first."""
        self.known(department)
        offset = min(max(0, int(offset)), MAX_OFFSET)
        total, orders = self.store.department_queue(department, offset, min(max(1, int(limit)), 500))
        return {"department": department, "total": total, "offset": offset, "work_orders": orders}

    def get_case(self, case_id: str) -> dict:
        case = self.store.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.tenant.id}")
        return {**case, "work_orders": self.store.work_orders_of(case_id), "timeline": self.store.timeline(case_id)}

    def request(self, department: str, action: str, body: object) -> Action:
        """Check a request before anything is done: raises UnknownDepartment or ValidationError."""
        assert action in DEPARTMENT_ACTIONS
        self.known(department)
        req = ActionRequest().load(body if isinstance(body, dict) else {})
        if action in NEEDS_NOTE and not req["note"]:
            raise ValidationError({"note": [f"a note is required to {action.replace('_', ' ')}"]})
        if action == "request_extension" and not req["extension"]:
            raise ValidationError({"extension": ["how much more time, e.g. 2h"]})
        return Action(action, req["actor"], req["note"], tuple(req["evidence_urls"]), parse_duration(req["extension"]))

    def act(self, department: str, work_order_id: str, req: Action) -> dict:
        """Do it: raises TransitionRefused when the work order's state (or owner) does not allow
        it, LookupError for an unknown work order; the lifecycle events are announced after."""
        out = self.work.department_act(
            work_order_id,
            department,
            req.action,
            req.actor,
            req.note,
            list(req.evidence_urls),
            req.extension,
        )
        self.outbox.announce(out.outbox)
        return {"work_order": out.work_order, "case_status": out.case["status"]}
