"""Strava export archives for tests, written by real libraries (fit-tool, gpxpy, lxml, csv).

Each sample is one point per second from ``start``: position, altitude, distance, heart
rate, cadence, power and temperature, so that a reader's output can be compared point by
point with what was written.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import gzip
import io
import typing as t
import zipfile
from pathlib import Path

UTC = datetime.timezone.utc

ENGLISH_HEADER = [
    "Activity ID", "Activity Date", "Activity Name", "Activity Type", "Activity Description",
    "Elapsed Time", "Distance", "Max Heart Rate", "Relative Effort", "Commute",
    "Activity Private Note", "Activity Gear", "Filename", "Athlete Weight", "Bike Weight",
    "Elapsed Time", "Moving Time", "Distance", "Max Speed", "Average Speed", "Elevation Gain",
    "Max Heart Rate", "Average Heart Rate", "Relative Effort", "Commute", "Media",
]  # fmt: skip

GERMAN_HEADER = [
    "Aktivitäts-ID", "Aktivitätsdatum", "Name der Aktivität", "Aktivitätsart",
    "Aktivitätsbeschreibung", "Verstrichene Zeit", "Distanz", "Dateiname", "Verstrichene Zeit",
    "Bewegungszeit", "Distanz", "Medien", "Eine neue Spalte",
]  # fmt: skip


@dataclasses.dataclass
class Sample:
    """One point of a written track."""

    seconds: int
    lat: float
    lng: float
    altitude: float
    distance: float
    heartrate: int
    cadence: int
    watts: int
    temp: int


def samples(count: int, *, seed: int = 0) -> list[Sample]:
    """``count`` points, one per second, moving north-east (values vary with ``seed``)."""
    return [
        Sample(
            seconds=i,
            lat=52.0 + seed * 0.01 + i * 1e-5,
            lng=4.0 + i * 1.5e-5,
            altitude=10.0 + (i % 20) * 0.4,
            distance=i * 2.5,
            heartrate=110 + (i + seed) % 50,
            cadence=80 + i % 9,
            watts=180 + (i * 7) % 60,
            temp=18 + i % 3,
        )
        for i in range(count)
    ]


def fit_bytes(
    start: datetime.datetime,
    points: list[Sample],
    *,
    sessions: list[tuple[datetime.datetime, int]] | None = None,
    invalid_hr_at: t.Iterable[int] = (),
) -> bytes:
    """A FIT activity file written by fit-tool (heart rate unset, i.e. invalid, where asked)."""
    from fit_tool.fit_file_builder import FitFileBuilder
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.messages.record_message import RecordMessage
    from fit_tool.profile.messages.session_message import SessionMessage
    from fit_tool.profile.profile_type import FileType, Manufacturer, Sport

    builder = FitFileBuilder(auto_define=True)
    file_id = FileIdMessage()
    file_id.type = FileType.ACTIVITY
    file_id.manufacturer = Manufacturer.DEVELOPMENT.value
    file_id.product = 0
    file_id.serial_number = 12345
    file_id.time_created = int(start.timestamp() * 1000)
    builder.add(file_id)
    invalid = set(invalid_hr_at)
    base = int(start.timestamp() * 1000)
    for point in points:
        record = RecordMessage()
        record.timestamp = base + point.seconds * 1000
        record.position_lat = point.lat
        record.position_long = point.lng
        record.altitude = point.altitude
        record.distance = point.distance
        if point.seconds not in invalid:
            record.heart_rate = point.heartrate
        record.cadence = point.cadence
        record.power = point.watts
        record.temperature = point.temp
        builder.add(record)
    for began, elapsed in sessions or [(start, points[-1].seconds if points else 0)]:
        session = SessionMessage()
        session.timestamp = int(began.timestamp() * 1000) + elapsed * 1000
        session.start_time = int(began.timestamp() * 1000)
        session.total_elapsed_time = float(elapsed)
        session.sport = Sport.RUNNING
        builder.add(session)
    return bytes(builder.build().to_bytes())


def gpx_bytes(
    start: datetime.datetime | None, points: list[Sample], *, leading_whitespace: bool = False
) -> bytes:
    """A Strava-style GPX written by gpxpy, with TrackPointExtension hr/cad/atemp and power."""
    import xml.etree.ElementTree as ET

    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    gpx.creator = "StravaGPX"
    gpx.nsmap["gpxtpx"] = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
    track = gpxpy.gpx.GPXTrack()
    gpx.tracks.append(track)
    segment = gpxpy.gpx.GPXTrackSegment()
    track.segments.append(segment)
    ns = "{http://www.garmin.com/xmlschemas/TrackPointExtension/v1}"
    for point in points:
        moment = start + datetime.timedelta(seconds=point.seconds) if start else None
        gpx_point = gpxpy.gpx.GPXTrackPoint(
            point.lat, point.lng, elevation=point.altitude, time=moment
        )
        power = ET.Element("power")
        power.text = str(point.watts)
        tpx = ET.Element(f"{ns}TrackPointExtension")
        for name, value in (("atemp", point.temp), ("hr", point.heartrate), ("cad", point.cadence)):
            child = ET.SubElement(tpx, f"{ns}{name}")
            child.text = str(value)
        gpx_point.extensions.extend([power, tpx])
        segment.points.append(gpx_point)
    text = gpx.to_xml()
    return (("\n   " if leading_whitespace else "") + text).encode("utf-8")


def tcx_bytes(
    start: datetime.datetime, points: list[Sample], *, leading_whitespace: bool = True
) -> bytes:
    """A Garmin TCX written with lxml, blanks before ``<?xml`` as Strava's TCX have."""
    from lxml import etree

    ns = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
    ext = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"
    root = etree.Element(f"{{{ns}}}TrainingCenterDatabase", nsmap={None: ns, "ns3": ext})
    activities = etree.SubElement(root, f"{{{ns}}}Activities")
    activity = etree.SubElement(activities, f"{{{ns}}}Activity", Sport="Running")
    etree.SubElement(activity, f"{{{ns}}}Id").text = start.isoformat().replace("+00:00", "Z")
    lap = etree.SubElement(activity, f"{{{ns}}}Lap", StartTime=start.isoformat())
    track = etree.SubElement(lap, f"{{{ns}}}Track")
    for point in points:
        trackpoint = etree.SubElement(track, f"{{{ns}}}Trackpoint")
        moment = start + datetime.timedelta(seconds=point.seconds)
        etree.SubElement(trackpoint, f"{{{ns}}}Time").text = moment.isoformat().replace(
            "+00:00", "Z"
        )
        position = etree.SubElement(trackpoint, f"{{{ns}}}Position")
        etree.SubElement(position, f"{{{ns}}}LatitudeDegrees").text = repr(point.lat)
        etree.SubElement(position, f"{{{ns}}}LongitudeDegrees").text = repr(point.lng)
        etree.SubElement(trackpoint, f"{{{ns}}}AltitudeMeters").text = repr(point.altitude)
        etree.SubElement(trackpoint, f"{{{ns}}}DistanceMeters").text = repr(point.distance)
        heart = etree.SubElement(trackpoint, f"{{{ns}}}HeartRateBpm")
        etree.SubElement(heart, f"{{{ns}}}Value").text = str(point.heartrate)
        etree.SubElement(trackpoint, f"{{{ns}}}Cadence").text = str(point.cadence)
        extensions = etree.SubElement(trackpoint, f"{{{ns}}}Extensions")
        tpx = etree.SubElement(extensions, f"{{{ext}}}TPX")
        etree.SubElement(tpx, f"{{{ext}}}Watts").text = str(point.watts)
    body = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return (b"        \n" if leading_whitespace else b"") + body


def english_date(moment: datetime.datetime) -> str:
    """``May 29, 2022, 3:53:35 PM`` (the export's format since mid-2019, UTC)."""
    hour = moment.hour % 12 or 12
    return f"{moment:%b} {moment.day}, {moment.year}, {hour}:{moment:%M:%S} {moment:%p}"


@dataclasses.dataclass
class Activity:
    """One row of activities.csv and, if ``filename``, its original file."""

    id: int
    start: datetime.datetime
    name: str = "Morning Run"
    kind: str = "Run"
    description: str = ""
    filename: str = ""
    content: bytes | None = None  # None with a filename: listed but missing
    distance: float = 5000.0
    elapsed: int = 1800
    moving: int = 1700
    gear: str = ""
    media: str = ""


def english_row(activity: Activity) -> list[str]:
    return [
        str(activity.id), english_date(activity.start), activity.name, activity.kind,
        activity.description, str(activity.elapsed), f"{activity.distance / 1000:.2f}", "",
        "12", "false", "", activity.gear, activity.filename, "70.0", "", f"{activity.elapsed}.0",
        f"{activity.moving}.0", f"{activity.distance}", "4.1", "2.9", "42.0", "171.0", "140.5",
        "12.0", "0.0", activity.media,
    ]  # fmt: skip


def write_archive(
    path: Path,
    activities: list[Activity],
    *,
    athlete_id: int = 4242,
    header: list[str] | None = None,
    rows: list[list[str]] | None = None,
    bikes: list[list[str]] | None = None,
    folder: bool = False,
    extra_members: dict[str, bytes] | None = None,
    prefix: str = "",
) -> Path:
    """A Strava-like export zip (or folder) with the given activities and their files."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header or ENGLISH_HEADER)
    for row in rows if rows is not None else [english_row(a) for a in activities]:
        writer.writerow(row)
    members: dict[str, bytes] = {
        "activities.csv": buffer.getvalue().encode("utf-8"),
        "profile.csv": (
            "Athlete ID,Email Address,First Name,Last Name\n"
            f"{athlete_id},ann@example.com,Ann,Example\n"
        ).encode(),
        "bikes.csv": _csv(
            ["Bike Name", "Bike Brand", "Bike Model", "Bike Default Sport Types"],
            bikes if bikes is not None else [["Blue", "Gazelle", "Ultimate", "Ride"]],
        ),
        "shoes.csv": _csv(
            ["Shoe Name", "Shoe Brand", "Shoe Model", "Shoe Default Sport Types"],
            [["Daily", "Asics", "Novablast", "Run"]],
        ),
    }
    for activity in activities:
        if activity.filename and activity.content is not None:
            members[activity.filename] = activity.content
    members.update(extra_members or {})
    if folder:
        for name, data in members.items():
            target = path / prefix / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return path
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(prefix + name, data)
    return path


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def start_at(day: int, hour: int = 15) -> datetime.datetime:
    return datetime.datetime(2024, 5, day, hour, 53, 35, tzinfo=UTC)


def standard_activities() -> list[Activity]:
    """Five activities: FIT.gz, GPX, TCX.gz (blanks before <?xml), GPX.gz, a manual one."""
    pts = samples(120)
    return [
        Activity(101, start_at(1), filename="activities/101.fit.gz",
                 content=gz(fit_bytes(start_at(1), pts, invalid_hr_at={3, 4})), gear="Blue"),
        Activity(102, start_at(2), name="Lunch Ride", kind="Ride",
                 description="line one\nline two, with \"quotes\"\n# not a comment",
                 filename="activities/9000000102.gpx", content=gpx_bytes(start_at(2), pts)),
        Activity(103, start_at(3), filename="activities/103.tcx.gz",
                 content=gz(tcx_bytes(start_at(3), pts))),
        Activity(104, start_at(4), filename="activities/104.gpx.gz",
                 content=gz(gpx_bytes(start_at(4), pts, leading_whitespace=True))),
        Activity(105, start_at(5), name="Yoga", kind="Yoga"),
    ]  # fmt: skip
