"""When a deadline falls due: clock time, working hours or working days on a calendar.

A span (onegrid.kernel.spans) in clock time is added; one in working hours counts only the
time inside the working day's sessions (08:30–12:00 and 13:30–17:30 Beijing time unless the
tenant's `calendar:` says otherwise); one in working days ends at the close of the Nth working
day after the day it starts (the start day is not counted: 开始的当日不计入, Civil Code
art. 201). Which days are working days is a port, `WorkCalendar`: the adapter
(onegrid.adapters.calendar) reads the Chinese statutory holidays and make-up workdays (调休);
tests use a fake. The tenant may add the holidays and workdays of a year the holiday data does
not know yet (the State Council's notice for the next year comes out in November or so).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Protocol

from onegrid.kernel.spans import Span
from onegrid.kernel.tenant import Tenant

MAX_DAYS = 3660  # a span looked for this many days ahead without its end is a broken calendar
_SESSION = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_OFFSET = re.compile(r"^([+-])([01][0-9]|2[0-3]):([0-5][0-9])$")
KEYS = ("working_hours", "utc_offset", "holidays", "workdays")


class WorkCalendar(Protocol):
    """Which days are working days."""

    def is_workday(self, day: date) -> bool: ...


class WeekendsOnly:
    """Monday to Friday are working days: fakes in tests, and what the adapter falls back to
    for a year its holiday data does not know."""

    def is_workday(self, day: date) -> bool:
        return day.weekday() < 5


WEEKENDS_ONLY = WeekendsOnly()


@dataclass(frozen=True)
class Overrides:
    """A calendar with a tenant's own holidays and workdays on top. A year with any date listed
    here is the tenant's: its other days follow the weekends, not `base`."""

    base: WorkCalendar
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    years: frozenset[int] = field(init=False)  # the years the tenant lists days of

    def __post_init__(self) -> None:
        object.__setattr__(self, "years", frozenset(d.year for d in self.holidays | self.workdays))

    def is_workday(self, day: date) -> bool:
        if day in self.holidays:
            return False
        if day in self.workdays:
            return True
        if day.year in self.years:
            return day.weekday() < 5
        return self.base.is_workday(day)


@dataclass(frozen=True)
class WorkingHours:
    sessions: tuple[tuple[int, int], ...]  # (start, end) minutes after local midnight, in order
    utc_offset: int  # minutes east of UTC

    @property
    def tz(self) -> timezone:
        return timezone(timedelta(minutes=self.utc_offset))

    def at(self, day: date, minute: int) -> datetime:
        return datetime.combine(day, time(0), self.tz) + timedelta(minutes=minute)


BEIJING = 8 * 60
DEFAULT_HOURS = WorkingHours(((8 * 60 + 30, 12 * 60), (13 * 60 + 30, 17 * 60 + 30)), BEIJING)


def due_at(start: datetime, span: Span, calendar: WorkCalendar, hours: WorkingHours = DEFAULT_HOURS) -> datetime:
    """When a deadline of `span` started at `start` (aware) falls due, in the working day's zone."""
    if start.tzinfo is None:
        raise ValueError("due_at needs an aware start time")
    if not span.on_calendar:
        return start + timedelta(seconds=span.seconds)
    local = start.astimezone(hours.tz)
    if span.unit == "wd":
        return _working_days(local, span.amount, calendar, hours)
    return _working_hours(local, span.amount * 3600, calendar, hours)


def _working_days(local: datetime, n: int, calendar: WorkCalendar, hours: WorkingHours) -> datetime:
    day, counted = local.date(), 0
    for _ in range(MAX_DAYS):
        day += timedelta(days=1)
        if calendar.is_workday(day):
            counted += 1
            if counted == n:
                return hours.at(day, hours.sessions[-1][1])
    raise ValueError(f"no {n} working days within {MAX_DAYS} days of {local.isoformat()}")


def _working_hours(local: datetime, seconds: float, calendar: WorkCalendar, hours: WorkingHours) -> datetime:
    day, cursor, left = local.date(), local, seconds
    for _ in range(MAX_DAYS):
        if calendar.is_workday(day):
            for begin_m, end_m in hours.sessions:
                begin, end = max(hours.at(day, begin_m), cursor), hours.at(day, end_m)
                if begin >= end:
                    continue
                if left <= (end - begin).total_seconds():
                    return begin + timedelta(seconds=left)
                left -= (end - begin).total_seconds()
        day += timedelta(days=1)
    raise ValueError(f"no {seconds / 3600:g} working hours within {MAX_DAYS} days of {local.isoformat()}")


@dataclass(frozen=True)
class Schedule:
    """A tenant's deadlines clock: its calendar and working day, and the time scale.
    ONEGRID_TIME_SCALE compresses a working span as it does a clock span: the span is found on
    the calendar from the real moment it starts, then its length is divided by the scale."""

    calendar: WorkCalendar
    hours: WorkingHours = DEFAULT_HOURS
    scale: float = 1.0

    def due(self, start: float, span: Span) -> float:
        """The epoch second a deadline of `span` started at `start` (epoch) falls due."""
        if not span.on_calendar:
            return start + span.seconds / self.scale
        real = due_at(datetime.fromtimestamp(start, UTC), span, self.calendar, self.hours).timestamp()
        return start + (real - start) / self.scale


def schedule(tenant: Tenant, calendar: WorkCalendar, scale: float = 1.0) -> Schedule:
    """`tenant`'s schedule on `calendar` (its `calendar:` section read; check_calendar refused
    a bad one at load)."""
    section = tenant.source.get("calendar") or {}
    sessions = tuple(_session(s) for s in section.get("working_hours") or ()) or DEFAULT_HOURS.sessions
    offset = _offset(section["utc_offset"]) if "utc_offset" in section else BEIJING
    holidays, workdays = (frozenset(_day(d) for d in section.get(k) or ()) for k in ("holidays", "workdays"))
    cal = Overrides(calendar, holidays, workdays) if holidays or workdays else calendar
    return Schedule(cal, WorkingHours(sessions, offset), scale)


def check_calendar(section) -> list[tuple[str, str]]:
    """(path, reason) problems of a manifest's `calendar:` section."""
    if section is None:
        return []
    if not isinstance(section, dict):
        return [("calendar", "must be a map")]
    problems = [(f"calendar.{k}", f"unknown key; {', '.join(KEYS)}") for k in section if k not in KEYS]
    sessions = section.get("working_hours", [])
    if not isinstance(sessions, list) or ("working_hours" in section and not sessions):
        problems.append(("calendar.working_hours", "must list sessions like '08:30-12:00'"))
        sessions = []
    last = -1
    for i, text in enumerate(sessions):
        try:
            begin, end = _session(text)
        except ValueError as e:
            problems.append((f"calendar.working_hours[{i}]", str(e)))
            continue
        if begin <= last:
            problems.append((f"calendar.working_hours[{i}]", "sessions must be in order and not overlap"))
        last = end
    if "utc_offset" in section:
        try:
            _offset(section["utc_offset"])
        except ValueError as e:
            problems.append(("calendar.utc_offset", str(e)))
    for key in ("holidays", "workdays"):
        days = section.get(key, [])
        if not isinstance(days, list):
            problems.append((f"calendar.{key}", "must list dates like 2027-01-01"))
            continue
        for i, d in enumerate(days):
            try:
                _day(d)
            except ValueError as e:
                problems.append((f"calendar.{key}[{i}]", str(e)))
    both = {str(d) for d in section.get("holidays") or []} & {str(d) for d in section.get("workdays") or []}
    if isinstance(section.get("holidays"), list) and isinstance(section.get("workdays"), list) and both:
        problems.append(("calendar.workdays", f"{sorted(both)} listed as holidays too"))
    return problems


def _session(text: object) -> tuple[int, int]:
    match = _SESSION.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a session like '08:30-12:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    begin, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= begin or end > 24 * 60:
        raise ValueError(f"{text!r} must end after it starts, by 24:00")
    return begin, end


def _offset(text: object) -> int:
    match = _OFFSET.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not an offset from UTC like '+08:00'")
    sign = -1 if match[1] == "-" else 1
    return sign * (int(match[2]) * 60 + int(match[3]))


def _day(value: object) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads 2027-01-01 as a date
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date like 2027-01-01")
