"""Tolerant parsing of Strava's answers against the declared schema.

Strava's spec marks every field optional and real answers mix ints and floats
(``"moving_time": 474287.0``). A value of the wrong JSON type must neither crash a target
(which would fail every run from then on) nor vanish silently: numbers and booleans sent
as strings are converted, integral floats become ints, and a value that cannot be
converted is set to null with a warning that names the record and the field.

Fields the schema does not declare are never lost and never break a load: they move, with
one warning per stream, into one catch-all column, :data:`UNKNOWN_FIELDS` (a bare
``{"type": ["object", "null"]}``: JSON text in CSV, ``jsonb`` in Postgres). Top-level keys
keep their name; keys inside declared objects are removed from where they were (a new
column there would break target-csv's fixed header) and kept under their dotted path
(``map.something``). Lists of objects are kept whole, unknown keys included: they are one
JSON value in every target.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import typing as t

from tap_strava.storable_text import make_record_storable
from tap_strava.wall_time import is_wall_time_property, without_false_zone

#: The catch-all column of every stream: keys Strava sends that the schema does not declare.
UNKNOWN_FIELDS = "_unknown_fields"
#: Its declaration. Exactly this: an object schema with (even empty) ``properties`` makes
#: target-csv drop it from the header but keep it in the record, which raises every time.
UNKNOWN_FIELDS_SCHEMA: dict[str, t.Any] = {"type": ["object", "null"]}

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


def with_unknown_fields(schema: dict[str, t.Any]) -> dict[str, t.Any]:
    """``schema`` with the catch-all column declared (see :data:`UNKNOWN_FIELDS`)."""
    schema["properties"][UNKNOWN_FIELDS] = dict(UNKNOWN_FIELDS_SCHEMA)
    return schema


@functools.lru_cache(maxsize=256)
def _warn_unknown(logger: logging.Logger, stream: str, names: tuple[str, ...]) -> None:
    """Once per stream and set of names: Strava sends fields the schema does not know."""
    logger.warning(
        "%s: Strava sent fields the schema does not declare; they are kept in the %s column: %s",
        stream,
        UNKNOWN_FIELDS,
        ", ".join(names),
    )


def _closed_properties(spec: t.Mapping[str, t.Any]) -> dict[str, t.Any] | None:
    """The properties of an object schema whose keys are its columns (None: a JSON blob).

    An object declared with properties is flattened into one column per property by
    target-csv (``map__id``...), so a key it lacks would be a column the file's header
    lacks: such objects keep only their declared keys, whatever ``additionalProperties``
    says (the SDK's ``ObjectType`` sets it to true by default). An object declared without
    properties is one JSON value and takes any key.
    """
    properties = spec.get("properties")
    if not isinstance(properties, dict) or not properties:
        return None
    return properties


def _move_unknown(
    value: t.Any, spec: t.Mapping[str, t.Any], path: str, unknown: dict[str, t.Any]
) -> None:
    """Move keys that the declared objects inside ``value`` lack into ``unknown``, in place.

    Walks declared objects inside declared objects at any depth. Lists are left whole:
    target-csv writes a list as one JSON value and target-postgres as ``jsonb``, so an
    unknown key inside a list item breaks nothing and stays where Strava put it. An object
    declared without properties takes any key and is left whole too.
    """
    if not isinstance(value, dict):
        return
    properties = _closed_properties(spec)
    if properties is None:
        return
    for key in list(value):
        if key not in properties:
            unknown[f"{path}.{key}"] = value.pop(key)
        elif isinstance(value[key], dict):
            _move_unknown(value[key], properties[key], f"{path}.{key}", unknown)


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
    nested: tuple[tuple[str, t.Mapping[str, t.Any]], ...]  # may hold undeclared keys
    #: Per nested object, its declared keys when none of them is a closed object itself
    #: (such an object with only declared keys needs no walk), else None.
    flat_keys: tuple[frozenset[str] | None, ...]
    #: Per declared name, the Python types that need no conversion (the catch-all column:
    #: every type, it is never converted); a name missing here is undeclared.
    fast: t.Mapping[str, frozenset[type] | None]
    #: Local wall-time columns (:mod:`tap_strava.wall_time`): Strava's false ``Z`` removed.
    wall_times: tuple[str, ...] = ()
    #: Record shapes (keys and value types, in order) seen to need no change at the top
    #: level: what the loop below would find depends on nothing else, and the records of
    #: one stream come in few shapes (about a hundred for 10,000 activities).
    clean_shapes: set[tuple[tuple[str, ...], tuple[type, ...]]] = dataclasses.field(
        default_factory=set, compare=False
    )


#: Most shapes remembered per schema (a stream of ever-new shapes stops adding, still right).
MAX_CLEAN_SHAPES = 4096


_PLANS: dict[int, _Plan] = {}
#: What :attr:`_Plan.fast` gives for a name the schema does not declare.
_UNDECLARED: t.Final = frozenset({type(None)})


def _has_closed_object(spec: t.Mapping[str, t.Any]) -> bool:
    """Whether a value of this schema is an object that keeps only its declared keys."""
    return _closed_properties(spec) is not None


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
        if _has_closed_object(spec):
            nested.append((name, spec))
    fast_by_name: dict[str, frozenset[type] | None] = {name: fast for name, _, fast in fields}
    if UNKNOWN_FIELDS in fast_by_name:
        fast_by_name[UNKNOWN_FIELDS] = None
    flat_keys = tuple(
        None
        if any(_has_closed_object(sub) for sub in spec["properties"].values())
        else frozenset(spec["properties"])
        for _, spec in nested
    )
    wall_times = tuple(
        name
        for name, spec in schema.get("properties", {}).items()
        if isinstance(spec, dict) and is_wall_time_property(spec)
    )
    plan = _Plan(schema, tuple(fields), tuple(nested), flat_keys, fast_by_name, wall_times)
    _PLANS[id(schema)] = plan
    return plan


def conform_to_schema(
    record: dict[str, t.Any],
    schema: t.Mapping[str, t.Any],
    *,
    logger: logging.Logger,
    label: str,
    storable: bool = False,
) -> dict[str, t.Any]:
    """Convert top-level values to their declared types, in place; returns the record.

    It replaces the SDK's own recursive conformance (the streams set
    ``TYPE_CONFORMANCE_LEVEL`` to NONE; it was a third of the tap's time), which would
    drop unknown fields: here they move into :data:`UNKNOWN_FIELDS` instead (top level and
    inside declared objects at any depth), with one warning per stream. Values that already have a
    declared type are left alone without further checks. Conforming twice is harmless.

    First, every string (keys too, at any depth) is made storable by every target
    (:mod:`tap_strava.storable_text`: NUL and lone surrogates become U+FFFD, one warning
    per record naming the stream, which is the last part of the stream logger's name).
    It happens here, before any digest is taken, so a re-run finds the same digest.
    ``storable``: the caller made sure of it already (a listed activity, whose page was
    checked whole as it was parsed: :meth:`tap_strava.client.StravaStream.parse_response`).
    """
    if not storable:
        make_record_storable(record, logger=logger, stream=logger.name.rsplit(".", 1)[-1])
    plan = _plan(schema)
    properties = schema.get("properties", {})
    # One pass over the record finds both its undeclared keys and the values of another
    # type than declared (most records: none of either).
    undeclared: list[str] = []
    converting: set[str] = set()
    shape = (tuple(record), tuple(map(type, record.values())))  # built in C
    if shape not in plan.clean_shapes:
        declared = plan.fast
        for key, value in record.items():
            fast = declared.get(key, _UNDECLARED)
            if fast is _UNDECLARED:
                undeclared.append(key)
            elif fast is not None and value is not None and type(value) not in fast:
                converting.add(key)
        if not undeclared and not converting and len(plan.clean_shapes) < MAX_CLEAN_SHAPES:
            plan.clean_shapes.add(shape)
    unknown: dict[str, t.Any] = {}
    for key in undeclared:
        unknown[key] = record.pop(key)
    for (name, spec), flat in zip(plan.nested, plan.flat_keys, strict=True):
        value = record.get(name)
        if isinstance(value, dict) and not (flat is not None and value.keys() <= flat):
            _move_unknown(value, spec, name, unknown)
    if unknown:
        _warn_unknown(logger, label.split(" ", 1)[0], tuple(sorted(unknown)))
    if UNKNOWN_FIELDS in properties:
        kept = record.get(UNKNOWN_FIELDS)
        if unknown:
            record[UNKNOWN_FIELDS] = {**kept, **unknown} if isinstance(kept, dict) else unknown
        elif not isinstance(kept, dict) or not kept:
            record[UNKNOWN_FIELDS] = None
    for name in plan.wall_times:  # a wall time is sent without a zone label
        value = record.get(name)
        if value is not None:
            record[name] = without_false_zone(value)
    if not converting:
        return record
    for name, types, _ in plan.fields:  # in the schema's order, as the warnings were
        if name not in converting:
            continue
        value = record[name]
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
