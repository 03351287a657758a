"""Tolerant parsing of Strava's answers against the declared schema.

Strava's spec marks every field optional and real answers mix ints and floats
(``"moving_time": 474287.0``). A value of the wrong JSON type must neither crash a target
(which would fail every run from then on) nor vanish silently: numbers and booleans sent
as strings are converted, integral floats become ints, and a value that cannot be
converted is set to null with a warning that names the record and the field.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import typing as t

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _types(spec: t.Mapping[str, t.Any]) -> set[str]:
    declared = spec.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def _convert(value: t.Any, types: set[str]) -> tuple[bool, t.Any]:
    """(ok, converted) for one top-level value."""
    if value is None:
        return True, None
    if "integer" in types and "number" not in types:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, int):
            return True, value
        number = _as_number(value)
        if number is not None and number.is_integer():
            return True, int(number)
        return False, None
    if "number" in types:
        if isinstance(value, bool):
            return False, None
        if isinstance(value, (int, float)):
            return True, value
        number = _as_number(value)
        return (number is not None), number
    if "boolean" in types:
        if isinstance(value, bool):
            return True, value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True, True
        if text in _FALSE:
            return True, False
        return False, None
    if "string" in types and isinstance(value, (int, float)) and not isinstance(value, bool):
        return True, str(value)
    return True, value


def _as_number(value: t.Any) -> float | None:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


@functools.lru_cache(maxsize=256)
def _warn_unknown(logger: logging.Logger, stream: str, names: tuple[str, ...]) -> None:
    """Once per stream and set of names: Strava sends fields the schema does not know."""
    logger.warning(
        "%s: Strava sent fields the schema does not declare; they are left out: %s",
        stream,
        ", ".join(names),
    )


def _drop_unknown(value: t.Any, spec: t.Mapping[str, t.Any], path: str, unknown: list[str]) -> None:
    """Remove keys a declared object does not know, in place (one nesting level down)."""
    properties = spec.get("properties")
    if not isinstance(properties, dict) or spec.get("additionalProperties"):
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key in [k for k in item if k not in properties]:
            del item[key]
            unknown.append(f"{path}.{key}")


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "integer": (int,),
    "number": (int, float),
    "string": (str,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What conforming to one schema takes, worked out once per schema."""

    schema: t.Mapping[str, t.Any]  # kept so that its id() is not reused
    fields: tuple[tuple[str, frozenset[str], frozenset[type]], ...]
    nested: tuple[tuple[str, t.Mapping[str, t.Any], t.Mapping[str, t.Any]], ...]


_PLANS: dict[int, _Plan] = {}


def _plan(schema: t.Mapping[str, t.Any]) -> _Plan:
    plan = _PLANS.get(id(schema))
    if plan is not None and plan.schema is schema:
        return plan
    fields = []
    nested = []
    for name, spec in schema.get("properties", {}).items():
        types = frozenset(_types(spec))
        fast = {py for declared in types for py in _PYTHON_TYPES.get(declared, ())}
        if "number" not in types and "integer" in types:
            fast.discard(float)
        fields.append((name, types, frozenset(fast)))
        items = spec.get("items")
        if isinstance(items, dict) and "properties" in items:
            nested.append((name, spec, items))
        elif "properties" in spec:
            nested.append((name, spec, spec))
    plan = _Plan(schema, tuple(fields), tuple(nested))
    _PLANS[id(schema)] = plan
    return plan


def conform_to_schema(
    record: dict[str, t.Any],
    schema: t.Mapping[str, t.Any],
    *,
    logger: logging.Logger,
    label: str,
) -> dict[str, t.Any]:
    """Convert top-level values to their declared types, in place; returns the record.

    It replaces the SDK's own recursive conformance (the streams set
    ``TYPE_CONFORMANCE_LEVEL`` to NONE; it was a third of the tap's time), so it also
    does what that did for unknown fields: they are left out, with one warning per
    stream (top level, and inside declared objects and lists of objects). Values that
    already have a declared type are left alone without further checks.
    """
    plan = _plan(schema)
    properties = schema.get("properties", {})
    unknown = [key for key in record if key not in properties]
    for key in unknown:
        del record[key]
    for name, spec, item_spec in plan.nested:
        value = record.get(name)
        if isinstance(value, list) and item_spec is not spec:
            _drop_unknown(value, item_spec, name, unknown)
        elif isinstance(value, dict) and item_spec is spec:
            _drop_unknown(value, spec, name, unknown)
    if unknown:
        _warn_unknown(logger, label.split(" ", 1)[0], tuple(sorted(set(unknown))))
    for name, types, fast in plan.fields:
        if name not in record:
            continue
        value = record[name]
        if value is None or type(value) in fast:
            continue
        ok, converted = _convert(value, set(types))
        if not ok:
            logger.warning(
                "%s: field %r has the unexpected value %r; stored as null",
                label,
                name,
                value if not isinstance(value, (dict, list)) else "<object>",
            )
        record[name] = converted
    return record
