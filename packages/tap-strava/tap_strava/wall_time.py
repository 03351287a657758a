"""Local wall times (``start_date_local``): emitted without any zone label.

Strava writes a local wall time with a false ``Z`` (``"2026-12-04T18:13:34Z"`` is 18:13
on the athlete's clock, not in UTC). Sent on like that, every destination reads it as an
instant in UTC: target-csv writes ``2026-12-04 18:13:34+00:00``. The tap sends the wall
time alone, ``YYYY-MM-DDTHH:MM:SS`` (the columns declared with :data:`WALL_TIME_PATTERN`).

The declared type stays ``{"type": "string", "format": "date-time"}``: target-postgres
maps it to ``timestamp without time zone`` (the SQL type *for* a wall time) and keeps the
column an earlier version created, where a plain string would ask for ``text`` over an
existing ``timestamp`` column, an ALTER it refuses ("Altering columns is not supported").
target-csv writes the value as it is, without a zone. The ``pattern`` says, to a reader of
the schema and to :mod:`tap_strava.conform`, that no offset follows.

Digests (:mod:`tap_strava.digest`) are taken over Strava's own form (with the ``Z``), so a
record digested by an earlier version keeps its digest: no upgrade re-emits everything.
"""

from __future__ import annotations

import datetime
import typing as t

#: A wall time without zone, to the second: what a ``start_date_local`` column holds.
WALL_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$"
#: Zone labels Strava (or a date-time parser) puts on a wall time: removed.
_FALSE_ZONES = ("Z", "z", "+00:00", "+0000")
#: Length of ``YYYY-MM-DDTHH:MM:SS``.
WALL_TIME_LENGTH = 19


def wall_time_property(description: str) -> dict[str, t.Any]:
    """The JSON schema of a local wall-time column (see the module docstring)."""
    return {
        "type": ["string", "null"],
        "format": "date-time",
        "pattern": WALL_TIME_PATTERN,
        "description": description,
    }


def is_wall_time_property(spec: t.Mapping[str, t.Any]) -> bool:
    """Whether a declared property is a local wall time (:func:`wall_time_property`)."""
    return spec.get("pattern") == WALL_TIME_PATTERN


def without_false_zone(value: t.Any) -> t.Any:
    """``"2026-12-04T18:13:34Z"`` → ``"2026-12-04T18:13:34"``; other values unchanged.

    Only a label that claims UTC is removed (Strava's false ``Z``): a value with another
    offset is left as it came, so nothing is silently shifted.
    """
    if not isinstance(value, str) or len(value) <= WALL_TIME_LENGTH:
        return value
    for label in _FALSE_ZONES:
        if value.endswith(label):
            return value[: -len(label)]
    return value


def with_false_zone(value: t.Any) -> t.Any:
    """The form earlier versions emitted and digested (Strava's, with ``Z``)."""
    if isinstance(value, str) and len(value) == WALL_TIME_LENGTH:
        return value + "Z"
    return value


def format_wall_time(moment: datetime.datetime) -> str:
    """A local datetime (its zone, if any, ignored) as ``YYYY-MM-DDTHH:MM:SS``."""
    return moment.replace(tzinfo=None, microsecond=0).isoformat(timespec="seconds")
