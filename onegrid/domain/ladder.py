"""The escalation item (督办单): what an office receives when a case climbs to its level.

When a case goes up the ladder, the office of the new level (the unit of the tree above the
case's grid at that level, e.g. its street's 街道办) gets an item on its own queue. The office
must acknowledge it within its rung's `acknowledge` span and then act on it (take over, whistle
departments, grant an extension, close not fixed) within `act`; a deadline missed sends the
case up again and the item is marked so. Items live on the case record (`escalations`, oldest
first; at most one live at a time) so one transaction moves the case and its item; the office
queues (`office:<unit>:queue`) list them. Pure rules: no storage here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from onegrid.domain.cases import CaseLike
from onegrid.kernel.spans import Span
from onegrid.kernel.tenant import Tenant

# when a span started at an epoch second falls due: the tenant's Schedule.due (its calendar for
# working hours and days, the time scale), so a rung may be written 2h, 1wd or 4wh
Due = Callable[[float, Span], float]

LIVE = ("open", "acknowledged")  # an office still owes something on it
# open → acknowledged → acted; open|acknowledged → passed_up (the case went higher: missed, or
# escalated past it) or → closed (the case ended first)
ITEM_STATES = ("open", "acknowledged", "acted", "passed_up", "closed")
OFFICE_ACTIONS = ("take_over", "whistle", "extend", "close_not_fixed")
TIMER = "office"
ITEM_ID = re.compile(
    r"^e-[0-9a-f]{16}-[a-z][a-z0-9_]{1,30}$"
)  # the timer kind of an item's deadline; its subject is the item id


@dataclass(frozen=True)
class Item:
    id: str
    case_id: str
    level: str
    unit: str  # the tree node whose office receives it
    office: str  # the rung's office name
    from_level: str
    reason: str  # why the case climbed: overdue_acknowledge, office_unacknowledged, whistle, ...
    status: str
    opened_at: str
    due: float  # the deadline now running: acknowledge while open, act once acknowledged
    acknowledged_by: str = ""
    acknowledged_at: str = ""
    acted_by: str = ""
    acted_at: str = ""
    action: str = ""  # what the office did (one of OFFICE_ACTIONS)
    fired: float = 0.0  # the `due` a deadline last fired for (a timer fires at least once)

    @classmethod
    def of(cls, raw: dict) -> Item:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in raw.items() if k in names})

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def live(self) -> bool:
        return self.status in LIVE


def item_id(case_id: str, level: str) -> str:
    """One item per case and level: a case only ever climbs, so it reaches a level once."""
    return f"e-{case_id[2:]}-{level}"


def case_of(item: str) -> str:
    """The case an item id belongs to (LookupError when it cannot be an item's id)."""
    if not ITEM_ID.match(item):  # never a key built from junk
        raise LookupError(f"no escalation item {item[:80]}: an item id is e-<16 hex digits>-<level>")
    return f"c-{item.split('-')[1]}"


def office_unit(tenant: Tenant, item: str, grid: str) -> str:
    """The node of the tree whose office owns the item `item` of a case in `grid`: the grid's
    unit at the item's level (LookupError when the id or the level does not fit)."""
    case_of(item)  # the id checked
    node = tenant.ancestor_or_none(grid, item.rsplit("-", 1)[1])
    if node is None:
        raise LookupError(f"no escalation item {item[:80]} in {tenant.id}")
    return node.code


def items_of(case: CaseLike) -> list[Item]:
    return [Item.of(x) for x in case.get("escalations") or [] if isinstance(x, dict)]


def live_item(case: CaseLike) -> Item | None:
    live = [i for i in items_of(case) if i.live]
    return live[-1] if live else None


def open_item(
    tenant: Tenant, case_id: str, unit: str, level: str, from_level: str, reason: str, now: float, at: str, due: Due
) -> Item:
    rung = tenant.rung(level)
    return Item(
        item_id(case_id, level),
        case_id,
        level,
        unit,
        rung.office,
        from_level,
        reason,
        "open",
        at,
        due(now, rung.acknowledge),
    )


def acknowledge(tenant: Tenant, item: Item, actor: str, now: float, at: str, due: Due) -> Item:
    """The office has it: the act deadline starts."""
    if item.status != "open":
        raise ValueError(f"escalation {item.id} is {item.status}; only an open one is acknowledged")
    act = due(now, tenant.rung(item.level).act)
    return replace(item, status="acknowledged", acknowledged_by=actor, acknowledged_at=at, due=act)


def acted(item: Item, actor: str, action: str, at: str) -> Item:
    by, when = (item.acknowledged_by, item.acknowledged_at) if item.acknowledged_by else (actor, at)
    return replace(
        item, status="acted", acted_by=actor, acted_at=at, action=action, acknowledged_by=by, acknowledged_at=when
    )


@dataclass(frozen=True)
class Missed:
    reason: str  # office_unacknowledged | office_did_not_act
    escalate_to: str | None  # None: the top, stays flagged


def on_due(tenant: Tenant, item: Item, due: float, grid: str) -> Missed | None:
    """What an item's deadline passing means; None when it is moot (acted, passed up, closed,
    a deadline that moved, or one that fired already)."""
    if not item.live or item.due != due or item.fired == due:
        return None
    reason = "office_unacknowledged" if item.status == "open" else "office_did_not_act"
    return Missed(reason, tenant.next_level(item.level, grid))


def below(tenant: Tenant, grid: str, level: str) -> list[tuple[str, str]]:
    """(level, unit) of every unit under `level` on the grid's path, bottom up: who is told
    that the case went above them (the grid's worker, then each lower office)."""
    out = []
    for node in tenant.path(grid):
        if node.level == level:
            break
        out.append((node.level, node.code))
    return out
