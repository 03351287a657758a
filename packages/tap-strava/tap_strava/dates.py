"""Strava's date-times as the tap compares them: epoch seconds, and back to ISO 8601.

Strava writes ``start_date`` in UTC with a ``Z``; bookmarks are those strings, windows and
cursors epoch seconds (what ``after``/``before`` take).
"""

from __future__ import annotations

import datetime
import functools
import typing as t


def epoch(value: str | datetime.datetime) -> int:
    """Epoch seconds of an ISO 8601 date-time (``Z`` or an offset; naive means UTC)."""
    if isinstance(value, str):
        return _epoch_of_text(value)
    moment = (
        value
        if isinstance(value, datetime.datetime)
        else datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return int(moment.timestamp())


@functools.lru_cache(maxsize=4096)
def _epoch_of_text(text: str) -> int:
    """:func:`epoch` of a string, remembered.

    A backfill compares each start about ten times (sorting, the cursor, the pruning of
    digests), which parsed it ten times.
    """
    return epoch(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))


def iso(seconds: int) -> str:
    """ISO 8601 in UTC with a ``Z``, as Strava writes it (never before 1970)."""
    return (
        datetime.datetime.fromtimestamp(max(0, seconds), tz=datetime.timezone.utc)
        .isoformat()
        .replace("+00:00", "Z")
    )


def clamp_to(value: t.Any, ceiling: datetime.datetime) -> str:
    """A bookmark value, never later than ``ceiling`` (the run's start)."""
    if value is None or epoch(str(value)) > int(ceiling.timestamp()):
        return ceiling.isoformat().replace("+00:00", "Z")
    return str(value)
