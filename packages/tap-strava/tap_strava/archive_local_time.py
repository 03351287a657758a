"""The local start time of an archive activity, and the rule that gave it.

``activities.csv`` has the start in UTC only (its Activity Date), so an archive-only user
would have no local dates and ISO weeks. ``export_activities`` gets
``start_date_local`` (a wall time without zone, :mod:`tap_strava.wall_time`) and
``start_date_local_rule``, the first of these that applies:

1. ``fit_local_timestamp``: the FIT file's ``activity`` message has ``local_timestamp``
   (the device's wall clock) beside ``timestamp`` (UTC); their difference, rounded to a
   quarter of an hour (every zone's offset is a multiple of one), is the offset at the
   start. Offsets beyond ±14 h are not believed.
2. ``start_coordinates``: the zone of the first position fix (at or after the start, for
   a file holding several activities), from timezonefinder's bundled boundaries (offline;
   geo-activity-playground's rule). The zone's rules give the offset at that instant,
   daylight saving included.
3. ``athlete_timezone``: the tap's ``athlete_timezone`` setting (an IANA zone, or
   Strava's ``(GMT+01:00) Europe/Paris`` form), for manual activities and files without
   a fix.
4. Otherwise both columns are null.

What a file tells (the offset, the zone of its first fix) is worked out once per file
and kept in the stream's state with the file's identity (:data:`FACTS_KEY`): a
re-import of an unchanged archive opens no file. timezonefinder is imported only when a
file with a fix and no FIT offset is read (its import takes about a second).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import io
import typing as t
import zlib
import zoneinfo

from tap_strava.errors import StravaConfigError
from tap_strava.track_files import (
    SEMICIRCLES_TO_DEGREES,
    TrackError,
    file_format,
    open_content,
    xml_text,
)
from tap_strava.wall_time import format_wall_time

FIT_LOCAL_TIMESTAMP = "fit_local_timestamp"
START_COORDINATES = "start_coordinates"
ATHLETE_TIMEZONE = "athlete_timezone"
RULES = (FIT_LOCAL_TIMESTAMP, START_COORDINATES, ATHLETE_TIMEZONE)
#: State key of ``export_activities``: ``{"<id>": ["<file identity>", offset, zone]}``.
FACTS_KEY = "local_start"
#: Largest offset believed (UTC+14:00 is the furthest zone).
MAX_OFFSET = 14 * 3600
QUARTER_HOUR = 900
#: A fix this long before the row's start still counts as its start (Endurain's 2 s).
START_SLACK = 2.0


@dataclasses.dataclass(frozen=True)
class StartFacts:
    """What one original file says about its start's local time."""

    utc_offset: int | None = None  # seconds, from the FIT activity's local_timestamp
    zone: str | None = None  # IANA zone of the first position fix

    def as_state(self, identity: str) -> list[t.Any]:
        """The state's entry (short: one per activity)."""
        return [identity, self.utc_offset, self.zone]

    @classmethod
    def from_state(cls, entry: t.Any, identity: str) -> StartFacts | None:
        """The remembered facts, if they are of this very file (else None: read again)."""
        if not isinstance(entry, list) or len(entry) != 3 or entry[0] != identity:
            return None
        offset, zone = entry[1], entry[2]
        return cls(
            offset if isinstance(offset, int) and not isinstance(offset, bool) else None,
            zone if isinstance(zone, str) else None,
        )


def athlete_zone(setting: t.Any) -> zoneinfo.ZoneInfo | None:
    """The ``athlete_timezone`` setting as a zone; a bad one stops with one line."""
    if setting is None or setting == "":
        return None
    text = str(setting).strip()
    name = text.rsplit(" ", 1)[-1] if text.startswith("(GMT") else text
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        msg = (
            f"athlete_timezone {text[:60]!r} is not an IANA time zone: give one such as "
            "Europe/Paris or America/New_York (or Strava's '(GMT+01:00) Europe/Paris')"
        )
        raise StravaConfigError(msg) from None


def local_start(
    start_date: str | None, facts: StartFacts | None, fallback: zoneinfo.ZoneInfo | None
) -> tuple[str | None, str | None]:
    """(``start_date_local``, ``start_date_local_rule``) of one row (see the module doc)."""
    if not start_date:
        return None, None
    try:
        start = datetime.datetime.fromisoformat(start_date.replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.timezone.utc)
    if facts is not None and facts.utc_offset is not None:
        local = start.astimezone(datetime.timezone.utc) + datetime.timedelta(
            seconds=facts.utc_offset
        )
        return format_wall_time(local), FIT_LOCAL_TIMESTAMP
    if facts is not None and facts.zone is not None:
        zone = _zone(facts.zone)
        if zone is not None:
            return format_wall_time(start.astimezone(zone)), START_COORDINATES
    if fallback is not None:
        return format_wall_time(start.astimezone(fallback)), ATHLETE_TIMEZONE
    return None, None


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None  # a zone this machine's tz database lacks: the next rule


def read_start_facts(
    filename: str, handle: t.IO[bytes], start: datetime.datetime | None
) -> StartFacts:
    """The facts of one original (member stream or bytes); :class:`TrackError` if unreadable."""
    kind, _ = file_format(filename)
    if kind is None:
        msg = f"{filename}: unknown file type (not .fit, .gpx or .tcx, optionally .gz)"
        raise TrackError(msg)
    content = open_content(filename, handle)
    if kind == "fit":
        offset, fix = _fit_facts(content, filename, start)
    else:
        try:
            whole = content.read()  # bounded (MAX_BYTES); parsed only up to the first fix
        except (OSError, EOFError, zlib.error) as exc:
            msg = f"{filename}: not a valid gzip file ({exc})"
            raise TrackError(msg) from None
        offset, fix = None, _xml_first_fix(whole, filename)
    return StartFacts(offset, zone_at(*fix) if fix and offset is None else None)


def _xml_first_fix(data: bytes, filename: str) -> tuple[float, float] | None:
    """The first position of a GPX (``trkpt``) or TCX (``Position``), parsing no further."""
    from lxml import etree

    source = io.BytesIO(xml_text(data, filename).encode("utf-8"))
    events = etree.iterparse(
        source,
        events=("start", "end"),
        tag=("{*}trkpt", "{*}Position"),
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
    )
    try:
        for event, element in events:
            if event == "start" and element.tag.endswith("trkpt"):
                fix = _pair(element.get("lat"), element.get("lon"))
            elif event == "end" and element.tag.endswith("Position"):
                values = {child.tag.rsplit("}", 1)[-1]: child.text for child in element}
                fix = _pair(values.get("LatitudeDegrees"), values.get("LongitudeDegrees"))
            else:
                continue
            if fix is not None:
                return fix
    except etree.XMLSyntaxError as exc:
        msg = f"{filename}: not a readable XML track ({exc})"
        raise TrackError(msg) from None
    return None


def _pair(lat: str | None, lng: str | None) -> tuple[float, float] | None:
    try:
        return float(lat or ""), float(lng or "")
    except ValueError:
        return None


def _fit_facts(
    content: t.IO[bytes], filename: str, start: datetime.datetime | None
) -> tuple[int | None, tuple[float, float] | None]:
    """(offset, first fix at or after ``start``) of a FIT file, in one pass over it."""
    import fitdecode
    from fitdecode.processors import FIT_UTC_REFERENCE

    wanted = None if start is None else start.timestamp() - FIT_UTC_REFERENCE - START_SLACK
    fix: tuple[float, float] | None = None
    offset: int | None = None
    try:
        with fitdecode.FitReader(
            content, check_crc=fitdecode.CrcCheck.RAISE, keep_raw_chunks=False, processor=None
        ) as reader:
            for frame in reader:
                if frame.frame_type != fitdecode.FIT_FRAME_DATA:
                    continue
                if frame.name == "record" and fix is None:
                    fix = _fit_fix(frame, wanted)
                elif frame.name == "activity" and offset is None:
                    offset = _fit_offset(frame)
    except fitdecode.FitError as exc:
        msg = f"{filename}: not a readable FIT file ({type(exc).__name__}: {exc})"
        raise TrackError(msg) from None
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{filename}: not a valid gzip file ({exc})"
        raise TrackError(msg) from None
    return offset, fix


def _fit_fix(frame: t.Any, wanted: float | None) -> tuple[float, float] | None:
    lat = frame.get_value("position_lat", fallback=None)
    lng = frame.get_value("position_long", fallback=None)
    if not isinstance(lat, int) or not isinstance(lng, int):
        return None
    moment = frame.get_value("timestamp", fallback=None)
    if wanted is not None and isinstance(moment, (int, float)) and moment < wanted:
        return None  # an earlier activity of the same file
    return lat * SEMICIRCLES_TO_DEGREES, lng * SEMICIRCLES_TO_DEGREES


def _fit_offset(frame: t.Any) -> int | None:
    local = frame.get_value("local_timestamp", fallback=None)
    utc = frame.get_value("timestamp", fallback=None)
    if not isinstance(local, int) or not isinstance(utc, int):
        return None
    offset = round((local - utc) / QUARTER_HOUR) * QUARTER_HOUR
    return offset if abs(offset) <= MAX_OFFSET else None


def zone_at(lat: float, lng: float) -> str | None:
    """The IANA zone at a position (timezonefinder, offline), or None (none, or absent)."""
    finder = _finder()
    if finder is None or not (-90 <= lat <= 90 and -180 <= lng <= 180):
        return None
    name = finder.timezone_at(lng=lng, lat=lat)
    return str(name) if name else None


@functools.cache
def _finder() -> t.Any:
    """The zone finder of timezonefinder, built on first use (about a second: never at start-up)."""
    try:
        from timezonefinder import TimezoneFinder
    except ImportError:  # Python 3.10: timezonefinder 9 needs 3.11; the next rule applies
        return None
    return TimezoneFinder()


def facts_of_bytes(filename: str, data: bytes, start: datetime.datetime | None) -> StartFacts:
    """:func:`read_start_facts` of a file's bytes (tests, tools)."""
    return read_start_facts(filename, io.BytesIO(data), start)
