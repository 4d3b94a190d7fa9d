"""Deadlines in working hours and working days: the pure rules on a fake calendar, the real
Chinese calendar (2026's Spring Festival, National Day, 调休 Saturdays) through the adapter,
the tenant's `calendar:` section and the what-if (re-arming: test_casework_rules.py)."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta, timezone

import pytest

from onegrid.adapters.calendar import CHINA, ChineseCalendar
from onegrid.domain import whatif as sim
from onegrid.domain.calendar import (
    DEFAULT_HOURS,
    WEEKENDS_ONLY,
    Overrides,
    Schedule,
    check_calendar,
    due_at,
    schedule,
)
from onegrid.kernel import metrics
from onegrid.kernel.spans import Span, parse_duration, parse_span, span_problem

from .helpers import QINLING, registry

BJ = timezone(timedelta(hours=8))


def bj(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BJ)


def due(start: str, span: str, calendar=CHINA) -> str:
    found = parse_span(span)
    assert found is not None
    return due_at(bj(start), found, calendar).strftime("%Y-%m-%d %H:%M")


class Holidays:
    """A fake calendar: weekends plus the days given."""

    def __init__(self, *days: date) -> None:
        self.days = set(days)

    def is_workday(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.days


# -- the one parser ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "span"), [("10m", Span(10, "m")), ("8wh", Span(8, "wh")), ("2wd", Span(2, "wd"))])
def test_spans_parse_in_every_unit(text, span):
    assert parse_span(text) == span and str(span) == text


def test_parse_duration_is_clock_time_only():
    assert parse_duration("3d") == 3 * 86400
    assert parse_duration("2wd") is None and span_problem("2wd") is None


def test_a_working_span_has_no_length_in_seconds():
    with pytest.raises(ValueError, match="on the calendar"):
        _ = Span(2, "wd").seconds


# -- pure rules on a fake calendar ------------------------------------------------------------
def test_clock_spans_are_added_whatever_the_day():
    assert due("2026-02-14 23:00", "2h", WEEKENDS_ONLY) == "2026-02-15 01:00"


def test_working_days_start_counting_the_day_after_and_end_at_the_close():
    # Wednesday: Thursday is the 1st working day, Friday the 2nd; it ends at 17:30
    assert due("2026-03-04 09:00", "2wd", WEEKENDS_ONLY) == "2026-03-06 17:30"
    # Friday evening: Monday and Tuesday
    assert due("2026-03-06 20:00", "2wd", WEEKENDS_ONLY) == "2026-03-10 17:30"
    # a fake holiday on Monday moves it a day
    assert due("2026-03-06 20:00", "2wd", Holidays(date(2026, 3, 9))) == "2026-03-11 17:30"


def test_working_hours_skip_lunch_nights_and_weekends():
    assert due("2026-03-04 11:00", "2wh", WEEKENDS_ONLY) == "2026-03-04 14:30"  # 1h before lunch, 1h after
    assert due("2026-03-04 07:00", "1wh", WEEKENDS_ONLY) == "2026-03-04 09:30"  # counts from 08:30
    assert due("2026-03-06 17:00", "1wh", WEEKENDS_ONLY) == "2026-03-09 09:00"  # Friday's last half hour
    assert due("2026-03-04 10:00", "6wh", WEEKENDS_ONLY) == "2026-03-04 17:30"  # ends at the close, not the next day
    assert due("2026-03-04 08:30", "8wh", WEEKENDS_ONLY) == "2026-03-05 09:00"  # a day has 7.5 working hours


def test_due_at_wants_an_aware_time():
    with pytest.raises(ValueError, match="aware"):
        due_at(datetime(2026, 3, 4, 9), Span(1, "wd"), WEEKENDS_ONLY)


def test_a_calendar_with_no_working_day_is_an_error_not_a_hang():
    class Never:
        def is_workday(self, day: date) -> bool:
            return False

    with pytest.raises(ValueError, match="no 1 working days"):
        due_at(bj("2026-03-04 09:00"), Span(1, "wd"), Never())


def test_the_schedule_divides_a_working_span_by_the_time_scale():
    start = bj("2026-03-06 20:00").timestamp()  # Friday evening: due Tuesday 17:30
    real = Schedule(WEEKENDS_ONLY).due(start, Span(2, "wd"))
    assert real - start == (3 * 24 + 21.5) * 3600
    assert Schedule(WEEKENDS_ONLY, scale=3600).due(start, Span(2, "wd")) - start == 3 * 24 + 21.5
    assert Schedule(WEEKENDS_ONLY, scale=60).due(start, Span(10, "m")) - start == 10


# -- the real Chinese calendar through the adapter ---------------------------------------------
def test_the_package_in_the_lock_knows_2026():
    assert ChineseCalendar().knows(2026)


def test_spring_festival_2026():
    # 2026-02-14 (Saturday) is a 调休 workday; 02-15..02-23 the Spring Festival holiday
    assert CHINA.is_workday(date(2026, 2, 14)) and not CHINA.is_workday(date(2026, 2, 16))
    assert due("2026-02-13 16:00", "2wd") == "2026-02-24 17:30"  # Sat 14th, then Tue 24th
    assert due("2026-02-13 16:00", "8wh") == "2026-02-14 16:30"  # 1.5h Friday, 6.5h on the Saturday
    assert due("2026-02-14 17:00", "1wh") == "2026-02-24 09:00"  # over the whole holiday
    # the same Friday on weekends alone would be due on Tuesday the 17th, in the holiday
    assert due("2026-02-13 16:00", "2wd", WEEKENDS_ONLY) == "2026-02-17 17:30"


def test_national_day_2026():
    # 10-01..10-07 holiday; Saturday 10-10 a 调休 workday
    assert not CHINA.is_workday(date(2026, 10, 1)) and CHINA.is_workday(date(2026, 10, 10))
    assert due("2026-09-30 10:00", "3wd") == "2026-10-10 17:30"  # Thu 8th, Fri 9th, Sat 10th
    assert due("2026-09-30 17:00", "1wh") == "2026-10-08 09:00"


def test_a_make_up_saturday_counts_and_an_ordinary_one_does_not():
    assert CHINA.is_workday(date(2026, 2, 28))  # 调休 Saturday
    assert not CHINA.is_workday(date(2026, 3, 7))  # an ordinary Saturday
    assert due("2026-02-27 17:00", "1wd") == "2026-02-28 17:30"
    assert due("2026-03-06 17:00", "1wd") == "2026-03-09 17:30"


def test_a_year_the_package_does_not_know_falls_back_to_weekends_and_says_so():
    cal = ChineseCalendar()
    if cal.knows(2031):  # pragma: no cover - a later package would know it
        pytest.skip("the package knows 2031")
    counted = metrics.CALENDAR_FALLBACK.labels("2031")
    before = counted._value.get()
    assert cal.is_workday(date(2031, 3, 3)) and not cal.is_workday(date(2031, 3, 1))
    assert counted._value.get() == before + 2


def test_a_tenant_lists_the_days_of_a_year_the_package_does_not_know():
    # a tenant's own 2031: Monday 3rd a holiday, Saturday 8th a make-up workday
    cal = Overrides(CHINA, frozenset({date(2031, 3, 3)}), frozenset({date(2031, 3, 8)}))
    assert not cal.is_workday(date(2031, 3, 3)) and cal.is_workday(date(2031, 3, 8))
    assert cal.is_workday(date(2031, 3, 4)) and not cal.is_workday(date(2031, 3, 9))
    assert cal.is_workday(date(2026, 2, 14))  # a year it does not list: the package's


# -- the manifest's calendar: section ---------------------------------------------------------
def _tenant(section):
    t = registry().tenants[QINLING]
    return dataclasses.replace(t, source={**t.source, "calendar": section})


def test_the_tenant_sets_its_working_day_and_its_own_days():
    section = {"working_hours": ["09:00-12:00", "14:00-18:00"], "utc_offset": "+08:00", "holidays": [date(2026, 3, 9)]}
    assert check_calendar(section) == []
    sched = schedule(_tenant(section), WEEKENDS_ONLY)
    assert sched.hours.sessions == ((540, 720), (840, 1080))
    start = bj("2026-03-06 20:00").timestamp()
    end = datetime.fromtimestamp(sched.due(start, Span(1, "wd")), BJ)
    assert end == bj("2026-03-10 18:00")  # Monday the tenant's holiday; its day ends at 18:00


def test_no_section_is_the_beijing_default():
    assert schedule(_tenant(None), CHINA).hours == DEFAULT_HOURS


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("x", ("calendar", "must be a map")),
        ({"hours": []}, ("calendar.hours", "unknown key; working_hours, utc_offset, holidays, workdays")),
        (
            {"working_hours": ["8:30-12:00"]},
            ("calendar.working_hours[0]", "'8:30-12:00' is not a session like '08:30-12:00'"),
        ),
        (
            {"working_hours": ["12:00-08:30"]},
            ("calendar.working_hours[0]", "'12:00-08:30' must end after it starts, by 24:00"),
        ),
        (
            {"working_hours": ["13:30-17:30", "08:30-12:00"]},
            ("calendar.working_hours[1]", "sessions must be in order and not overlap"),
        ),
        ({"working_hours": []}, ("calendar.working_hours", "must list sessions like '08:30-12:00'")),
        ({"utc_offset": "8"}, ("calendar.utc_offset", "'8' is not an offset from UTC like '+08:00'")),
        ({"holidays": ["2027-13-01"]}, ("calendar.holidays[0]", "'2027-13-01' is not a date like 2027-01-01")),
        (
            {"holidays": [date(2027, 1, 1)], "workdays": [date(2027, 1, 1)]},
            ("calendar.workdays", "['2027-01-01'] listed as holidays too"),
        ),
    ],
)
def test_a_bad_calendar_section_is_refused_with_its_reason(section, problem):
    assert check_calendar(section) == [problem]


# -- re-arming and the what-if ----------------------------------------------------------------
def test_the_whatif_counts_working_day_dues_one_after_another():
    sched = Schedule(CHINA)
    start = bj("2026-09-30 10:00").timestamp()
    # 1wd dues: Thu 10-08, Fri 10-09, Sat 10-10 (调休), Mon 10-12; answered 10-12 noon: 3 passed
    assert sim.firings_on(sched, start, bj("2026-10-12 12:00").timestamp(), Span(1, "wd")) == 3
    assert sim.firings_on(sched, start, bj("2026-10-08 17:00").timestamp(), Span(1, "wd")) == 0
    assert sim.firings_on(sched, start, start + 35, Span(10, "s")) == sim.firings(35, 10) == 3
