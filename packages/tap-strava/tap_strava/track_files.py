"""The export archive's original uploads (FIT, GPX, TCX, each maybe gzipped) as time-series.

Each reader turns one file into :class:`Track`: one list per series with the API's stream
names (``time``, ``latlng``, ``altitude``, ``distance``, ``heartrate``, ``cadence``,
``watts``, ``temp``), all of the same length and aligned on the samples' times (``time``
is whole seconds from the first sample, as the API's ``time`` stream). A value the file
lacks at a sample, or marks invalid (FIT's 0xFF...), is None. The API's
``velocity_smooth``, ``grade_smooth`` and ``moving`` are Strava's own computations and
are not in any original: they are absent, not guessed.

Readers, chosen on speed and correctness (see ``docs/export-archive.md``):

* FIT: ``fitdecode`` (streams message by message, MIT; garmin-fit-sdk decoded the same
  values about 20 % faster but builds every message of a file at once, under Garmin's
  own licence); CRC checked, so a damaged file is refused rather than half-read.
* GPX: ``gpxpy``; heart rate, cadence and temperature from Garmin's TrackPointExtension,
  power from ``<power>`` or ``PowerInWatts``; distance computed from the positions.
* TCX: ``lxml`` directly (tcxreader reads only from a path, which would mean writing the
  archive's content to disk), entities and network off.

Anything wrong with one file raises :class:`TrackError` (one line naming the file): the
caller loses that activity's track only.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import io
import math
import re
import typing as t
import zlib

from tap_strava.export_archive import (
    MAX_RATIO,
    MEMBER_MAX_BYTES,
    RATIO_FLOOR_BYTES,
    ArchiveBombError,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: Most samples kept per track. Beyond it every other sample is dropped (and again, as
#: often as needed): memory and the Singer message stay bounded (a day at 1 Hz is 86,400).
MAX_POINTS = 250_000
SEMICIRCLES_TO_DEGREES = 180.0 / 2**31

# Sample layout: time, lat, lng, altitude, distance, heartrate, cadence, watts, temp.
Point = tuple[
    "datetime.datetime | None",
    "float | None",
    "float | None",
    "float | None",
    "float | None",
    "float | None",
    "float | None",
    "float | None",
    "float | None",
]
SERIES = ("time", "latlng", "altitude", "distance", "heartrate", "cadence", "watts", "temp")
INTEGER_SERIES = frozenset({"time", "heartrate", "cadence", "watts", "temp"})
#: What each format can hold (a given file may have less). GPX has no distance: computed.
FORMAT_SERIES = {
    "fit": SERIES,
    "gpx": ("time", "latlng", "altitude", "distance", "heartrate", "cadence", "watts", "temp"),
    "tcx": ("time", "latlng", "altitude", "distance", "heartrate", "cadence", "watts"),
}
SUFFIXES = {".fit": "fit", ".gpx": "gpx", ".tcx": "tcx"}


class TrackError(Exception):
    """One file cannot be read as a track: costs that activity's track, nothing else."""


@dataclasses.dataclass
class Track:
    """One activity's samples as aligned series (see the module docstring)."""

    file_format: str
    series: dict[str, list[t.Any] | None]
    original_size: int  # samples in the file for this activity
    point_step: int  # 1: every sample; n: every n-th (see MAX_POINTS)
    computed: list[str] = dataclasses.field(default_factory=list)

    @property
    def present(self) -> list[str]:
        """The series with at least one value."""
        return [name for name in SERIES if self.series.get(name) is not None]


def file_format(filename: str) -> tuple[str | None, bool]:
    """(format, gzipped) by suffix, ``.gz`` outermost; (None, ...) for an unknown suffix."""
    name = filename.lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    for suffix, kind in SUFFIXES.items():
        if name.endswith(suffix):
            return kind, gzipped
    return None, gzipped


def gunzip_bounded(data: bytes, what: str) -> bytes:
    """The gzip member's content, bounded like a zip member (a bomb stops the run)."""
    out = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            while True:
                chunk = handle.read(2**20)
                if not chunk:
                    break
                out.write(chunk)
                size = out.tell()
                if size > MEMBER_MAX_BYTES or (
                    size > RATIO_FLOOR_BYTES and size > MAX_RATIO * max(1, len(data))
                ):
                    msg = (
                        f"{what} decompresses beyond the bounds ({size} bytes from "
                        f"{len(data)}): a gzip bomb; download the archive again from Strava"
                    )
                    raise ArchiveBombError(msg)
    except (OSError, EOFError, zlib.error) as exc:
        msg = f"{what}: not a valid gzip file ({exc})"
        raise TrackError(msg) from None
    return out.getvalue()


def read_track(filename: str, data: bytes, *, start: datetime.datetime | None = None) -> Track:
    """The track of one original file; ``start`` picks the activity in a multi-activity file."""
    kind, gzipped = file_format(filename)
    if kind is None:
        msg = f"{filename}: unknown file type (not .fit, .gpx or .tcx, optionally .gz)"
        raise TrackError(msg)
    if gzipped:
        data = gunzip_bounded(data, filename)
    if kind == "fit":
        points = read_fit(data, filename, start)
    elif kind == "gpx":
        points = read_gpx(data, filename)
    else:
        points = read_tcx(data, filename, start)
    return build_track(kind, points)


# -- building the series ----------------------------------------------------------------------


class _Decimator:
    """Keeps at most :data:`MAX_POINTS` samples, evenly spaced, while they stream in."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.step = 1
        self.seen = 0

    def add(self, point: Point) -> None:
        if self.seen % self.step == 0:
            self.points.append(point)
            if len(self.points) >= MAX_POINTS:
                self.points = self.points[::2]
                self.step *= 2
        self.seen += 1


def _first(value: t.Any) -> t.Any:
    """FIT fields such as ``enhanced_speed`` sometimes decode as tuples: their first value."""
    if isinstance(value, (tuple, list)):
        return value[0] if value else None
    return value


def _number(value: t.Any) -> float | None:
    value = _first(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def build_track(kind: str, collected: tuple[list[Point], int, int]) -> Track:
    """Series from samples: integers where the API's are, one ``72.0`` becomes ``72``.

    target-postgres copies a typed array in one statement: a single float in an integer
    series fails the whole load, so integer series are rounded here, and a series with no
    value at all is None (absent), not a list of nulls.
    """
    points, original_size, step = collected
    if not points:
        msg = "the file has no samples"
        raise TrackError(msg)
    start = next((p[0] for p in points if p[0] is not None), None)
    series: dict[str, list[t.Any] | None] = {}
    if start is not None:
        series["time"] = [
            None if p[0] is None else round((p[0] - start).total_seconds()) for p in points
        ]
    else:
        series["time"] = None
    latlng = [
        [round(p[1], 7), round(p[2], 7)] if p[1] is not None and p[2] is not None else None
        for p in points
    ]
    series["latlng"] = latlng if any(v is not None for v in latlng) else None
    for offset, name in enumerate(SERIES[2:], start=3):
        values = t.cast("list[float | None]", [p[offset] for p in points])
        if all(v is None for v in values):
            series[name] = None
        elif name in INTEGER_SERIES:
            series[name] = [None if v is None else round(v) for v in values]
        else:
            series[name] = [None if v is None else round(v, 3) for v in values]
    computed: list[str] = []
    if kind == "gpx" and series["latlng"] is not None and series.get("distance") is None:
        series["distance"] = cumulative_distance(latlng)
        computed.append("distance")
    return Track(kind, series, original_size, step, computed)


def cumulative_distance(latlng: list[list[float] | None]) -> list[float | None]:
    """Metres along the positions (haversine), as Strava computes a GPX's distance."""
    total = 0.0
    previous: list[float] | None = None
    out: list[float | None] = []
    for position in latlng:
        if position is None:
            out.append(None)
            continue
        if previous is not None:
            total += haversine(previous, position)
        previous = position
        out.append(round(total, 1))
    return out


def haversine(a: list[float], b: list[float]) -> float:
    """Great-circle metres between two [lat, lng] in degrees."""
    lat1, lng1, lat2, lng2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * 6_371_000.0 * math.asin(min(1.0, math.sqrt(h)))


def _as_utc(moment: t.Any) -> datetime.datetime | None:
    if not isinstance(moment, datetime.datetime):
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


# -- FIT --------------------------------------------------------------------------------------


def read_fit(
    data: bytes, filename: str, start: datetime.datetime | None
) -> tuple[list[Point], int, int]:
    """Records of the session that starts at ``start`` (Endurain's rule), else all.

    A file with several sessions (a multi-sport or several activities chained) is listed
    once per activity in activities.csv: the session whose start is within 2 s of the
    row's Activity Date owns the records from its start to its end.
    """
    import fitdecode

    raw = _Decimator()
    sessions: list[tuple[datetime.datetime, float | None]] = []
    try:
        with fitdecode.FitReader(
            io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE, keep_raw_chunks=False
        ) as reader:
            for frame in reader:
                if not isinstance(frame, fitdecode.FitDataMessage):
                    continue
                if frame.name == "record":
                    raw.add(_fit_point(frame))
                elif frame.name == "session":
                    began = _as_utc(frame.get_value("start_time", fallback=None))
                    if began is not None:
                        elapsed = _number(frame.get_value("total_elapsed_time", fallback=None))
                        sessions.append((began, elapsed))
    except fitdecode.FitError as exc:
        msg = f"{filename}: not a readable FIT file ({type(exc).__name__}: {exc})"
        raise TrackError(msg) from None
    selected = list(_select_session(raw.points, sessions, start))
    return selected, len(selected) * raw.step, raw.step


def _fit_point(frame: t.Any) -> Point:
    # One pass over the fields: fitdecode's get_value scans them all for every name asked
    # (a third of an import's time went there). The first field of a name wins, as there.
    fields: dict[str, t.Any] = {}
    for field in frame.fields:
        fields.setdefault(field.name, field.value)

    def value(*names: str) -> float | None:
        for name in names:
            number = _number(fields.get(name))
            if number is not None:
                return number
        return None

    lat = value("position_lat")
    lng = value("position_long")
    return (
        _as_utc(fields.get("timestamp")),
        None if lat is None else lat * SEMICIRCLES_TO_DEGREES,
        None if lng is None else lng * SEMICIRCLES_TO_DEGREES,
        value("enhanced_altitude", "altitude"),
        value("distance"),
        value("heart_rate"),
        value("cadence"),
        value("power"),
        value("temperature"),
    )


def _select_session(
    records: list[Point],
    sessions: list[tuple[datetime.datetime, float | None]],
    start: datetime.datetime | None,
) -> Iterable[Point]:
    if len(sessions) < 2 or start is None:
        return records
    ordered = sorted(sessions)
    for index, (began, elapsed) in enumerate(ordered):
        if abs((began - start).total_seconds()) > 2:
            continue
        following = ordered[index + 1][0] if index + 1 < len(ordered) else None
        end = began + datetime.timedelta(seconds=elapsed) if elapsed is not None else following
        if following is not None and (end is None or end > following):
            end = following
        return [
            p
            for p in records
            if p[0] is not None and began <= p[0] and (end is None or p[0] < end or p[0] == end)
        ]
    return records


# -- XML (GPX, TCX) -----------------------------------------------------------------------------

_DECLARED_ENCODING = re.compile(rb"^<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']")


def xml_text(data: bytes, filename: str) -> str:
    """The document as text: leading whitespace before ``<?xml`` stripped, any encoding.

    Strava's TCX (and some GPX) files start with blanks, which strict parsers refuse; a
    file that is not UTF-8 is read in the encoding it declares, else Windows-1252. The
    declaration is removed (the text is decoded already).
    """
    body = data.lstrip(b"\xef\xbb\xbf").lstrip()
    if not body.startswith(b"<"):
        msg = f"{filename}: not an XML document"
        raise TrackError(msg)
    declared = _DECLARED_ENCODING.match(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        encoding = declared.group(1).decode() if declared else "cp1252"
        try:
            text = body.decode(encoding, errors="replace")
        except LookupError:
            text = body.decode("cp1252", errors="replace")
    return re.sub(r"^<\?xml[^>]*\?>", "", text, count=1)


def _local(tag: t.Any) -> str:
    return str(tag).rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def read_gpx(data: bytes, filename: str) -> tuple[list[Point], int, int]:
    """Every track point of the file (one GPX is one activity)."""
    import gpxpy
    import gpxpy.gpx

    text = xml_text(data, filename)
    try:
        gpx = gpxpy.parse(text)
    except (gpxpy.gpx.GPXException, ValueError) as exc:
        msg = f"{filename}: not a readable GPX file ({exc})"
        raise TrackError(msg) from None
    decimator = _Decimator()
    for track in gpx.tracks:
        for segment in track.segments:
            for point in segment.points:
                extra = _gpx_extensions(point.extensions)
                decimator.add(
                    (
                        _as_utc(point.time),
                        _number(point.latitude),
                        _number(point.longitude),
                        _number(point.elevation),
                        None,
                        extra.get("hr"),
                        extra.get("cad"),
                        extra.get("power", extra.get("powerinwatts")),
                        extra.get("atemp", extra.get("temp")),
                    )
                )
    return decimator.points, decimator.seen, decimator.step


def _gpx_extensions(extensions: list[t.Any]) -> dict[str, float | None]:
    """hr, cad, atemp, power/PowerInWatts from a point's extensions, any namespace."""
    found: dict[str, float | None] = {}
    for element in extensions or []:
        for node in element.iter():
            name = _local(node.tag).lower()
            if name in {"hr", "cad", "atemp", "temp", "power", "powerinwatts"}:
                found.setdefault(name, _number((node.text or "").strip() or None))
    return found


def read_tcx(
    data: bytes, filename: str, start: datetime.datetime | None
) -> tuple[list[Point], int, int]:
    """Trackpoints of the activity whose Id (its start) is ``start``, else of the first."""
    from lxml import etree

    text = xml_text(data, filename)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except etree.XMLSyntaxError as exc:
        msg = f"{filename}: not a readable TCX file ({exc})"
        raise TrackError(msg) from None
    activities = [e for e in root.iter() if _local(e.tag) == "Activity"]
    chosen = activities[0] if activities else root
    if start is not None and len(activities) > 1:
        for activity in activities:
            began = _parse_time(_child_text(activity, "Id"))
            if began is not None and abs((began - start).total_seconds()) <= 2:
                chosen = activity
                break
    decimator = _Decimator()
    for point in chosen.iter():
        if _local(point.tag) == "Trackpoint":
            decimator.add(_tcx_point(point))
    return decimator.points, decimator.seen, decimator.step


def _child_text(element: t.Any, *path: str) -> str | None:
    node = element
    for name in path:
        node = next((c for c in node if _local(c.tag) == name), None)
        if node is None:
            return None
    return (node.text or "").strip() or None


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return _as_utc(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _tcx_point(point: t.Any) -> Point:
    watts = cadence = None
    for node in point.iter():
        name = _local(node.tag)
        if name == "Watts":
            watts = _number(node.text)
        elif name == "RunCadence":
            cadence = _number(node.text)
    return (
        _parse_time(_child_text(point, "Time")),
        _number(_child_text(point, "Position", "LatitudeDegrees")),
        _number(_child_text(point, "Position", "LongitudeDegrees")),
        _number(_child_text(point, "AltitudeMeters")),
        _number(_child_text(point, "DistanceMeters")),
        _number(_child_text(point, "HeartRateBpm", "Value")),
        _number(_child_text(point, "Cadence")) if cadence is None else cadence,
        watts,
        None,
    )


def series_points(track: Track) -> Iterator[dict[str, t.Any]]:
    """The samples of a track as dicts (for tests and comparisons)."""
    length = max((len(v) for v in track.series.values() if v is not None), default=0)
    for index in range(length):
        yield {
            name: (values[index] if values is not None else None)
            for name, values in track.series.items()
        }
