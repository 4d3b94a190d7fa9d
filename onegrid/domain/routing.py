"""Routing: which level handles a case, and which departments get a work order.

"Small things don't leave the grid, minor ones don't leave the community, big ones don't
leave the street": the tenant's ordered routing table decides, first match wins, so the
same case always routes the same way. A case no rule covers goes to the command centre.
"""
from __future__ import annotations

from dataclasses import dataclass

from onegrid.tenant import COMMAND_CENTRE, Tenant


@dataclass(frozen=True)
class Decision:
    level: str
    unit: str                     # code of the grid-tree node at that level
    departments: tuple[str, ...]  # one work order each
    alternates: tuple[str, ...]   # tried in order when a department returns its work order
    rule: int | None              # index in the routing table; None: no rule matched
    reason: str                   # "rule" | "no_rule_matched" | "returned_by_all"


def route(tenant: Tenant, category: str, severity: str, grid: str) -> Decision:
    for index, rule in enumerate(tenant.routing):
        if rule.matches(category, severity):
            level = rule.values["level"]
            return Decision(level, tenant.ancestor(grid, level).code, tuple(rule.values["departments"]),
                            tuple(rule.values.get("alternates") or ()), index, "rule")
    return command_centre(tenant, "no_rule_matched")


def command_centre(tenant: Tenant, reason: str) -> Decision:
    return Decision("county", tenant.root, (COMMAND_CENTRE,), (), None, reason)


def reroute(tenant: Tenant, decision: Decision, tried: set[str]) -> tuple[str, str]:
    """The department to try after a return, and why: the next untried alternate, else the
    command centre, which dispatches by hand."""
    for dept in decision.alternates:
        if dept not in tried:
            return dept, "alternate"
    return COMMAND_CENTRE, "returned_by_all"
