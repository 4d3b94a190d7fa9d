"""The command-centre page's decisions: which inbox a person sees (by role and scope), which
actions a case offers them, and whether an uploaded photo is one. Pure: the access policy
(onegrid.domain.access) and the lifecycle (onegrid.domain.lifecycle) decide, this only asks them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from onegrid.domain import lifecycle as lc
from onegrid.domain.access import (
    DEPARTMENT_STAFF,
    GRID_WORKER,
    OPERATOR,
    RULES,
    SCOPE_LEVEL,
    Principal,
    case_resource,
    decide,
    within,
)
from onegrid.domain.ladder import LIVE
from onegrid.kernel.tenant import Tenant

# the inbox's trays, in the order the page shows them
OVERDUE, AT_MY_LEVEL, WHISTLED, TO_VERIFY = "overdue", "my_level", "whistled", "to_verify"
SUGGESTED, DUPLICATES = "suggested", "duplicates"  # routing's duplicate suggestions; its merges
TRAYS = (OVERDUE, AT_MY_LEVEL, WHISTLED, TO_VERIFY, SUGGESTED, DUPLICATES)
WORKED = ("registered", "dispatched", "in_progress", "reopened")  # a whistle or a take-over applies
LIST_DUPLICATES = "duplicates.list"
# the page's actions: (name, the access action that allows it)
ACTIONS = {
    "whistle": "case.whistle",
    "take_over": "case.whistle",  # a whistle to the person's own level
    "verify": "case.act",
    "verify_failed": "case.act",
    "close_not_fixed": "case.act",
    "reject": "case.act",
    "extension": "extension.decide",
    "evidence": "case.act",
    "confirm_duplicate": "case.duplicate",  # supervision's duplicates desk (docs/duplicates.md)
    "dismiss_duplicate": "case.duplicate",
    "unmerge": "case.duplicate",
}
# the page's duplicate decisions (POST /console/cases/<id>/duplicate/<decision>) and their actions
DUPLICATE_ACTIONS = {"confirm": "confirm_duplicate", "dismiss": "dismiss_duplicate", "unmerge": "unmerge"}
PHOTO_TYPES = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",), "image/webp": (b"RIFF",)}
MAX_PHOTO_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Tray:
    """One tray of the inbox: its name, how many cases are in it, and the first of them."""

    name: str
    count: int
    cases: tuple[dict, ...]


def my_level(tenant: Tenant, who: Principal) -> str | None:
    """The level a person works at, where an escalation lands on their desk: the command
    centre's operators at the ladder's top, a scoped officer at their scope's level."""
    if who.role == OPERATOR:
        return tenant.top
    if who.role in SCOPE_LEVEL:
        node = tenant.nodes.get(who.scope)
        return node.level if node is not None else None
    return None


def owed_item(case: dict, unit: str) -> dict | None:
    """The escalation item the office of `unit` still owes on the case (open or acknowledged)."""
    live = [i for i in case.get("escalations") or [] if i.get("unit") == unit and i.get("status") in LIVE]
    return live[-1] if live else None


def sees(tenant: Tenant, who: Principal, case: dict) -> bool:
    """Is the case in the person's part of the county (their subtree, or their department's)?"""
    if who.role in SCOPE_LEVEL:
        return within(tenant, str(case.get("grid", "")), who.scope)
    if who.role == DEPARTMENT_STAFF:
        return who.scope in case_resource(case).departments
    return True


def whistled(timeline: list[dict]) -> bool:
    return any(line.get("action") == "whistle" for line in timeline)


def trays_of(who: Principal) -> tuple[str, ...]:
    """The trays a role has: a department's staff have no level of their own to be escalated
    to, verification is the grid tree's work, and duplicate suggestions are for the roles the
    policy lets list them (`duplicates.list`)."""
    if who.role == DEPARTMENT_STAFF:
        trays: tuple[str, ...] = (OVERDUE, WHISTLED)
    elif who.role == GRID_WORKER:
        trays = (OVERDUE, TO_VERIFY, DUPLICATES)
    else:
        trays = TRAYS
    return tuple(t for t in trays if t != SUGGESTED or who.role in RULES[LIST_DUPLICATES])


def shows_suggestion(tenant: Tenant, who: Principal, case: dict) -> bool:
    """Does the case's page show its open duplicate suggestion to the person (`duplicates.list`)?"""
    open_ = (case.get("duplicate") or {}).get("status") == "open"
    return open_ and decide(tenant, who, LIST_DUPLICATES, case_resource(case)).allowed


def sees_suggestion(tenant: Tenant, who: Principal, row: dict) -> bool:
    """May the person see this suggestion (supervision's list row): both cases in their part
    of the county, and the policy's `duplicates.list` on each case's place."""
    briefs = [row.get("case") or {}, row.get("primary") or {}]
    return all(
        b.get("grid") and sees(tenant, who, b) and decide(tenant, who, LIST_DUPLICATES, case_resource(b)).allowed
        for b in briefs
    )


def actions_for(tenant: Tenant, who: Principal, case: dict) -> list[str]:
    """The page's actions the person may take on the case in its present state (`duplicate`:
    the case's duplicate suggestion, if routing left one)."""
    status = str(case.get("status", ""))
    suggested = (case.get("duplicate") or {}).get("status") == "open" and status in lc.OPEN_CASE
    resource = case_resource(case)
    fits = {
        "whistle": status in WORKED,
        "take_over": status in WORKED and _below(tenant, case.get("level") or "", my_level(tenant, who)),
        "verify": status == "resolved",
        "verify_failed": status == "resolved",
        "close_not_fixed": (status, "close_not_fixed") in lc.CASE_TRANSITIONS,
        "reject": (status, "reject") in lc.CASE_TRANSITIONS,
        "extension": any(w.get("status") == "extension_requested" for w in case.get("work_orders") or ()),
        "evidence": status in lc.OPEN_CASE,
        "confirm_duplicate": suggested,
        "dismiss_duplicate": suggested,
        "unmerge": status == "merged",
    }
    return [name for name, access in ACTIONS.items() if fits[name] and decide(tenant, who, access, resource).allowed]


def _below(tenant: Tenant, level: str, mine: str | None) -> bool:
    if mine is None or not tenant.is_level(mine):
        return False
    return not tenant.is_level(level) or tenant.is_higher(mine, level)


@dataclass(frozen=True)
class Photo:
    content_type: str
    size: int
    sha256: str
    extension: str


class NotAPhoto(ValueError):
    """The upload is empty, too large, or not a JPEG, PNG or WebP by its first bytes."""


def check_photo(data: bytes, claimed: str = "") -> Photo:
    """What the bytes are (their magic, not the claimed type), or NotAPhoto."""
    if not data:
        raise NotAPhoto("the file is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise NotAPhoto(f"a photo is at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB (this one is {len(data)} bytes)")
    for content_type, magics in PHOTO_TYPES.items():
        if any(data.startswith(m) for m in magics) and (content_type != "image/webp" or data[8:12] == b"WEBP"):
            if claimed and claimed.split(";")[0].strip() not in (content_type, "application/octet-stream"):
                raise NotAPhoto(f"the file says {claimed} but its bytes are {content_type}")
            ext = content_type.split("/")[1].replace("jpeg", "jpg")
            return Photo(content_type, len(data), hashlib.sha256(data).hexdigest(), ext)
    raise NotAPhoto("not a JPEG, PNG or WebP photo (checked by its first bytes)")
