"""The time as OneGrid writes it: epoch seconds for deadlines and due times, and one ISO-8601
form (UTC, milliseconds, `Z`) for records, timelines and CloudEvents' `time`."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_iso(epoch: float | None = None) -> str:
    at = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SystemClock:
    """The machine's clock (the Clock port of onegrid.app.ports); tests hand use cases a fake."""

    def now(self) -> float:
        return time.time()

    def now_iso(self) -> str:
        return now_iso()


CLOCK = SystemClock()
