"""Field specs: checking a spec as written, and compiling it to a marshmallow field.

Marshmallow's own Float and Boolean coerce strings ("1.5", "yes"); a contract says what
type a value is, so the numeric and boolean fields here accept only real JSON numbers and
booleans.
"""

from __future__ import annotations

import math
import re

from marshmallow import RAISE, Schema, fields, validate

TYPES = {"string", "integer", "number", "boolean", "enum", "datetime", "date", "url", "list", "object"}
COMMON_KEYS = {"type", "required", "description"}
KEYS = {
    "string": {"min_length", "max_length", "pattern"},
    "integer": {"min", "max"},
    "number": {"min", "max"},
    "boolean": set(),
    "enum": {"values"},
    "datetime": set(),
    "date": set(),
    "url": set(),
    "list": {"items", "min_items", "max_items"},
    "object": {"fields"},
}
NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")


def check_fields(specs, path: str) -> list[tuple[str, str]]:
    """(path, reason) for everything wrong with a map of field specs."""
    if not isinstance(specs, dict) or not specs:
        return [(path, "must be a non-empty map of field name to field spec")]
    problems = []
    for name, spec in specs.items():
        if not isinstance(name, str) or not NAME.match(name):
            problems.append((f"{path}.{name}", "field names are snake_case, at most 48 characters"))
        problems += check_field(spec, f"{path}.{name}")
    return problems


def check_field(spec, path: str) -> list[tuple[str, str]]:
    if not isinstance(spec, dict):
        return [(path, "a field spec must be a map with at least `type`")]
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        return [(f"{path}.type", f"unknown type {kind!r}; one of {', '.join(sorted(TYPES))}")]
    problems = [
        (f"{path}.{key}", f"not an attribute of a {kind} field") for key in spec if key not in COMMON_KEYS | KEYS[kind]
    ]
    if not isinstance(spec.get("required", False), bool):
        problems.append((f"{path}.required", "must be true or false"))
    problems += _check_bounds(spec, path, "min_length", "max_length", int)
    problems += _check_bounds(spec, path, "min", "max", (int, float))
    problems += _check_bounds(spec, path, "min_items", "max_items", int)
    if kind == "string":
        if "max_length" not in spec and "pattern" not in spec:
            problems.append((path, "a string needs max_length or pattern, so its size is bounded"))
        if "pattern" in spec:
            try:
                re.compile(spec["pattern"])
            except (re.error, TypeError) as exc:
                problems.append((f"{path}.pattern", f"not a valid regular expression: {exc}"))
    elif kind == "enum":
        values = spec.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            problems.append((f"{path}.values", "an enum needs a non-empty list of string values"))
        elif len(set(values)) != len(values):
            problems.append((f"{path}.values", "values repeat"))
    elif kind == "list":
        if "max_items" not in spec:
            problems.append((path, "a list needs max_items, so its size is bounded"))
        if "items" not in spec:
            problems.append((f"{path}.items", "a list needs an items spec"))
        else:
            problems += check_field(spec["items"], f"{path}.items")
    elif kind == "object":
        problems += check_fields(spec.get("fields"), f"{path}.fields")
    return problems


def _check_bounds(spec, path, low, high, kinds) -> list[tuple[str, str]]:
    problems = []
    for key in (low, high):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds)):
            problems.append((f"{path}.{key}", f"must be a number, got {value!r}"))
    lo, hi = spec.get(low), spec.get(high)
    if not problems and lo is not None and hi is not None and lo > hi:
        problems.append((f"{path}.{low}", f"{low} {lo} is greater than {high} {hi}"))
    return problems


class _Typed(fields.Field):
    """A field that accepts only values of the given JSON types."""

    json_types: tuple = ()
    type_name = ""
    default_error_messages = {"invalid": "Not a valid {type_name}."}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) != (bool in self.json_types) or not isinstance(value, self.json_types):
            raise self.make_error("invalid", type_name=self.type_name)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid", type_name=self.type_name)
        return value


RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


class Date(fields.Date):
    """YYYY-MM-DD only: marshmallow's Date also takes week dates and basic format."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class DateTime(fields.AwareDateTime):
    """RFC 3339 with a UTC offset only: marshmallow's ISO parser also takes basic format."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not RFC3339.match(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs)


class Integer(_Typed):
    json_types = (int,)
    type_name = "integer"


class Number(_Typed):
    json_types = (int, float)
    type_name = "number"


class Boolean(_Typed):
    json_types = (bool,)
    type_name = "boolean"


def compile_field(spec: dict) -> fields.Field:
    kind = spec["type"]
    required = spec.get("required", False)
    checks: list[validate.Validator] = []
    if kind == "string":
        if "min_length" in spec or "max_length" in spec:
            checks.append(validate.Length(min=spec.get("min_length"), max=spec.get("max_length")))
        if "pattern" in spec:  # the whole value: \Z, unlike $, does not allow a trailing newline
            checks.append(validate.Regexp(re.compile(rf"(?:{spec['pattern']})\Z")))
        return fields.String(required=required, validate=checks)
    if kind in ("integer", "number"):
        if "min" in spec or "max" in spec:
            checks.append(validate.Range(min=spec.get("min"), max=spec.get("max")))
        return (Integer if kind == "integer" else Number)(required=required, validate=checks)
    if kind == "boolean":
        return Boolean(required=required)
    if kind == "enum":
        return fields.String(required=required, validate=validate.OneOf(spec["values"]))
    if kind == "datetime":
        return DateTime(required=required, format="iso")
    if kind == "date":
        return Date(required=required)
    if kind == "url":
        return fields.Url(required=required, schemes={"http", "https"})
    if kind == "list":
        if "min_items" in spec or "max_items" in spec:
            checks.append(validate.Length(min=spec.get("min_items"), max=spec.get("max_items")))
        return fields.List(compile_field(spec["items"]), required=required, validate=checks)
    if kind == "object":
        return fields.Nested(compile_schema(spec["fields"]), required=required)
    raise ValueError(f"unknown field type {kind!r}")


def compile_schema(specs: dict, name: str = "Object") -> Schema:
    """A marshmallow schema that refuses undeclared fields."""
    schema_cls = Schema.from_dict({k: compile_field(v) for k, v in specs.items()}, name=name)
    return schema_cls(unknown=RAISE)
