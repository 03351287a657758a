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

from tap_strava.export_archive import MAX_RATIO, RATIO_FLOOR_BYTES

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

#: Largest decompressed original read, by format. FIT is decoded as a stream, so its bound
#: is on work, not memory (a day at 1 Hz is some 3 MB); GPX and TCX are parsed whole, and
#: gpxpy's objects take about 13 times the file's size, lxml's tree about 5 times (see
#: MEMORY_FACTOR): 24 MiB of GPX is some 65,000 points with every extension, 18 hours at
#: 1 Hz (docs/export-archive.md, Limits).
MAX_BYTES = {"fit": 256 * 2**20, "gpx": 24 * 2**20, "tcx": 48 * 2**20}
#: Peak memory of decoding one file and taking its record in the tap, per decompressed
#: byte (measured on the simulator's files: docs/export-archive.md, Limits); for FIT at
#: most FIT_MEMORY_MAX, as it keeps at most MAX_POINTS samples (about 1.1 KB each).
MEMORY_FACTOR = {"fit": 48, "gpx": 14, "tcx": 6}
FIT_MEMORY_MAX = 300 * 2**20
#: Memory of one job beside its file (its process's buffers, the pipe, the message).
JOB_MEMORY_BASE = 2**20
#: Most samples read from one file: beyond it the file is skipped (no activity has four
#: million samples: 46 days at 1 Hz), so a crafted file cannot keep a worker busy for hours.
MAX_SAMPLES = 4_000_000
#: Most samples kept per track. Beyond it every other sample is dropped (and again, as
#: often as needed): memory and the Singer message stay bounded (a day at 1 Hz is 86,400).
MAX_POINTS = 250_000
SEMICIRCLES_TO_DEGREES = 180.0 / 2**31

# Sample layout: time (seconds since 1970, UTC), lat, lng, altitude, distance, heartrate,
# cadence, watts, temp. Seconds rather than datetimes: a track is thousands of samples,
# and only their differences count.
Point = tuple[
    "float | None",
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


class TrackTooLargeError(TrackError):
    """A file passes a bound (too large, a gzip bomb, too many samples).

    Skipped as any unreadable file, and remembered by its name, size and CRC (see
    :mod:`tap_strava.export_streams`).
    """


class LimitedReader(io.RawIOBase):
    """``handle`` read up to ``limit`` bytes, else :class:`TrackTooLargeError`.

    Also past :data:`MAX_RATIO` times the packed bytes read so far (``packed``, a gzip
    member's source).

    Counting happens as the bytes stream through: nothing is collected here.
    """

    def __init__(
        self,
        handle: t.IO[bytes],
        what: str,
        limit: int,
        packed: t.Callable[[], int] | None = None,
    ) -> None:
        super().__init__()
        self._handle = handle
        self._what = what
        self._limit = limit
        self._packed = packed
        self.total = 0

    def readable(self) -> bool:
        """Always: a reader."""
        return True

    def readinto(self, buffer: t.Any) -> int:
        """Read into ``buffer``, counting against the bounds."""
        try:
            data = self._handle.read(min(len(buffer), 2**16))
        except (OSError, EOFError, zlib.error) as exc:
            msg = f"{self._what}: not a valid gzip file ({exc})"
            raise TrackError(msg) from None
        count = len(data)
        buffer[:count] = data
        self.total += count
        if self.total > self._limit:
            msg = (
                f"{self._what} unpacks to more than {self._limit:,} bytes, the most its format "
                "or its own header allows: too large, or a gzip bomb"
            )
            raise TrackTooLargeError(msg)
        if self._packed is not None and self.total > RATIO_FLOOR_BYTES:
            packed = self._packed()
            if self.total > MAX_RATIO * max(1, packed):
                msg = (
                    f"{self._what} decompresses more than {MAX_RATIO} times its packed size "
                    f"({self.total} bytes from {packed}): a gzip bomb"
                )
                raise TrackTooLargeError(msg)
        return count


class _Counted(io.RawIOBase):
    """A reader that counts the bytes taken from it (the packed side of a gzip member)."""

    def __init__(self, handle: t.IO[bytes]) -> None:
        super().__init__()
        self._handle = handle
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: t.Any) -> int:
        data = self._handle.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.total += count
        return count


def open_content(filename: str, handle: t.IO[bytes], limit: int | None = None) -> t.IO[bytes]:
    """The decompressed content of one original as a bounded, buffered binary stream.

    ``handle`` is the member as stored (maybe gzipped); ``limit`` the most bytes read
    (default: :data:`MAX_BYTES` of its format). A gzip bomb is stopped by the ratio after
    :data:`~tap_strava.export_archive.RATIO_FLOOR_BYTES`, whatever its size.
    """
    kind, gzipped = file_format(filename)
    cap = MAX_BYTES[kind or "fit"] if limit is None else min(limit, MAX_BYTES[kind or "fit"])
    source: t.IO[bytes] = handle
    packed: t.Callable[[], int] | None = None
    if gzipped:
        counted = _Counted(handle)
        source = t.cast("t.IO[bytes]", gzip.GzipFile(fileobj=io.BufferedReader(counted)))
        packed = lambda: counted.total  # noqa: E731 - read at each check
    return io.BufferedReader(LimitedReader(source, filename, cap, packed), buffer_size=2**16)


def memory_cost(filename: str, unpacked: int | None) -> int:
    """The most memory decoding ``filename`` can take, given its unpacked size.

    None: unknown, the format's bound is assumed.
    """
    kind, _ = file_format(filename)
    if kind is None:
        return JOB_MEMORY_BASE
    size = MAX_BYTES[kind] if unpacked is None else min(unpacked, MAX_BYTES[kind])
    cost = MEMORY_FACTOR[kind] * size
    if kind == "fit":
        cost = min(cost, FIT_MEMORY_MAX)
    return JOB_MEMORY_BASE + cost


def read_track(
    filename: str,
    data: bytes | t.IO[bytes],
    *,
    start: datetime.datetime | None = None,
    limit: int | None = None,
) -> Track:
    """The track of one original file: bytes, or the member as a stream, read as decoded.

    ``start`` picks the activity in a multi-activity file; ``limit`` lowers the bound on
    its decompressed size (see :func:`open_content`).
    """
    kind, _ = file_format(filename)
    if kind is None:
        msg = f"{filename}: unknown file type (not .fit, .gpx or .tcx, optionally .gz)"
        raise TrackError(msg)
    raw = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    content = open_content(filename, raw, limit)
    if kind == "fit":
        points = read_fit(content, filename, start)
    else:
        try:
            whole = content.read()  # bounded: GPX and TCX are parsed whole (MAX_BYTES)
        except (OSError, EOFError, zlib.error) as exc:
            msg = f"{filename}: not a valid gzip file ({exc})"
            raise TrackError(msg) from None
        points = read_gpx(whole, filename) if kind == "gpx" else read_tcx(whole, filename, start)
    return build_track(kind, points)


# -- building the series ----------------------------------------------------------------------


class _Decimator:
    """Keeps at most :data:`MAX_POINTS` samples, evenly spaced, while they stream in."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.step = 1
        self.seen = 0

    def add(self, point: Point) -> None:
        if self.seen >= MAX_SAMPLES:
            msg = f"more than {MAX_SAMPLES:,} samples"
            raise TrackTooLargeError(msg)
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
    # Fast paths first: most values are None, int or float (bool is not int for `type`).
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return float(value)
    if kind is float:
        return value if math.isfinite(value) else None
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
    columns = list(zip(*points, strict=True))  # one tuple per slot of Point
    times = columns[0]
    start = next((moment for moment in times if moment is not None), None)
    series: dict[str, list[t.Any] | None] = {}
    if start is not None:
        series["time"] = [None if moment is None else round(moment - start) for moment in times]
    else:
        series["time"] = None
    latlng = [
        [round(lat, 7), round(lng, 7)] if lat is not None and lng is not None else None
        for lat, lng in zip(columns[1], columns[2], strict=True)
    ]
    series["latlng"] = latlng if latlng.count(None) < len(latlng) else None
    for offset, name in enumerate(SERIES[2:], start=3):
        values = t.cast("tuple[float | None, ...]", columns[offset])
        if values.count(None) == len(values):
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


def _seconds(moment: t.Any) -> float | None:
    """Seconds since 1970 of a datetime (a naive one is UTC), else None."""
    if not isinstance(moment, datetime.datetime):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


# -- FIT --------------------------------------------------------------------------------------

#: Where each field of a FIT ``record`` goes in a :data:`Point` (``altitude`` only where
#: ``enhanced_altitude`` is absent: slot 9 is merged into 3).
_FIT_SLOTS = {
    "timestamp": 0,
    "position_lat": 1,
    "position_long": 2,
    "enhanced_altitude": 3,
    "distance": 4,
    "heart_rate": 5,
    "cadence": 6,
    "power": 7,
    "temperature": 8,
    "altitude": 9,
}


def read_fit(
    data: bytes | t.IO[bytes], filename: str, start: datetime.datetime | None
) -> tuple[list[Point], int, int]:
    """Records of the session that starts at ``start`` (Endurain's rule), else all.

    A file with several sessions (a multi-sport or several activities chained) is listed
    once per activity in activities.csv: the session whose start is within 2 s of the
    row's Activity Date owns the records from its start to its end.

    fitdecode runs without its data processor (``processor=None``): the processor turns
    every ``date_time`` into a datetime and looks up a method per field of every message,
    a fifth of the decoding time; the few conversions needed here are done below. Scale,
    offset, components and invalid values (None) are the reader's, processor or not.
    """
    import fitdecode

    raw = _Decimator()
    sessions: list[tuple[float, float | None]] = []
    try:
        with fitdecode.FitReader(
            io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data,
            check_crc=fitdecode.CrcCheck.RAISE,
            keep_raw_chunks=False,
            processor=None,
        ) as reader:
            for frame in reader:
                if frame.frame_type != fitdecode.FIT_FRAME_DATA:
                    continue
                if frame.name == "record":
                    raw.add(_fit_point(frame.fields))
                elif frame.name == "session":
                    began = _fit_seconds(frame.get_value("start_time", fallback=None))
                    if began is not None:
                        elapsed = _number(frame.get_value("total_elapsed_time", fallback=None))
                        sessions.append((began, elapsed))
    except fitdecode.FitError as exc:
        msg = f"{filename}: not a readable FIT file ({type(exc).__name__}: {exc})"
        raise TrackError(msg) from None
    wanted = None if start is None else start.timestamp()
    selected = list(_select_session(raw.points, sessions, wanted))
    return selected, len(selected) * raw.step, raw.step


def _fit_seconds(value: t.Any) -> float | None:
    """A FIT ``date_time`` (seconds since 1989-12-31) as seconds since 1970.

    Values below ``FIT_DATETIME_MIN`` count from the device's power-on, not from the
    epoch: kept as they are, their differences (all a track needs) are still right.
    """
    from fitdecode.processors import FIT_DATETIME_MIN, FIT_UTC_REFERENCE

    seconds = _number(value)
    if seconds is None:
        return None
    return seconds + FIT_UTC_REFERENCE if seconds >= FIT_DATETIME_MIN else seconds


def _fit_point(fields: Iterable[t.Any]) -> Point:
    # One pass over the fields into slots (fitdecode's get_value scans them all for every
    # name asked). The first value of a name wins.
    slots: list[t.Any] = [None] * 10
    for field in fields:
        index = _FIT_SLOTS.get(field.name)
        if index is not None and slots[index] is None:
            slots[index] = field.value
    lat = _number(slots[1])
    lng = _number(slots[2])
    altitude = _number(slots[3])
    return (
        _fit_seconds(slots[0]),
        None if lat is None else lat * SEMICIRCLES_TO_DEGREES,
        None if lng is None else lng * SEMICIRCLES_TO_DEGREES,
        _number(slots[9]) if altitude is None else altitude,
        _number(slots[4]),
        _number(slots[5]),
        _number(slots[6]),
        _number(slots[7]),
        _number(slots[8]),
    )


def _select_session(
    records: list[Point],
    sessions: list[tuple[float, float | None]],
    start: float | None,
) -> Iterable[Point]:
    if len(sessions) < 2 or start is None:
        return records
    ordered = sorted(sessions)
    for index, (began, elapsed) in enumerate(ordered):
        if abs(began - start) > 2:
            continue
        following = ordered[index + 1][0] if index + 1 < len(ordered) else None
        end = began + elapsed if elapsed is not None else following
        if following is not None and (end is None or end > following):
            end = following
        return [
            p
            for p in records
            if p[0] is not None and began <= p[0] and (end is None or p[0] <= end)
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


class _LocalNames(dict[t.Any, str]):
    """Tag -> local name (``{namespace}Trackpoint`` -> ``Trackpoint``), each worked out once.

    The namespaces vary by device and exporter, so elements are matched by local name; a
    file has a handful of distinct tags and hundreds of thousands of elements.
    """

    def __missing__(self, tag: t.Any) -> str:
        name = tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""  # comments: no tag
        self[tag] = name
        return name


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
    names = _LocalNames()
    for track in gpx.tracks:
        for segment in track.segments:
            for point in segment.points:
                extra = _gpx_extensions(point.extensions, names) if point.extensions else {}
                decimator.add(
                    (
                        _seconds(point.time),
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


_GPX_EXTENSIONS = frozenset({"hr", "cad", "atemp", "temp", "power", "powerinwatts"})


def _gpx_extensions(extensions: list[t.Any], names: _LocalNames) -> dict[str, float | None]:
    """hr, cad, atemp, power/PowerInWatts from a point's extensions, any namespace."""
    found: dict[str, float | None] = {}
    for element in extensions:
        for node in element.iter():
            name = names[node.tag].lower()
            if name in _GPX_EXTENSIONS and name not in found:
                found[name] = _number((node.text or "").strip() or None)
    return found


#: Where each element inside a TCX ``Trackpoint`` goes in a :data:`Point` (by local name;
#: ``Value`` is the heart rate's, inside ``HeartRateBpm``; the extension's ``RunCadence``
#: (slot 9) wins over ``Cadence``, which is used where it is absent).
_TCX_SLOTS = {
    "Time": 0,
    "LatitudeDegrees": 1,
    "LongitudeDegrees": 2,
    "AltitudeMeters": 3,
    "DistanceMeters": 4,
    "Value": 5,
    "Cadence": 6,
    "Watts": 7,
    "RunCadence": 9,
}


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
    names = _LocalNames()
    activities = [e for e in root.iter() if names[e.tag] == "Activity"]
    chosen = activities[0] if activities else root
    if start is not None and len(activities) > 1:
        for activity in activities:
            id_text = next((c.text for c in activity if names[c.tag] == "Id"), None)
            began = _parse_time((id_text or "").strip())
            if began is not None and abs(began - start.timestamp()) <= 2:
                chosen = activity
                break
    decimator = _Decimator()
    for point in chosen.iter("{*}Trackpoint"):
        decimator.add(_tcx_point(point, names))
    return decimator.points, decimator.seen, decimator.step


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return _seconds(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _tcx_point(point: t.Any, names: _LocalNames) -> Point:
    slots: list[t.Any] = [None] * 10
    for node in point.iter():
        index = _TCX_SLOTS.get(names[node.tag])
        if index is not None and slots[index] is None:
            slots[index] = node.text
    run_cadence = _number(slots[9])
    return (
        _parse_time((slots[0] or "").strip()),
        _number(slots[1]),
        _number(slots[2]),
        _number(slots[3]),
        _number(slots[4]),
        _number(slots[5]),
        _number(slots[6]) if run_cadence is None else run_cadence,
        _number(slots[7]),
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
