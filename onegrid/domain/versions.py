"""Contract versions in use: what intake counted of each version and department, and whether
a county may retire a version (stop accepting it).

A version is in use while any department sent an event of it within RECENT_USE_DAYS; the
registry refuses to retire it until then (a department still sending it would see its events
quarantined as `unknown_version`). Pure: the counts come from the store.
"""

from __future__ import annotations

from dataclasses import dataclass

RECENT_USE_DAYS = 30
DAY = 86400.0


@dataclass(frozen=True)
class Use:
    """Events of one contract version one department sent that intake accepted."""

    key: str  # `<department>.<type>`
    version: int
    department: str  # the sender (a department id)
    events: int
    last_seen: float  # epoch seconds of the latest one

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "version": self.version,
            "department": self.department,
            "events": self.events,
            "last_seen": self.last_seen,
        }


def field_of(key: str, version: int, department: str) -> str:
    """The store's name of one (version, department) counter."""
    return f"{key}:{version}|{department}"


def parse_field(name: str) -> tuple[str, int, str] | None:
    head, _, department = name.rpartition("|")
    key, _, version = head.rpartition(":")
    if not key or not department or not version.isdigit():
        return None
    return key, int(version), department


def retire_refusal(uses: list[Use], key: str, version: int, now: float, days: int = RECENT_USE_DAYS) -> str | None:
    """Why `key` v`version` may not be retired now (None: it may): the departments that sent
    it within the last `days` days."""
    since = now - days * DAY
    recent = sorted(u.department for u in uses if u.key == key and u.version == version and u.last_seen >= since)
    if not recent:
        return None
    return (
        f"{key} v{version} is in use: {', '.join(recent)} sent it within the last {days} days; "
        "retire it once no department has sent it for that long"
    )
