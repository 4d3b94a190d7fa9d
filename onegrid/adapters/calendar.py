"""The Chinese working calendar (onegrid.domain.calendar.WorkCalendar) from the
`chinesecalendar` package: weekends, statutory holidays and make-up workdays (调休).

A year the package does not know yet (it learns each year from the State Council's notice,
published late in the year before) falls back to weekends only, counted in
onegrid_calendar_fallback_days_total{year} and logged once per year: a deadline is never
refused for want of a holiday table, and a tenant can list the year's holidays and workdays in
its manifest's `calendar:` until the package is updated (docs/lifecycle.md).
"""

from __future__ import annotations

import logging
from datetime import date

import chinese_calendar

from onegrid.kernel import metrics

log = logging.getLogger(__name__)


class ChineseCalendar:
    def __init__(self) -> None:
        self._warned: set[int] = set()
        # the package's answers, kept: it scans its whole holiday table for its year range on
        # every call (4% of routing's time, a deadline's days looked up per work order)
        self._known: dict[date, bool] = {}

    def knows(self, year: int) -> bool:
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True

    def is_workday(self, day: date) -> bool:
        known = self._known.get(day)
        if known is not None:
            return known
        try:
            known = self._known[day] = bool(chinese_calendar.is_workday(day))
            return known
        except NotImplementedError:
            metrics.CALENDAR_FALLBACK.labels(str(day.year)).inc()
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning("calendar: no holiday data for %s; weekends only (list its days in calendar:)", day.year)
            return day.weekday() < 5


CHINA = ChineseCalendar()
