"""What-if before a change, from the bus's own history (onegrid.app.history).

`manifest`: the county's cases of a window, as the history recorded them, simulated in process
(onegrid.domain.whatif) through the current manifest and through a proposed one, side by side.
In process rather than in a second live county: the same domain functions the services run
(routing, deadlines, the ladder, the points table), no timers to wait out (a year of deadlines
is a loop, not a year), nothing on the bus, and the same input for both sides, so every
difference is the tables' and none is a race.

`contract`: every event of the window (accepted and quarantined) judged again by intake's own
`admit` under the current registry and under one with a proposed department contract: the
events a department sent that would now be refused, or newly accepted, with the reasons.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from onegrid.app.history import ACCEPTED, Window, accepted_event, entries, quarantined_event
from onegrid.app.ports import HistoryReader
from onegrid.contracts import Registry
from onegrid.domain import scoring
from onegrid.domain import whatif as sim
from onegrid.domain.calendar import WEEKENDS_ONLY, WorkCalendar
from onegrid.domain.intake import Rejected, admit
from onegrid.domain.onsite import settled_on_site
from onegrid.kernel import topology
from onegrid.kernel.tenant import Tenant


def _epoch(value) -> float | None:
    return scoring.epoch(value)


def _case_of(data: dict) -> str | None:
    """The case a lifecycle event is about: a case snapshot's id, a work order's case."""
    if "work_order" in data or str(data.get("id", "")).startswith("c-"):
        return data.get("id")
    return data.get("case_id")


def observe(reader: HistoryReader, window: Window, now: float) -> tuple[list[sim.Observed], float]:
    """The cases registered in `window` and what happened to them (until now), and the horizon
    an unanswered deadline runs to (the window's end, or now)."""
    cases = {e.data["id"]: e for e in entries(reader, topology.HISTORY_INTAKE, window) if e.type == ACCEPTED}
    facts: dict[str, dict] = {cid: {} for cid in cases}
    for e in entries(reader, topology.HISTORY_LIFECYCLE, Window(window.since, None)):
        cid = _case_of(e.data)
        if cid not in facts:
            continue
        f = facts[cid]
        wo = e.data.get("work_order") or (e.data if e.type.startswith("work_order.") else {})
        if e.type == "work_order.accepted":
            at = _epoch(wo.get("accepted_at")) or e.at
            f["accepted"] = min(f.get("accepted", at), at)
        elif e.type == "work_order.resolved":
            f["resolved"] = max(f.get("resolved", 0.0), _epoch(wo.get("resolved_at")) or e.at)
        elif e.type == "case.resolved":
            f["resolved"] = max(f.get("resolved", 0.0), e.at)
            f["on_site"] = f.get("on_site", True) and settled_on_site(e.data)  # held for its check
        elif e.type == "case.dispatched":
            f["on_site"] = False  # a check found it not fixed, or it never was on site
        elif e.type == "case.verified":
            f["verified"], f["verified_by"] = True, e.data.get("verified_by") or f.get("verified_by")
        elif e.type == "case.closed":
            f["closed"] = _epoch(e.data.get("closed_at")) or e.at
            f["fixed"], f["satisfied"] = e.data.get("outcome") == "fixed", e.data.get("satisfied")
            f["verified_by"] = f.get("verified_by") or e.data.get("verified_by")
            f["on_site"] = f.get("on_site", True) and settled_on_site(e.data)
    out = []
    for cid, entry in cases.items():
        case = entry.data
        out.append(
            sim.Observed(
                cid,
                case["category"],
                case["severity"],
                case["grid"],
                float(case.get("at") or entry.at),
                reporter=case.get("reporter") or {},
                **facts[cid],
            )
        )
    horizon = min(now, window.until) if window.until is not None else now
    return out, horizon


@dataclass(frozen=True)
class ManifestWhatIf:
    current: sim.Figures
    proposed: sim.Figures

    def as_dict(self, top: int = 10) -> dict:
        """Both sides' figures and the comparisons `onegrid whatif manifest` prints (every
        department and level, the `top` grid workers whose points change most), as JSON."""
        return {
            "current": _figures(self.current),
            "proposed": _figures(self.proposed),
            "summary": [_change(c) for c in sim.summary(self.current, self.proposed)],
            "work_orders": [_change(c) for c in sim.compare_work_orders(self.current, self.proposed)],
            "points": [_change(c) for c in sim.compare_points(self.current, self.proposed, top)],
        }


def _figures(f: sim.Figures) -> dict:
    orders = [{"department": d, "level": lvl, "work_orders": n} for (d, lvl), n in sorted(f.work_orders.items())]
    return {
        "cases": f.cases,
        "work_orders": orders,
        "overdue": f.overdue,
        "overdue_rate": round(f.overdue_rate, 4),
        "escalations": f.escalations,
        "points": dict(sorted(f.points.items())),
    }


def _change(c: sim.Change) -> dict:
    return {"what": c.what, "current": c.current, "proposed": c.proposed, "delta": c.delta}


def manifest(
    reader: HistoryReader,
    current: Tenant,
    proposed: Tenant,
    window: Window,
    now: float,
    calendar: WorkCalendar = WEEKENDS_ONLY,
) -> ManifestWhatIf:
    """The window's cases through both manifests' routing, deadline and points tables;
    `calendar` says which days are working days (the callers pass the Chinese one)."""
    observed, horizon = observe(reader, window, now)
    return ManifestWhatIf(
        sim.simulate(current, scoring.parse_config(current.source, current), observed, horizon, calendar),
        sim.simulate(proposed, scoring.parse_config(proposed.source, proposed), observed, horizon, calendar),
    )


# -- a proposed contract ------------------------------------------------------------------------
@dataclass(frozen=True)
class Rejudged:
    """One event whose verdict the proposed contract changes."""

    department: str
    event_type: str
    event_id: str
    before: str  # accepted, or the reason it is refused now
    after: str
    detail: str  # why it is refused under the proposed contract (empty when newly accepted)


@dataclass
class ContractWhatIf:
    judged: Counter = field(default_factory=Counter)  # department -> events judged again
    changed: list[Rejudged] = field(default_factory=list)

    def by_department(self) -> list[tuple[str, int, int, int]]:
        """(department, judged, now refused, newly accepted)."""
        refused: Counter = Counter(c.department for c in self.changed if c.before == "accepted")
        accepted: Counter = Counter(c.department for c in self.changed if c.after == "accepted")
        return [(d, n, refused[d], accepted[d]) for d, n in sorted(self.judged.items())]


def _verdict(raw, tenant: Tenant, registry: Registry, department: str | None) -> tuple[str, str]:
    verdict = admit(raw, tenant, registry, department)
    return (verdict.reason, verdict.detail) if isinstance(verdict, Rejected) else ("accepted", "")


def contract(
    reader: HistoryReader,
    tenant: Tenant,
    current: Registry,
    proposed: Registry,
    window: Window,
    departments: set[str] | None = None,
) -> ContractWhatIf:
    """Every accepted and quarantined event of `window` (of `departments`, default all) judged by
    intake's `admit` under `current` and `proposed`: those whose verdict changes."""
    out = ContractWhatIf()
    for e in entries(reader, topology.HISTORY_INTAKE, window):
        if e.type == ACCEPTED:
            raw, dept = accepted_event(e.data, tenant.id), e.data["department"]
            event_id = e.data["event_id"]
        elif e.type == topology.QUARANTINED:
            raw, dept = quarantined_event(e.data), str(e.data.get("department") or "unknown")
            event_id = str(e.data.get("quarantine_id") or e.id)
        else:
            continue
        if departments is not None and dept not in departments:
            continue
        who = dept if dept in current.departments else None  # as intake authenticated it
        before, _ = _verdict(raw, tenant, current, who)
        after, detail = _verdict(raw, tenant, proposed, who)
        out.judged[dept] += 1
        if before != after:
            kind = e.data.get("event_type") or raw.routing_key or e.data.get("headers", {}).get("ce-type") or "?"
            out.changed.append(Rejudged(dept, str(kind), event_id, before, after, detail))
    return out
