"""Original activity files (FIT, GPX, TCX) written by real libraries from the simulator's streams.

A bulk export archive holds each recorded activity's original upload. The simulator writes
those files from exactly the series ``GET /activities/{id}/streams`` answers, so an importer
that decodes a file must get the API's streams back, within what each format can keep
(:data:`PRECISION`). FIT goes through Garmin's own SDK (``garmin-fit-sdk``: fourteen times
faster than fit-tool, which matters for 2,000 one-hour tracks), GPX through ``gpxpy`` (heart
rate and cadence in Garmin's TrackPointExtension v1, power as Strava's plain ``<power>``),
TCX through ``lxml`` (Garmin's TrainingCenterDatabase v2, watts in ActivityExtension v2 TPX).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import gpxpy.gpx
from garmin_fit_sdk import Encoder, Profile
from lxml import etree

#: The series an activity file can carry, in the API's stream names.
TRACK_SERIES = ("time", "latlng", "altitude", "distance", "heartrate", "cadence", "watts", "temp")
#: Which series each format keeps (GPX has no distance; neither GPX nor TCX keeps temperature).
FORMAT_SERIES: dict[str, tuple[str, ...]] = {
    "fit": TRACK_SERIES,
    "gpx": ("time", "latlng", "altitude", "heartrate", "cadence", "watts"),
    "tcx": ("time", "latlng", "altitude", "distance", "heartrate", "cadence", "watts"),
}
#: Largest absolute difference between a decoded value and the API's stream value, per format
#: and series (0 = exact). FIT keeps positions as int32 semicircles (180/2**31 degrees),
#: altitude in steps of 0.2 m and distance in centimetres; GPX and TCX positions are written
#: with 7 decimals, altitude and distance with the API's single decimal. Times are whole
#: seconds everywhere; heart rate, cadence, watts and temperature are integers everywhere.
SEMICIRCLE = 180 / 2**31
PRECISION: dict[str, dict[str, float]] = {
    "fit": {"latlng": SEMICIRCLE, "altitude": 0.1001, "distance": 0.0051},
    "gpx": {"latlng": 5.1e-8, "altitude": 0.0},
    "tcx": {"latlng": 5.1e-8, "altitude": 0.0, "distance": 0.0},
}
LAT_LNG_DECIMALS = 7
GPX_CREATOR = "StravaGPX"
TPX_V1 = "http://www.garmin.com/xmlschemas/TrackPointExtension/v1"
TCX_NS = "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2"
TCX_EXT_NS = "http://www.garmin.com/xmlschemas/ActivityExtension/v2"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
FIT_EPOCH_OFFSET = 631_065_600  # 1989-12-31T00:00:00Z in Unix seconds
_MESG = Profile["mesg_num"]

#: FIT sport and sub-sport of each simulated sport type (FIT profile names).
FIT_SPORTS: dict[str, tuple[str, str]] = {
    "Run": ("running", "generic"),
    "TrailRun": ("running", "trail"),
    "Ride": ("cycling", "road"),
    "GravelRide": ("cycling", "gravel_cycling"),
    "VirtualRide": ("cycling", "virtual_activity"),
    "Swim": ("swimming", "lap_swimming"),
    "Walk": ("walking", "generic"),
    "Hike": ("hiking", "generic"),
    "WeightTraining": ("training", "strength_training"),
    "Yoga": ("training", "yoga"),
}
#: TCX knows three sports only.
TCX_SPORTS = {"Run": "Running", "TrailRun": "Running", "Ride": "Biking", "GravelRide": "Biking"}
TCX_SPORTS["VirtualRide"] = "Biking"
#: The word Strava's own GPX writer puts in ``<trk><type>``.
GPX_TYPES = {"Run": "running", "TrailRun": "running", "Ride": "cycling", "Walk": "walking"}


@dataclass(frozen=True)
class Track:
    """One activity's recorded series: the API's streams plus the absolute start.

    ``time`` holds seconds from ``start_ts`` (the API's ``time`` stream); every other series
    is None when the activity has no such stream (no GPS indoors, no heart rate sensor).
    """

    start_ts: int
    utc_offset: float
    sport_type: str
    name: str
    time: Sequence[int]
    latlng: Sequence[Sequence[float]] | None = None
    altitude: Sequence[float] | None = None
    distance: Sequence[float] | None = None
    heartrate: Sequence[int] | None = None
    cadence: Sequence[int] | None = None
    watts: Sequence[int] | None = None
    temp: Sequence[int] | None = None

    @property
    def series(self) -> tuple[str, ...]:
        """The series this track has, in :data:`TRACK_SERIES` order."""
        return tuple(name for name in TRACK_SERIES if getattr(self, name) is not None)

    @property
    def elapsed(self) -> int:
        """Seconds from the first to the last point."""
        return int(self.time[-1]) if self.time else 0

    def utc(self, index: int) -> datetime:
        """The absolute time of point ``index`` (aware, UTC)."""
        return datetime.fromtimestamp(self.start_ts + int(self.time[index]), tz=timezone.utc)


def carried_series(track: Track, fmt: str, *, with_times: bool = True) -> tuple[str, ...]:
    """The series a file of format ``fmt`` written from ``track`` holds."""
    kept = FORMAT_SERIES[fmt]
    return tuple(s for s in track.series if s in kept and (with_times or s != "time"))


# -- FIT ---------------------------------------------------------------------------------
def _semicircles(degrees: float) -> int:
    return round(degrees * 2**31 / 180)


def fit_bytes(tracks: Sequence[Track], *, serial_number: int = 3_951_234_567) -> bytes:
    """One FIT activity file holding ``tracks`` as consecutive sessions (records in time order).

    One track is an ordinary recording; two or more make a multi-session file, which Strava
    lists as one activity per session (several ``activities.csv`` rows, one Filename).
    """
    if not tracks:
        msg = "a FIT file needs at least one track"
        raise ValueError(msg)
    first, last = tracks[0], tracks[-1]
    enc = Encoder()
    enc.write_mesg(
        {
            "mesg_num": _MESG["FILE_ID"],
            "type": "activity",
            "manufacturer": "garmin",
            "product": 4074,
            "serial_number": serial_number,
            "time_created": first.utc(0),
        }
    )
    enc.write_mesg(
        {
            "mesg_num": _MESG["DEVICE_INFO"],
            "timestamp": first.utc(0),
            "manufacturer": "garmin",
            "product": 4074,
            "serial_number": serial_number,
            "software_version": 12.1,
            "device_index": 0,
        }
    )
    total_timer = 0.0
    for index, track in enumerate(tracks):
        total_timer += _fit_session(enc, track, index)
    end = last.utc(len(last.time) - 1)
    enc.write_mesg(
        {
            "mesg_num": _MESG["ACTIVITY"],
            "timestamp": end,
            "total_timer_time": total_timer,
            "num_sessions": len(tracks),
            "type": "manual",
            "event": "activity",
            "event_type": "stop",
            # local_timestamp is FIT seconds (since 1989-12-31) on the wall clock.
            "local_timestamp": int(end.timestamp()) - FIT_EPOCH_OFFSET + int(last.utc_offset),
        }
    )
    data: bytes = enc.close()
    return data


def _fit_session(enc: Encoder, track: Track, index: int) -> float:
    """Write one track's timer events, records, lap and session; return its timer time."""
    start, n = track.utc(0), len(track.time)
    end = track.utc(n - 1)
    enc.write_mesg(
        {"mesg_num": _MESG["EVENT"], "timestamp": start, "event": "timer", "event_type": "start"}
    )
    record_num = _MESG["RECORD"]
    columns: list[tuple[str, Sequence[Any]]] = []
    if track.altitude is not None:
        columns.append(("altitude", track.altitude))
    if track.distance is not None:
        columns.append(("distance", track.distance))
    if track.heartrate is not None:
        columns.append(("heart_rate", track.heartrate))
    if track.cadence is not None:
        columns.append(("cadence", track.cadence))
    if track.watts is not None:
        columns.append(("power", track.watts))
    if track.temp is not None:
        columns.append(("temperature", track.temp))
    latlng = track.latlng
    for i in range(n):
        record: dict[str, Any] = {"mesg_num": record_num, "timestamp": track.utc(i)}
        if latlng is not None:
            record["position_lat"] = _semicircles(latlng[i][0])
            record["position_long"] = _semicircles(latlng[i][1])
        for field, values in columns:
            record[field] = values[i]
        enc.write_mesg(record)
    enc.write_mesg(
        {"mesg_num": _MESG["EVENT"], "timestamp": end, "event": "timer", "event_type": "stop_all"}
    )
    elapsed = float(track.elapsed)
    distance = float(track.distance[-1]) if track.distance is not None else 0.0
    sport, sub_sport = FIT_SPORTS.get(track.sport_type, ("generic", "generic"))
    totals = {
        "timestamp": end,
        "start_time": start,
        "total_elapsed_time": elapsed,
        "total_timer_time": elapsed,
        "total_distance": distance,
        "sport": sport,
        "sub_sport": sub_sport,
    }
    if track.latlng is not None:
        totals["start_position_lat"] = _semicircles(track.latlng[0][0])
        totals["start_position_long"] = _semicircles(track.latlng[0][1])
    enc.write_mesg(
        {
            "mesg_num": _MESG["LAP"],
            **totals,
            "event": "lap",
            "event_type": "stop",
            "message_index": index,
        }
    )
    enc.write_mesg(
        {
            "mesg_num": _MESG["SESSION"],
            **totals,
            "event": "session",
            "event_type": "stop",
            "first_lap_index": index,
            "num_laps": 1,
            "message_index": index,
        }
    )
    return elapsed


# -- GPX ---------------------------------------------------------------------------------
def gpx_bytes(track: Track, *, with_times: bool = True) -> bytes:
    """A GPX 1.1 file as Strava's app writes it (``creator="StravaGPX"``).

    ``with_times=False`` leaves out every ``<time>`` (some exported GPX files have none).
    Positions are required in GPX, so a track without ``latlng`` cannot be written.
    """
    if track.latlng is None:
        msg = "a GPX file needs positions; this track has no latlng"
        raise ValueError(msg)
    gpx = gpxpy.gpx.GPX()
    gpx.creator = GPX_CREATOR
    gpx.nsmap["gpxtpx"] = TPX_V1
    if with_times:
        gpx.time = track.utc(0)
    trk = gpxpy.gpx.GPXTrack(name=track.name)
    trk.type = GPX_TYPES.get(track.sport_type, track.sport_type.lower())  # type: ignore[assignment]
    gpx.tracks.append(trk)
    segment = gpxpy.gpx.GPXTrackSegment()
    trk.segments.append(segment)
    for i, (lat, lng) in enumerate(track.latlng):
        point = gpxpy.gpx.GPXTrackPoint(
            round(lat, LAT_LNG_DECIMALS),
            round(lng, LAT_LNG_DECIMALS),
            elevation=None if track.altitude is None else track.altitude[i],
            time=track.utc(i) if with_times else None,
        )
        if track.watts is not None:
            power = ET.Element("power")
            power.text = str(track.watts[i])
            point.extensions.append(power)
        if track.heartrate is not None or track.cadence is not None:
            tpx = ET.Element("gpxtpx:TrackPointExtension")
            if track.heartrate is not None:
                ET.SubElement(tpx, "gpxtpx:hr").text = str(track.heartrate[i])
            if track.cadence is not None:
                ET.SubElement(tpx, "gpxtpx:cad").text = str(track.cadence[i])
            point.extensions.append(tpx)
        segment.points.append(point)
    return gpx.to_xml(version="1.1").encode("utf-8")


# -- TCX ---------------------------------------------------------------------------------
def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def tcx_bytes(track: Track) -> bytes:
    """A Garmin TCX v2 file: one activity, one lap, one track; watts in the TPX extension."""
    nsmap = {None: TCX_NS, "ns3": TCX_EXT_NS, "xsi": XSI_NS}
    tcx = "{%s}" % TCX_NS  # noqa: UP031 - Clark notation
    ext = "{%s}" % TCX_EXT_NS  # noqa: UP031
    root = etree.Element(tcx + "TrainingCenterDatabase", nsmap=nsmap)  # type: ignore[dict-item]
    root.set(
        "{%s}schemaLocation" % XSI_NS,  # noqa: UP031
        f"{TCX_NS} http://www.garmin.com/xmlschemas/TrainingCenterDatabasev2.xsd",
    )
    activities = etree.SubElement(root, tcx + "Activities")
    activity = etree.SubElement(
        activities, tcx + "Activity", Sport=TCX_SPORTS.get(track.sport_type, "Other")
    )
    etree.SubElement(activity, tcx + "Id").text = _iso(track.utc(0))
    lap = etree.SubElement(activity, tcx + "Lap", StartTime=_iso(track.utc(0)))
    etree.SubElement(lap, tcx + "TotalTimeSeconds").text = f"{float(track.elapsed):.1f}"
    total = float(track.distance[-1]) if track.distance is not None else 0.0
    etree.SubElement(lap, tcx + "DistanceMeters").text = f"{total:.1f}"
    etree.SubElement(lap, tcx + "Calories").text = "0"
    etree.SubElement(lap, tcx + "Intensity").text = "Active"
    etree.SubElement(lap, tcx + "TriggerMethod").text = "Manual"
    points = etree.SubElement(lap, tcx + "Track")
    sub = etree.SubElement
    for i in range(len(track.time)):
        point = sub(points, tcx + "Trackpoint")
        sub(point, tcx + "Time").text = _iso(track.utc(i))
        if track.latlng is not None:
            position = sub(point, tcx + "Position")
            lat, lng = track.latlng[i]
            sub(position, tcx + "LatitudeDegrees").text = _decimal(lat)
            sub(position, tcx + "LongitudeDegrees").text = _decimal(lng)
        if track.altitude is not None:
            sub(point, tcx + "AltitudeMeters").text = repr(float(track.altitude[i]))
        if track.distance is not None:
            sub(point, tcx + "DistanceMeters").text = repr(float(track.distance[i]))
        if track.heartrate is not None:
            sub(sub(point, tcx + "HeartRateBpm"), tcx + "Value").text = str(track.heartrate[i])
        if track.cadence is not None:
            sub(point, tcx + "Cadence").text = str(track.cadence[i])
        if track.watts is not None:
            tpx = sub(sub(point, tcx + "Extensions"), ext + "TPX")
            sub(tpx, ext + "Watts").text = str(track.watts[i])
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def _decimal(value: float) -> str:
    """Seven decimals without trailing zeros (``52.1``, ``4.9041234``)."""
    text = f"{round(value, LAT_LNG_DECIMALS):.{LAT_LNG_DECIMALS}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def truncated(data: bytes) -> bytes:
    """A file cut short, as an interrupted upload or copy leaves it (bad size and CRC)."""
    return data[: max(16, math.floor(len(data) * 0.6))]
