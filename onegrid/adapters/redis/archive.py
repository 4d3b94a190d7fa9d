"""A closed case folded into one compact value: its record, its work orders and its timeline.

Open, a case is a hash, a timeline list, a set of work-order ids and a hash per work order
(~9 KB of Redis once closed, mostly hash-table overhead and repeated field names). Once it is
closed and its timeline verifies, the store keeps it instead as one string under
`og:{<tenant>}:arc:<case id>`: the three parts as compact JSON (each record's fields in the
order stored), deflated with a preset dictionary (`archive-v1.zdict`: eight simulated
closed cases of different categories, so field names, states, actors and the county's
words are back-references, not bytes).
The bus's history stream keeps every lifecycle event in full; the archive keeps what the
services and the command centre read.

The first byte names the format; a format once released is never changed (the dictionary
with it), a new one gets a new byte and the old stays readable.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

V1 = b"\x01"
_DICT = Path(__file__).with_name("archive-v1.zdict")


class Unreadable(ValueError):
    """An archived value that is not one this code wrote (an unknown format, or altered bytes)."""


@dataclass(frozen=True)
class Archived:
    """A closed case as archived: the record and its work orders decoded as the store reads
    them (onegrid.adapters.redis.store), the timeline's entries as stored."""

    case: dict
    work_orders: list[dict]
    timeline: list[dict]


@cache
def _zdict() -> bytes:
    return _DICT.read_bytes()


def pack(archived: Archived) -> bytes:
    body = json.dumps(
        {"case": archived.case, "timeline": archived.timeline, "work_orders": archived.work_orders},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    z = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _zdict())
    return V1 + z.compress(body) + z.flush()


def unpack(blob: bytes) -> Archived:
    if blob[:1] != V1:
        raise Unreadable(f"archived case in an unknown format {blob[:1]!r}")
    try:
        z = zlib.decompressobj(-15, _zdict())
        parts = json.loads(z.decompress(blob[1:]) + z.flush())
        return Archived(parts["case"], parts["work_orders"], parts["timeline"])
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise Unreadable(f"archived case does not decode: {exc}") from exc
