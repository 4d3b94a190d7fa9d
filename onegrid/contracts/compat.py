"""Schema evolution: is a new version of an event type compatible with the earlier ones?

The modes are Confluent Schema Registry's. BACKWARD (the default): consumers on the new
version read data written under the old one, so a new version may add optional fields,
delete fields, widen (add enum values, loosen bounds, drop a pattern, make a required field
optional, integer -> number), and nothing else. FORWARD: consumers on the old version read
data written under the new one (the mirror image). FULL: both. The `_TRANSITIVE` variants
check a version against every earlier one, the others against the one before it. NONE: no
check.

Pure: `findings(old, new, mode)` compares two maps of field specs and returns
(path, rule, text) for every break; the registry turns them into problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from re import _constants as re_constants
from re import _parser as re_parser

MODES = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE")
DEFAULT = "BACKWARD"

# (low bound, high bound) pairs per type: a reader is stricter when it raises a low bound,
# lowers a high bound, or adds a bound the writer did not have
_BOUNDS: dict[str, tuple[tuple[str, str], ...]] = {
    "string": (("min_length", "max_length"),),
    "integer": (("min", "max"),),
    "number": (("min", "max"),),
    "list": (("min_items", "max_items"),),
}
_WIDENS = {("integer", "number")}  # (writer's type, reader's type) a reader accepts as is


@dataclass(frozen=True)
class Finding:
    """One thing a reader refuses of a writer's data; `writer` and `reader` hold each side's
    value of what changed (`key`: a type, a bound, a pattern, or the enum values lost)."""

    path: str  # field path below the event's fields, e.g. `reporter.fields.phone`
    rule: str  # a bounded rule id (see RULES)
    key: str | None = None
    writer: object = None
    reader: object = None


RULES = {
    "required_field_added": "a required field the data of the other version lacks",
    "made_required": "a field that was optional is required",
    "type_changed": "a field's type changed",
    "enum_narrowed": "an enum lost values",
    "bound_tightened": "a length, range or size bound is stricter",
    "pattern_added": "a pattern was added to an existing field",
    "pattern_changed": "a field's pattern changed",
}


def reader_breaks(writer: dict, reader: dict, path: str = "") -> list[Finding]:
    """What a reader on `reader`'s field specs refuses of data valid under `writer`'s."""
    found: list[Finding] = []
    for name, spec in reader.items():
        where = f"{path}{name}"
        if name not in writer:
            if spec.get("required", False):
                found.append(Finding(where, "required_field_added"))
            continue
        found += _field(writer[name], spec, where)
    return found


def _field(w: dict, r: dict, where: str) -> list[Finding]:
    wt, rt = w.get("type"), r.get("type")
    if wt != rt and (wt, rt) not in _WIDENS:
        return [Finding(where, "type_changed", "type", wt, rt)]
    found = []
    if r.get("required", False) and not w.get("required", False):
        found.append(Finding(where, "made_required"))
    implied = _pattern_lengths(w.get("pattern")) if wt == "string" else {}
    for low, high in _BOUNDS.get(rt, ()) if isinstance(rt, str) else ():
        for key, stricter in ((low, lambda old, new: new > old), (high, lambda old, new: new < old)):
            # a writer's anchored pattern bounds its strings' length as a min/max_length would
            old, new = w.get(key, implied.get(key)), r.get(key)
            if new is not None and (old is None or stricter(old, new)):
                found.append(Finding(where, "bound_tightened", key, old, new))
    if rt == "string" and r.get("pattern") is not None and r.get("pattern") != w.get("pattern"):
        rule = "pattern_added" if w.get("pattern") is None else "pattern_changed"
        found.append(Finding(where, rule, "pattern", w.get("pattern"), r["pattern"]))
    if rt == "enum":
        lost = [v for v in w.get("values") or [] if v not in (r.get("values") or [])]
        if lost:
            found.append(Finding(where, "enum_narrowed", "values", lost, None))
    if rt == "list" and isinstance(w.get("items"), dict) and isinstance(r.get("items"), dict):
        found += _field(w["items"], r["items"], f"{where}.items")
    if rt == "object" and isinstance(w.get("fields"), dict) and isinstance(r.get("fields"), dict):
        found += reader_breaks(w["fields"], r["fields"], f"{where}.fields.")
    return found


def _pattern_lengths(pattern) -> dict:
    """The min_length and max_length every string matching `pattern` (anchored ^…$, no
    top-level alternation) has: a reader that drops the pattern for bounds at least as wide
    still reads all the writer's data (a grid code pattern widened to any ladder's depth)."""
    if not isinstance(pattern, str):
        return {}
    try:
        parsed = re_parser.parse(pattern)
    except re.error:
        return {}
    items = list(parsed)
    at = re_constants.AT
    if (
        len(items) < 2
        or items[0] != (at, re_constants.AT_BEGINNING)
        or items[-1] != (at, re_constants.AT_END)
        or any(op == re_constants.BRANCH for op, _ in items)
    ):
        return {}
    low, high = parsed.getwidth()
    high += 1  # `$` also matches before a final newline
    return {"min_length": low, "max_length": high} if high < re_constants.MAXREPEAT else {"min_length": low}


def _backward_text(f: Finding) -> str:
    """What the new version (the reader) did, for a BACKWARD break."""
    name = f.path.rsplit(".", 1)[-1]
    return {
        "required_field_added": f"adds required field {name!r}",
        "made_required": f"makes optional field {name!r} required",
        "type_changed": f"changes the type from {f.writer} to {f.reader}",
        "enum_narrowed": f"removes enum values {f.writer}",
        "bound_tightened": f"adds {f.key} {f.reader}"
        if f.writer is None
        else f"changes {f.key} from {f.writer} to {f.reader}",
        "pattern_added": f"adds pattern {f.reader!r}",
        "pattern_changed": f"changes the pattern from {f.writer!r} to {f.reader!r}",
    }[f.rule]


def _forward_text(f: Finding) -> str:
    """What the new version (here the writer) did, for a FORWARD break."""
    name = f.path.rsplit(".", 1)[-1]
    return {
        "required_field_added": f"deletes required field {name!r}",
        "made_required": f"makes required field {name!r} optional",
        "type_changed": f"changes the type from {f.reader} to {f.writer}",
        "enum_narrowed": f"adds enum values {f.writer}",
        "bound_tightened": f"drops {f.key} {f.reader}"
        if f.writer is None
        else f"changes {f.key} from {f.reader} to {f.writer}",
        "pattern_added": f"drops pattern {f.reader!r}",
        "pattern_changed": f"changes the pattern from {f.reader!r} to {f.writer!r}",
    }[f.rule]


def findings(old: dict, new: dict, mode: str = DEFAULT) -> list[tuple[str, str, Finding]]:
    """(direction, text, finding) for every break of `new` against `old` under `mode`;
    direction is BACKWARD or FORWARD (a FULL mode reports both)."""
    base = mode.removesuffix("_TRANSITIVE")
    out = []
    if base in ("BACKWARD", "FULL"):
        for f in reader_breaks(old, new):
            out.append(
                (
                    "BACKWARD",
                    f"{_backward_text(f)}; consumers on the new version cannot read data written under the old one",
                    f,
                )
            )
    if base in ("FORWARD", "FULL"):
        for f in reader_breaks(new, old):  # the old version reads what the new one writes
            out.append(
                (
                    "FORWARD",
                    f"{_forward_text(f)}; consumers on the old version cannot read data written under the new one",
                    f,
                )
            )
    return out


def transitive(mode: str) -> bool:
    return mode.endswith("_TRANSITIVE")
