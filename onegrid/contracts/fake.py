"""Valid sample data for any contract: the simulator's and the tests' source of events, and the
AsyncAPI document's examples (with a fixed `now` and a seeded generator, the same bytes each time).

Values come from the field specs themselves (ranges, enums, lengths, patterns), so a new
contract is simulated without new code.
"""

from __future__ import annotations

import random
import re._constants as C
import re._parser as sre
from datetime import datetime, timedelta, timezone

CST = timezone(timedelta(hours=8))
_WORDS = [
    "网格",
    "巡查",
    "发现",
    "居民",
    "反映",
    "门店",
    "楼道",
    "路口",
    "隐患",
    "占道",
    "噪音",
    "违建",
    "排查",
    "处置",
    "上报",
    "核实",
    "群众",
    "社区",
    "街道",
    "问题",
]
_DIGITS = [chr(c) for c in range(ord("0"), ord("9") + 1)]
_PRINTABLE = [chr(c) for c in range(0x21, 0x7F)]


def sample_regex(pattern: str, rng: random.Random) -> str:
    """A string matching `pattern` (classes, literals, repeats, groups, alternation)."""
    return "".join(_emit(sre.parse(pattern), rng))


def _emit(parsed, rng) -> list[str]:
    out = []
    for op, arg in parsed:
        if op is C.LITERAL:
            out.append(chr(arg))
        elif op is C.IN:
            out.append(_pick_class(arg, rng))
        elif op is C.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if ord(c) != arg]))
        elif op is C.ANY:
            out.append(rng.choice(_DIGITS))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
            lo, hi, item = arg
            for _ in range(rng.randint(lo, min(hi, lo + 4) if hi != C.MAXREPEAT else lo + 4)):
                out += _emit(item, rng)
        elif op is C.SUBPATTERN:
            out += _emit(arg[-1], rng)
        elif op is C.BRANCH:
            out += _emit(rng.choice(arg[1]), rng)
    return out


def _pick_class(items, rng) -> str:
    choices, negate = [], False
    for op, arg in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            choices.append(chr(arg))
        elif op is C.RANGE:
            choices += [chr(c) for c in range(arg[0], arg[1] + 1)]
        elif op is C.CATEGORY:
            choices += _DIGITS
    if negate:
        excluded = set(choices)
        choices = [c for c in _PRINTABLE if c not in excluded]
    return rng.choice(choices)


def _bounds(spec: dict, span: float) -> tuple[float, float]:
    """A sampling range inside the spec's min/max, at most `span` wide."""
    lo: float | None = spec.get("min")
    hi: float | None = spec.get("max")
    if lo is None:
        return (0, span) if hi is None else (hi - span, hi)
    if hi is None:
        return lo, lo + span
    return lo, min(hi, lo + span)


def sample_field(spec: dict, rng: random.Random, now: datetime | None = None):
    """A valid value for `spec`; dates and times are before `now` (default: the clock's)."""
    kind = spec["type"]
    if kind == "string":
        if "pattern" in spec:
            return sample_regex(spec["pattern"], rng)
        lo, hi = spec.get("min_length", 1), min(spec.get("max_length", 40), 40)
        text = ""
        while len(text) < lo or not text:
            text += rng.choice(_WORDS)
        return text[: max(hi, lo)]
    if kind == "integer":
        lo, hi = _bounds(spec, 1000)
        return rng.randint(int(lo), int(hi))
    if kind == "number":
        lo, hi = _bounds(spec, 1000)
        return min(hi, max(lo, round(rng.uniform(lo, hi), 6)))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "enum":
        return rng.choice(spec["values"])
    if kind == "datetime":
        return ((now or datetime.now(CST)) - timedelta(minutes=rng.randint(0, 120))).isoformat(timespec="seconds")
    if kind == "date":
        return ((now or datetime.now(CST)) - timedelta(days=rng.randint(0, 30))).date().isoformat()
    if kind == "url":
        return f"https://evidence.onegrid.invalid/photos/{rng.getrandbits(48):012x}.jpg"
    if kind == "list":
        lo = spec.get("min_items", 0)
        n = rng.randint(lo, min(spec.get("max_items", lo + 3), lo + 3))
        return [sample_field(spec["items"], rng, now) for _ in range(n)]
    if kind == "object":
        return sample_object(spec["fields"], rng, now=now)
    raise ValueError(kind)


def sample_object(specs: dict, rng: random.Random, fixed: dict | None = None, now: datetime | None = None) -> dict:
    out = {}
    for name, spec in specs.items():
        if fixed and name in fixed:
            out[name] = fixed[name]
        elif spec.get("required") or rng.random() < 0.5:
            out[name] = sample_field(spec, rng, now)
    return out
