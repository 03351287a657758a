"""Privacy zones: places no drawn route may show, applied to the points before drawing.

A zone is a centre and a radius. Every point within the radius is dropped, and the line
is cut there: a segment between two kept points that passes through a zone (a sparse
summary polyline, a lost fix) is not drawn either, so no drawn segment crosses a zone.
Hiding happens on the data, not on the picture, so a route map, the heatmap and any
later use of :func:`hide`'s output all leave the same gap.

Zones come from a setting (``--privacy-zone LAT,LON,RADIUS_M`` or
``STRAVA_DASHBOARD_PRIVACY_ZONES``) and from the export archive's ``privacy_zones.csv``
(header ``Address,Radius,Latitude & Longitude``). The importer does not load that file
into a table; the report reads it from the archive itself (``--export-archive``). Its
value formats are not documented: the reader takes a radius with a unit (``0.40
kilometers``, ``200 m``, ``0.25 miles``, ``500 feet``; a bare number of metres only when
it is 10 or more) and the first two numbers of the coordinates cell as latitude and
longitude. A row it cannot place is an error naming the fix, never skipped: a zone
silently ignored would draw the home it should hide.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing as t
from pathlib import Path

import numpy as np

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

EARTH_RADIUS_M = 6_371_008.8
#: Segments are cut a little outside the radius too: the distance along a drawn (Mercator)
#: line and the great-circle distance differ by far less than this over a zone's size.
SEGMENT_MARGIN = 1.01
ZONES_FILE = "privacy_zones.csv"
ENV_VAR = "STRAVA_DASHBOARD_PRIVACY_ZONES"
SETTING_HINT = "give it as --privacy-zone LAT,LON,RADIUS_M (metres)"

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?")
_UNITS = {
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "km": 1000.0,
    "kilometer": 1000.0,
    "kilometers": 1000.0,
    "kilometre": 1000.0,
    "kilometres": 1000.0,
    "mi": 1609.344,
    "mile": 1609.344,
    "miles": 1609.344,
    "ft": 0.3048,
    "foot": 0.3048,
    "feet": 0.3048,
}


class ZoneError(ValueError):
    """A zone that cannot be placed; the message names where it came from and the fix."""


@dataclasses.dataclass(frozen=True)
class Zone:
    """A circle no route may enter: centre in degrees, radius in metres."""

    lat: float
    lon: float
    radius_m: float
    origin: str

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            msg = f"{self.origin}: {self.lat},{self.lon} is not a latitude,longitude"
            raise ZoneError(msg)
        if not (math.isfinite(self.radius_m) and self.radius_m > 0):
            msg = f"{self.origin}: the radius must be a positive number of metres"
            raise ZoneError(msg)


def parse_setting(text: str, origin: str = "privacy zone") -> list[Zone]:
    """Zones from ``LAT,LON,RADIUS_M`` items separated by ``;`` or whitespace."""
    zones = []
    for item in re.split(r"[;\s]+", text.strip()):
        if not item:
            continue
        parts = item.split(",")
        try:
            lat, lon, radius = (float(p) for p in parts)
        except ValueError:
            msg = f"{origin} {item!r} is not LAT,LON,RADIUS_M (e.g. 52.37,4.89,500)"
            raise ZoneError(msg) from None
        zones.append(Zone(lat, lon, radius, f"{origin} {item}"))
    return zones


def _number(text: str) -> float:
    return float(text.replace(",", "."))


def parse_radius(text: str, origin: str) -> float:
    """Metres from ``0.40 kilometers``, ``200 m``, ``0.25 miles``, ``500`` (metres, >= 10)."""
    found = re.fullmatch(r"\s*([-+]?\d+(?:[.,]\d+)?)\s*([A-Za-z]*)\.?\s*", text)
    if not found:
        msg = f"{origin}: radius {text!r} is not a number with a unit; {SETTING_HINT}"
        raise ZoneError(msg)
    value, unit = _number(found.group(1)), found.group(2).lower()
    if unit:
        if unit not in _UNITS:
            msg = f"{origin}: unknown radius unit {unit!r}; {SETTING_HINT}"
            raise ZoneError(msg)
        return value * _UNITS[unit]
    if value < 10:
        msg = f"{origin}: radius {text!r} has no unit (metres? km? miles?); {SETTING_HINT}"
        raise ZoneError(msg)
    return value


def parse_zone_rows(rows: Iterable[Sequence[str]], source: str = ZONES_FILE) -> list[Zone]:
    """Zones of ``privacy_zones.csv`` rows (the header first), by column name."""
    iterator = iter(rows)
    header = [h.strip().lstrip("\ufeff").lower() for h in next(iterator, [])]
    radius_at = header.index("radius") if "radius" in header else None
    place_at = next((i for i, h in enumerate(header) if "latitude" in h or "longitude" in h), None)
    zones = []
    for number, row in enumerate(iterator, start=2):
        if not any(cell.strip() for cell in row):
            continue
        origin = f"{source} row {number}"
        cell = row[place_at] if place_at is not None and place_at < len(row) else ""
        numbers = _NUMBER.findall(cell.replace(", ", " ").replace(";", " "))
        if len(numbers) != 2:
            msg = (
                f"{origin} has no coordinates the report can read ({cell!r}; an older "
                f"export has only the address): {SETTING_HINT} and --export-archive '' "
                "to stop reading the archive's zones"
            )
            raise ZoneError(msg)
        radius_text = row[radius_at] if radius_at is not None and radius_at < len(row) else ""
        radius = parse_radius(radius_text, origin)
        zones.append(Zone(_number(numbers[0]), _number(numbers[1]), radius, origin))
    return zones


def read_archive_zones(path: Path) -> list[Zone]:
    """The zones of an export archive (zip or folder); ``[]`` when it has no such file."""
    from tap_strava.export_archive import ArchiveError, ExportArchive, MemberError

    try:
        with ExportArchive(path) as archive:
            if not archive.has(ZONES_FILE):
                return []
            return parse_zone_rows(archive.text_rows(ZONES_FILE), f"{path.name}:{ZONES_FILE}")
    except (ArchiveError, MemberError) as exc:
        msg = (
            f"cannot read the privacy zones of {path}: {exc} (--export-archive '' reads "
            "no archive's zones)"
        )
        raise ZoneError(msg) from None


# -- hiding ------------------------------------------------------------------------------


def distance_m(lat: np.ndarray, lon: np.ndarray, zone: Zone) -> np.ndarray:
    """Great-circle distance (haversine) of each point to the zone's centre."""
    phi1, phi2 = np.radians(lat), math.radians(zone.lat)
    dphi = phi1 - phi2
    dlambda = np.radians(lon - zone.lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * math.cos(phi2) * np.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def mercator(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Web-Mercator world coordinates in [0, 1) (x east, y south), as map tiles use."""
    clipped = np.radians(np.clip(lat, -85.05112878, 85.05112878))
    x = (np.asarray(lon, dtype=float) + 180.0) / 360.0
    y = (1.0 - np.log(np.tan(clipped) + 1.0 / np.cos(clipped)) / math.pi) / 2.0
    return x, y


def _segment_distance(x: np.ndarray, y: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """Distance from (cx, cy) to each segment (x[i], y[i])-(x[i+1], y[i+1])."""
    ax, ay, bx, by = x[:-1] - cx, y[:-1] - cy, x[1:] - cx, y[1:] - cy
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    with np.errstate(invalid="ignore", divide="ignore"):
        along = np.where(length2 > 0, -(ax * dx + ay * dy) / length2, 0.0)
    along = np.clip(along, 0.0, 1.0)
    return np.hypot(ax + along * dx, ay + along * dy)


def hide(points: np.ndarray, zones: Sequence[Zone]) -> list[np.ndarray]:
    """The parts of a track (``(n, 2)`` lat, lon) that may be drawn, as separate lines.

    Points within a zone's radius are gone; the line is cut wherever a point was dropped
    or a segment passes within the radius (checked on the Web-Mercator plane the maps are
    drawn on, where a small circle stays a circle). Parts of one point are dropped: a
    line needs two.
    """
    return hide_and_count(points, zones)[0]


def hide_and_count(points: np.ndarray, zones: Sequence[Zone]) -> tuple[list[np.ndarray], int]:
    """:func:`hide`, and how many points were within a zone (for the report's caption)."""
    points = np.asarray(points, dtype=float).reshape(-1, 2)
    lat, lon = points[:, 0], points[:, 1]
    hidden = np.zeros(len(points), dtype=bool)
    for zone in zones:
        hidden |= distance_m(lat, lon, zone) <= zone.radius_m
    if len(points) < 2:
        return [], int(hidden.sum())
    cut = hidden[:-1] | hidden[1:]
    if zones:
        x, y = mercator(lat, lon)
        for zone in zones:
            cx, cy = mercator(np.array([zone.lat]), np.array([zone.lon]))
            # One world unit is the equator's length times cos(latitude) at the zone.
            world_m = 2 * math.pi * EARTH_RADIUS_M * math.cos(math.radians(zone.lat))
            reach = zone.radius_m * SEGMENT_MARGIN / world_m
            cut |= _segment_distance(x, y, float(cx[0]), float(cy[0])) <= reach
    parts = np.split(points, np.flatnonzero(cut) + 1)
    return [part for part in parts if len(part) >= 2], int(hidden.sum())


def hidden_count(points: np.ndarray, zones: Sequence[Zone]) -> int:
    """How many of the points lie within a zone."""
    return hide_and_count(points, zones)[1]
