"""A deadline's span as a manifest writes it: clock time (`10m`, `4h`, `3d`), working hours
(`8wh`) or working days (`2wd`). The one parser of durations; what a working span means on a
calendar is onegrid.domain.calendar's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLOCK_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}  # unit -> seconds
WORKING_UNITS = ("wh", "wd")  # working hours, working days: on the tenant's calendar
_SPAN = re.compile(r"^([0-9]+)([a-z]+)$")
UNITS_HELP = "s, m, h, d (clock time), wh (working hours) or wd (working days)"


@dataclass(frozen=True)
class Span:
    amount: int  # >= 1
    unit: str  # one of CLOCK_UNITS or WORKING_UNITS

    @property
    def on_calendar(self) -> bool:
        return self.unit in WORKING_UNITS

    @property
    def seconds(self) -> int:
        """Clock spans only: a working span has no fixed length (it depends on when it starts)."""
        if self.on_calendar:
            raise ValueError(f"{self} is on the calendar: its length depends on when it starts")
        return self.amount * CLOCK_UNITS[self.unit]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def span_problem(text: object) -> str | None:
    """Why `text` is not a span (a precise reason for the manifest check); None if it is one."""
    if not isinstance(text, str):
        return f"must be a duration like 10m, 4h, 3d, 8wh or 2wd, not {text!r}"
    match = _SPAN.match(text)
    if not match:
        return f"{text!r} is not <number><unit>; units: {UNITS_HELP}"
    amount, unit = match.groups()
    if unit not in CLOCK_UNITS and unit not in WORKING_UNITS:
        return f"{text!r}: unknown unit {unit!r}; use {UNITS_HELP}"
    if int(amount) < 1 or amount.startswith("0"):
        return f"{text!r}: the number must be a whole number from 1, without leading zeros"
    return None


def parse_span(text: object) -> Span | None:
    """The span `text` names, or None (span_problem says why)."""
    if span_problem(text) is not None:
        return None
    match = _SPAN.match(str(text))
    assert match is not None
    return Span(int(match[1]), match[2])


def parse_duration(text: object) -> int | None:
    """Seconds of a clock span (`5m`, `2h`, `3d`); None for anything else, a working span too
    (windows and extensions are clock time)."""
    span = parse_span(text)
    return span.seconds if span is not None and not span.on_calendar else None
