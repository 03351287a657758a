"""GPS tracks and Google encoded polylines, as Strava sends them in ``map``.

Strava's ``summary_polyline`` and ``polyline`` are Google "encoded polyline" strings (5 decimal
places). Generating real ones (rather than placeholder text) lets a client that decodes them,
or a test that checks the start point, work on simulated data as it would on real data.
"""

from __future__ import annotations

import math
import random

LatLng = tuple[float, float]

_EARTH_M_PER_DEG = 111_320.0


def encode_polyline(points: list[LatLng]) -> str:
    """Encode points with Google's polyline algorithm (precision 1e-5)."""
    out: list[str] = []
    prev_lat = 0
    prev_lng = 0
    for lat, lng in points:
        ilat = round(lat * 1e5)
        ilng = round(lng * 1e5)
        for delta in (ilat - prev_lat, ilng - prev_lng):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                out.append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            out.append(chr(value + 63))
        prev_lat, prev_lng = ilat, ilng
    return "".join(out)


def decode_polyline(encoded: str) -> list[LatLng]:
    """Decode a Google encoded polyline (used by tests and to derive detail streams)."""
    points: list[LatLng] = []
    index = 0
    lat = 0
    lng = 0
    length = len(encoded)
    while index < length:
        deltas: list[int] = []
        for _ in range(2):
            shift = 0
            result = 0
            while True:
                byte = ord(encoded[index]) - 63
                index += 1
                result |= (byte & 0x1F) << shift
                shift += 5
                if byte < 0x20:
                    break
            deltas.append(~(result >> 1) if result & 1 else result >> 1)
        lat += deltas[0]
        lng += deltas[1]
        points.append((lat / 1e5, lng / 1e5))
    return points


def make_track(rng: random.Random, start: LatLng, distance_m: float, points: int) -> list[LatLng]:
    """Make a plausible track of ``distance_m`` metres: an out-and-back loop with jitter.

    Loops are what most training activities look like (start and end close together); the
    heading drifts so the line does not look synthetic on a map.
    """
    points = max(points, 2)
    step = max(distance_m, 1.0) / (points - 1)
    lat, lng = start
    heading = rng.uniform(0, 2 * math.pi)
    track: list[LatLng] = [(lat, lng)]
    half = points // 2
    for i in range(1, points):
        if i == half:
            heading += math.pi  # turn around: come back towards the start
        heading += rng.uniform(-0.35, 0.35)
        dlat = step * math.cos(heading) / _EARTH_M_PER_DEG
        cos_lat = max(math.cos(math.radians(lat)), 0.01)
        dlng = step * math.sin(heading) / (_EARTH_M_PER_DEG * cos_lat)
        lat += dlat
        lng += dlng
        track.append((round(lat, 6), round(lng, 6)))
    return track
