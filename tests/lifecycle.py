"""Lifecycle events as docs/lifecycle.md defines them (data = the case snapshot), built step by
step for one case: what scoring and notify consume, without the lifecycle code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from onegrid.domain.scoring import Event
from onegrid.kernel import envelope as ce

T0 = datetime(2026, 11, 10, 1, 0, tzinfo=UTC)  # 09:00 in Zhengzhou, Tuesday of 2026-W46


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Story:
    """One case's history. Each step returns (type, data, ce-id, ce-time) and remembers it."""

    def __init__(
        self,
        case_id: str,
        tenant: str = "t",
        grid: str = "410102-001-001-001",
        severity: str = "minor",
        category: str = "city_appearance",
        reporter: dict | None = None,
        start: datetime = T0,
        summary: str = "楼道堆放杂物影响通行",
    ):
        self.t = start
        self.case = {
            "id": case_id,
            "tenant": tenant,
            "department": "governance",
            "event_type": "governance.x",
            "event_id": f"e-{case_id}",
            "category": category,
            "severity": severity,
            "grid": grid,
            "summary": summary,
            "status": "registered",
            "received_at": iso(start),
            "level": "grid",
            "reopen_count": 0,
            "reporter": reporter or {"kind": "grid_worker", "id": "GW-1"},
        }
        self.orders: dict[str, dict] = {}
        self.events: list[tuple[str, dict, str, str]] = []
        self._n = 0

    def _emit(self, type_: str, minutes: float, action: str, extra: dict | None = None, wo: dict | None = None):
        self.t += timedelta(minutes=minutes)
        self._n += 1
        data = {
            **self.case,
            **(extra or {}),
            "step": {
                "at": iso(self.t),
                "actor": "test",
                "action": action,
                "from_state": None,
                "to_state": self.case["status"],
                "note": (extra or {}).get("note", ""),
            },
        }
        if wo is not None:
            data["work_order"] = dict(wo)
        event = (type_, data, f"{self.case['id']}.{self._n}.{action}", iso(self.t))
        self.events.append(event)
        return event

    def registered(self):
        return self._emit("case.registered", 0, "register")

    def dispatched(
        self, *departments: str, level: str = "grid", minutes: float = 1, ack_m: float = 30, resolve_m: float = 600
    ):
        self.case.update(status="dispatched", level=level)
        for d in departments:
            wo = self.orders.setdefault(
                d, {"id": f"w-{self.case['id'][2:]}-{d}", "case_id": self.case["id"], "department": d, "level": level}
            )
            wo.update(
                status="dispatched",
                dispatched_at=iso(self.t + timedelta(minutes=minutes)),
                ack_due=(self.t + timedelta(minutes=minutes + ack_m)).timestamp(),
                resolve_due=(self.t + timedelta(minutes=minutes + resolve_m)).timestamp(),
            )
        return self._emit(
            "case.dispatched", minutes, "dispatch", {"work_orders": [dict(self.orders[d]) for d in departments]}
        )

    def work_order(self, department: str, action: str, minutes: float = 10):
        wo = self.orders[department]
        state = {"accept": "accepted", "return": "returned", "resolve": "resolved"}[action]
        wo["status"] = state
        wo[f"{state}_at"] = iso(self.t + timedelta(minutes=minutes))
        if action == "accept" and self.case["status"] == "dispatched":
            self.case["status"] = "in_progress"
        return self._emit(f"work_order.{state}", minutes, action, wo=wo)

    def supervised(self, reason: str = "overdue_acknowledge", minutes: float = 60, department: str | None = None):
        extra = {"reason": reason, "level": self.case["level"], "work_orders": self._orders()}
        return self._emit(
            "case.supervised", minutes, "supervise", extra, wo=self.orders[department] if department else None
        )

    def escalated(self, to_level: str, minutes: float = 0.1):
        frm = self.case["level"]
        self.case["level"] = to_level
        return self._emit(
            "case.escalated", minutes, "escalate", {"from_level": frm, "to_level": to_level, "reason": "overdue"}
        )

    def resolved(self, minutes: float = 1):
        self.case["status"] = "resolved"
        return self._emit("case.resolved", minutes, "resolve", {"note": "已清理完毕"})

    def verified(self, by: str = "GW-1", minutes: float = 30):
        self.case.update(status="verified", verified_by=by, verified_at=iso(self.t + timedelta(minutes=minutes)))
        return self._emit("case.verified", minutes, "verify")

    def reopened(self, minutes: float = 60):
        self.case["status"] = "reopened"
        self.case["reopen_count"] += 1
        return self._emit("case.reopened", minutes, "not_satisfied", {"work_orders": self._orders()})

    def closed(self, outcome: str = "fixed", on_time: bool = True, satisfied=True, minutes: float = 60):
        closed_at = iso(self.t + timedelta(minutes=minutes))
        self.case.update(status="closed", outcome=outcome, on_time=on_time, satisfied=satisfied, closed_at=closed_at)
        return self._emit(
            "case.closed",
            minutes,
            "satisfied" if satisfied else "close_not_fixed",
            {"note": "" if outcome == "fixed" else "无法处置", "work_orders": self._orders()},
        )

    def _orders(self) -> list[dict]:
        return [dict(wo) for wo in self.orders.values()]

    def rejected(self, minutes: float = 5):
        self.case["status"] = "rejected"
        return self._emit("case.rejected", minutes, "reject", {"reason": "not_platform", "note": "属司法诉讼事项"})

    def merged(self, primary_id: str, minutes: float = 1):
        self.case["status"] = "merged"
        return self._emit("case.merged", minutes, "merge", {"primary_id": primary_id})

    def full(self, *departments: str, level: str = "grid", by: str = "GW-1", satisfied=True, on_time=True):
        """registered -> dispatched -> accepted -> resolved -> verified -> closed fixed."""
        self.registered()
        self.dispatched(*(departments or ("urban_management",)), level=level)
        for d in departments or ("urban_management",):
            self.work_order(d, "accept")
            self.work_order(d, "resolve", minutes=60)
        self.resolved()
        self.verified(by)
        self.closed(satisfied=satisfied, on_time=on_time)
        return self


def as_event(e) -> Event:
    type_, data, eid, at = e
    return Event(eid, type_, at, data)


def publish(bus, tenant: str, events) -> None:
    """Each event as the lifecycle publishes it: onegrid.events, routing key = type."""
    for type_, data, eid, at in events:
        env = ce.new(
            tenant=tenant,
            department="governance",
            type=type_,
            source=f"/{tenant}/lifecycle",
            subject=data["id"],
            id=eid,
            time=at,
        )
        bus.publish(env, data)
