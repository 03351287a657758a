"""Time formats and time zones the way Strava writes them.

Strava writes ``start_date`` in UTC with ``Z`` and ``start_date_local`` as the local wall
clock time *also* followed by a ``Z`` (a false UTC marker), with ``utc_offset`` in seconds as a
float and ``timezone`` as ``"(GMT+01:00) Europe/Amsterdam"`` where the GMT part is the zone's
*standard* offset even in summer. Keeping all of that in one module keeps the three values
consistent wherever an activity is created or edited.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_ISO_Z = "%Y-%m-%dT%H:%M:%SZ"
_TZ_LABEL = re.compile(r"^\(GMT([+-])(\d\d):(\d\d)\)\s+(\S+)$")


def iso_utc(ts: float) -> str:
    """Format epoch seconds as ``2025-10-18T12:49:52Z``."""
    return time.strftime(_ISO_Z, time.gmtime(int(ts)))


def iso_local(ts: float, utc_offset: float) -> str:
    """Format the local wall time with Strava's false ``Z`` suffix."""
    return time.strftime(_ISO_Z, time.gmtime(int(ts) + int(utc_offset)))


def parse_iso(value: str) -> int:
    """Parse ``YYYY-MM-DDTHH:MM:SS`` with ``Z`` or an explicit offset into epoch seconds."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def http_date(ts: float) -> str:
    """Format an RFC 7231 ``Date`` header value (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return formatdate(ts, usegmt=True)


def timezone_label(tz_name: str, standard_offset_s: int) -> str:
    """Build Strava's ``timezone`` text from the zone name and its standard offset."""
    sign = "-" if standard_offset_s < 0 else "+"
    minutes = abs(standard_offset_s) // 60
    return f"(GMT{sign}{minutes // 60:02d}:{minutes % 60:02d}) {tz_name}"


def parse_timezone_label(label: str) -> tuple[str, int] | None:
    """Split ``"(GMT+01:00) Europe/Amsterdam"`` into the zone name and standard offset."""
    match = _TZ_LABEL.match(label.strip())
    if not match:
        return None
    sign, hours, minutes, name = match.groups()
    offset = int(hours) * 3600 + int(minutes) * 60
    return name, -offset if sign == "-" else offset


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def utc_offset_at(tz_name: str, standard_offset_s: int, ts: float) -> float:
    """Return the zone's UTC offset in seconds at ``ts`` (daylight saving included).

    Falls back to the standard offset when the system has no time zone database, so the
    simulator still runs (without DST) on minimal machines.
    """
    zone = _zone(tz_name)
    if zone is None:
        return float(standard_offset_s)
    offset = datetime.fromtimestamp(int(ts), zone).utcoffset()
    return float(offset.total_seconds()) if offset is not None else float(standard_offset_s)


def local_to_epoch(tz_name: str, standard_offset_s: int, local: datetime) -> int:
    """Convert a naive local wall time in a zone to epoch seconds."""
    zone = _zone(tz_name)
    if zone is None:
        naive_utc = local - timedelta(seconds=standard_offset_s)
        return calendar.timegm(naive_utc.timetuple())
    return int(local.replace(tzinfo=zone).timestamp())
