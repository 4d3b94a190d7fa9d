"""Routing: which level handles a case, and which departments get a work order.

"Small things don't leave the grid, minor ones don't leave the community, big ones don't
leave the street": the tenant's ordered routing table decides, first match wins, so the
same case always routes the same way. A case no rule covers goes to the command centre.
"""

from __future__ import annotations

from dataclasses import dataclass

from onegrid.kernel.tenant import COMMAND_CENTRE, Tenant


@dataclass(frozen=True)
class Decision:
    level: str
    unit: str  # code of the grid-tree node at that level
    departments: tuple[str, ...]  # one work order each
    alternates: tuple[str, ...]  # tried in order when a department returns its work order
    rule: int | None  # index in the routing table; None: no rule matched
    reason: str  # "rule" | "no_rule_matched" | "returned_by_all"


@dataclass(frozen=True)
class Dispatch:
    """A dispatch to record: the work orders a decision makes of a case, when, and the grid
    worker's arrival deadline when it is the case's first (None: none to arm)."""

    case: dict
    decision: Decision
    work_orders: list[dict]
    at: str
    arrival: float | None = None


def route(tenant: Tenant, category: str, severity: str, grid: str) -> Decision:
    for index, rule in enumerate(tenant.routing):
        if rule.matches(category, severity):
            level, unit = placed(tenant, grid, rule.values["level"])
            return Decision(
                level,
                unit,
                tuple(rule.values["departments"]),
                tuple(rule.values.get("alternates") or ()),
                index,
                "rule",
            )
    return command_centre(tenant, "no_rule_matched")


def placed(tenant: Tenant, grid: str, level: str) -> tuple[str, str]:
    """The level that handles a case of `grid` asked at `level`, and its unit there: a dedicated
    grid beside the tree (a school's under a street) has no unit at the levels it skips, so
    the nearest level above that it hangs under takes it."""
    unit = tenant.ancestor_or_none(grid, level)
    if unit is None:
        level = tenant.next_level(level, grid) or tenant.top
        unit = tenant.ancestor(grid, level)
    return level, unit.code


def command_centre(tenant: Tenant, reason: str) -> Decision:
    return Decision(tenant.top, tenant.root, (COMMAND_CENTRE,), (), None, reason)


def reroute(tenant: Tenant, decision: Decision, tried: set[str]) -> tuple[str, str]:
    """The department to try after a return, and why: the next untried alternate, else the
    command centre, which dispatches by hand."""
    for dept in decision.alternates:
        if dept not in tried:
            return dept, "alternate"
    return COMMAND_CENTRE, "returned_by_all"
