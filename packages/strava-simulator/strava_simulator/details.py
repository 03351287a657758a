"""Per-activity detail: ``/activities/{id}``, ``/laps``, ``/zones`` and ``/streams``.

Details are derived on demand from the stored summary and a per-activity seed, so a history
of 10,000 activities costs nothing until a client asks for one, and the same activity always
gives the same laps, splits and streams. Laps, splits and streams are consistent with the
summary (same distance and times, same track as the summary polyline).
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from strava_simulator import timeutil
from strava_simulator.activity_factory import StoredActivity
from strava_simulator.data import gear_summary
from strava_simulator.geo import LatLng, decode_polyline, encode_polyline

JSONDict = dict[str, Any]

STREAM_TYPES = (
    "time",
    "distance",
    "latlng",
    "altitude",
    "velocity_smooth",
    "heartrate",
    "cadence",
    "watts",
    "temp",
    "moving",
    "grade_smooth",
)
_BEST_EFFORTS = (
    ("400m", 400),
    ("1/2 mile", 805),
    ("1k", 1000),
    ("1 mile", 1609),
    ("2 mile", 3219),
    ("5k", 5000),
    ("10k", 10000),
    ("15k", 15000),
    ("10 mile", 16090),
    ("20k", 20000),
    ("Half-Marathon", 21097),
    ("30k", 30000),
    ("Marathon", 42195),
)
#: At most this many stream points (Strava's "high" resolution is 10,000 at most).
MAX_STREAM_POINTS = 10_000


def _rng(activity: StoredActivity, salt: int) -> random.Random:
    return random.Random(activity.detail_seed * 31 + salt)  # noqa: S311 - test data


def _ref(activity: StoredActivity) -> JSONDict:
    return {"id": activity.id, "visibility": activity.visibility, "resource_state": 1}


def _athlete_ref(activity: StoredActivity) -> JSONDict:
    return {"id": activity.summary["athlete"]["id"], "resource_state": 1}


def _dense_track(activity: StoredActivity) -> list[LatLng]:
    """Densify the summary polyline four times (the detailed ``map.polyline``)."""
    encoded = activity.summary["map"].get("summary_polyline")
    if not encoded:
        return []
    points = decode_polyline(encoded)
    rng = _rng(activity, 1)
    dense: list[LatLng] = []
    for (lat1, lng1), (lat2, lng2) in itertools.pairwise(points):
        for k in range(4):
            f = k / 4
            jitter = 0.0 if k == 0 else rng.uniform(-2e-5, 2e-5)
            dense.append((lat1 + (lat2 - lat1) * f + jitter, lng1 + (lng2 - lng1) * f + jitter))
    dense.append(points[-1])
    return dense


def _stream_len(activity: StoredActivity) -> int:
    elapsed = int(activity.summary["elapsed_time"])
    return max(2, min(elapsed + 1, MAX_STREAM_POINTS))


def _splits(activity: StoredActivity, unit: float) -> list[JSONDict]:
    s = activity.summary
    distance = float(s["distance"])
    if distance <= 0 or s["manual"]:
        return []
    rng = _rng(activity, 2 if unit == 1000 else 3)
    count = math.ceil(distance / unit)
    splits = []
    remaining_moving = int(s["moving_time"])
    remaining_elapsed = int(s["elapsed_time"])
    for i in range(count):
        part = min(unit, distance - i * unit)
        share = part / distance
        moving = remaining_moving if i == count - 1 else int(s["moving_time"] * share)
        elapsed = remaining_elapsed if i == count - 1 else int(s["elapsed_time"] * share)
        remaining_moving -= moving
        remaining_elapsed -= elapsed
        split: JSONDict = {
            "distance": round(part, 1),
            "elapsed_time": elapsed,
            "elevation_difference": round(rng.uniform(-8, 8), 1),
            "moving_time": moving,
            "split": i + 1,
            "average_speed": round(part / max(moving, 1), 2),
            "average_grade_adjusted_speed": round(part / max(moving, 1) * 1.02, 2),
        }
        if s.get("has_heartrate"):
            split["average_heartrate"] = float(s["average_heartrate"]) + rng.uniform(-6, 6)
        split["pace_zone"] = rng.randint(1, 5)
        splits.append(split)
    return splits


def laps(activity: StoredActivity) -> list[JSONDict]:
    """Laps (at least one, automatic 5 km laps for long distance activities)."""
    s = activity.summary
    rng = _rng(activity, 4)
    distance = float(s["distance"])
    count = 1 if distance <= 0 or s["manual"] else max(1, min(20, int(distance // 5000)))
    n_points = _stream_len(activity)
    result = []
    offset_s = 0
    for i in range(count):
        share = 1 / count
        elapsed = int(s["elapsed_time"] * share)
        moving = int(s["moving_time"] * share)
        lap_distance = round(distance * share, 1)
        start_ts = activity.start_ts + offset_s
        lap: JSONDict = {
            "id": activity.id * 2 + 10_000_000_000 + i,
            "resource_state": 2,
            "name": f"Lap {i + 1}",
            "activity": _ref(activity),
            "athlete": _athlete_ref(activity),
            "elapsed_time": elapsed,
            "moving_time": moving,
            "start_date": timeutil.iso_utc(start_ts),
            "start_date_local": timeutil.iso_local(start_ts, float(s["utc_offset"])),
            "distance": lap_distance,
            "average_speed": round(lap_distance / max(moving, 1), 2),
            "max_speed": float(s["max_speed"]),
            "lap_index": i + 1,
            "split": i + 1,
            "start_index": (n_points - 1) * i // count,
            "end_index": (n_points - 1) * (i + 1) // count,
            "total_elevation_gain": round(float(s["total_elevation_gain"]) * share, 1),
        }
        if "average_cadence" in s:
            lap["average_cadence"] = round(float(s["average_cadence"]) + rng.uniform(-2, 2), 1)
        lap["device_watts"] = bool(s.get("device_watts", False))
        if "average_watts" in s:
            lap["average_watts"] = round(float(s["average_watts"]) + rng.uniform(-15, 15), 1)
        if s.get("has_heartrate"):
            lap["average_heartrate"] = round(float(s["average_heartrate"]) + rng.uniform(-5, 5), 1)
            lap["max_heartrate"] = float(s["max_heartrate"])
        if s.get("type") == "Run":
            lap["pace_zone"] = rng.randint(1, 5)
        result.append(lap)
        offset_s += elapsed
    return result


def _best_efforts(activity: StoredActivity) -> list[JSONDict]:
    s = activity.summary
    if s.get("type") != "Run" or s["manual"]:
        return []
    rng = _rng(activity, 5)
    distance = float(s["distance"])
    speed = max(float(s["average_speed"]), 0.5)
    n_points = _stream_len(activity)
    efforts = []
    for i, (name, meters) in enumerate(_BEST_EFFORTS):
        if meters > distance:
            break
        seconds = int(meters / (speed * rng.uniform(1.0, 1.15)))
        start_index = rng.randint(0, max(0, n_points - 1 - seconds))
        start_ts = activity.start_ts + start_index
        pr_rank = rng.choice((None, None, None, 1, 2, 3))
        efforts.append(
            {
                "id": activity.id * 3 + 20_000_000_000 + i,
                "resource_state": 2,
                "name": name,
                "activity": _ref(activity),
                "athlete": _athlete_ref(activity),
                "elapsed_time": seconds,
                "moving_time": seconds,
                "start_date": timeutil.iso_utc(start_ts),
                "start_date_local": timeutil.iso_local(start_ts, float(s["utc_offset"])),
                "distance": meters,
                "pr_rank": pr_rank,
                "achievements": []
                if pr_rank is None
                else [{"type_id": 3, "type": "pr", "rank": pr_rank}],
                "start_index": start_index,
                "end_index": min(n_points - 1, start_index + seconds),
            }
        )
    return efforts


def available_zones(activity: StoredActivity) -> list[str]:
    """Zone types this activity has data for."""
    s = activity.summary
    zones = []
    if s.get("has_heartrate"):
        zones.append("heartrate")
    if s.get("device_watts"):
        zones.append("power")
    if s.get("type") == "Run" and float(s["distance"]) > 0 and not s["manual"]:
        zones.append("pace")
    return zones


def detailed(activity: StoredActivity, gear: dict[str, JSONDict]) -> JSONDict:
    """The DetailedActivity object (resource_state 3)."""
    s = copy.deepcopy(activity.summary)
    device_name = s.pop("device_name", None)
    hide_from_home = s.pop("hide_from_home", False)
    s["resource_state"] = 3
    summary_polyline = s["map"].get("summary_polyline")
    track = _dense_track(activity)
    s["map"] = {
        "id": s["map"]["id"],
        "polyline": encode_polyline(track) if track else summary_polyline,
        "resource_state": 3,
        "summary_polyline": summary_polyline,
    }
    extra = activity.extra
    s["description"] = extra.get("description")
    s["calories"] = extra.get("calories", 0.0)
    s["perceived_exertion"] = extra.get("perceived_exertion")
    s["prefer_perceived_exertion"] = None if extra.get("perceived_exertion") is None else False
    s["segment_efforts"] = []
    s["splits_metric"] = _splits(activity, 1000.0)
    s["splits_standard"] = _splits(activity, 1609.34)
    s["laps"] = laps(activity)
    s["best_efforts"] = _best_efforts(activity)
    gear_id = s.get("gear_id")
    if gear_id and gear_id in gear:
        item = gear_summary(gear[gear_id])
        s["gear"] = item
    s["photos"] = {"primary": None, "count": 0}
    s["stats_visibility"] = [
        {"type": t, "visibility": "everyone"}
        for t in ("heart_rate", "pace", "power", "speed", "calories")
    ]
    s["hide_from_home"] = hide_from_home
    s["device_name"] = device_name
    s["embed_token"] = f"{_rng(activity, 6).getrandbits(160):040x}"
    s["similar_activities"] = None
    s["available_zones"] = available_zones(activity)
    return s


def zones(activity: StoredActivity) -> list[JSONDict]:
    """``GET /activities/{id}/zones``: time in each heart rate, pace or power zone."""
    s = activity.summary
    rng = _rng(activity, 7)
    moving = int(s["moving_time"])
    result: list[JSONDict] = []

    def buckets(bounds: list[tuple[float, float]]) -> list[JSONDict]:
        weights = [rng.uniform(0.2, 3) for _ in bounds]
        total = sum(weights)
        return [
            {"min": lo, "max": hi, "time": float(round(moving * w / total))}
            for (lo, hi), w in zip(bounds, weights, strict=True)
        ]

    for zone in available_zones(activity):
        if zone == "heartrate":
            bounds: list[tuple[float, float]] = [
                (0, 116),
                (117, 144),
                (145, 158),
                (159, 173),
                (174, -1),
            ]
            result.append(
                {
                    "score": float(rng.randint(10, 300)),
                    "distribution_buckets": buckets(bounds),
                    "type": "heartrate",
                    "resource_state": 3,
                    "sensor_based": True,
                    "points": rng.randint(10, 600),
                    "custom_zones": False,
                }
            )
        elif zone == "power":
            bounds = [
                (0, 120),
                (121, 165),
                (166, 198),
                (199, 231),
                (232, 264),
                (265, 330),
                (331, -1),
            ]
            result.append(
                {
                    "score": rng.randint(5, 300),
                    "distribution_buckets": buckets(bounds),
                    "type": "power",
                    "resource_state": 3,
                    "sensor_based": True,
                }
            )
        else:
            bounds = [
                (0, 2.964),
                (2.964, 3.443),
                (3.443, 3.835),
                (3.835, 4.097),
                (4.097, 4.358),
                (4.358, -1),
            ]
            result.append(
                {
                    "score": rng.randint(1, 20),
                    "distribution_buckets": buckets(bounds),
                    "type": "pace",
                    "resource_state": 3,
                    "sensor_based": True,
                }
            )
    return result


def streams(activity: StoredActivity, keys: list[str]) -> dict[str, JSONDict]:
    """Streams by type: the requested ones the activity has, plus ``distance``.

    Strava always adds the ``distance`` series (the default ``series_type``) and leaves out
    streams the activity has no data for (no ``latlng`` indoors, no ``heartrate`` without a
    sensor). A manual activity has no streams at all.
    """
    s = activity.summary
    if s["manual"]:
        return {}
    n = _stream_len(activity)
    elapsed = int(s["elapsed_time"])
    distance = float(s["distance"])
    rng = _rng(activity, 8)
    times = [round(i * elapsed / (n - 1)) for i in range(n)]
    available: dict[str, list[Any]] = {"time": times}
    if distance > 0:
        available["distance"] = [round(distance * i / (n - 1), 1) for i in range(n)]
        avg = float(s["average_speed"])
        available["velocity_smooth"] = [
            round(max(0.0, avg + rng.uniform(-0.5, 0.5)), 3) for _ in range(n)
        ]
        available["grade_smooth"] = [round(rng.uniform(-3, 3), 1) for _ in range(n)]
    track = _dense_track(activity)
    if track:
        available["latlng"] = [list(track[i * (len(track) - 1) // (n - 1)]) for i in range(n)]
    if "elev_low" in s:
        low = float(s["elev_low"])
        high = float(s["elev_high"])
        available["altitude"] = [
            round(low + (high - low) * (0.5 - 0.5 * math.cos(2 * math.pi * i / (n - 1))), 1)
            for i in range(n)
        ]
    if s.get("has_heartrate"):
        avg_hr = float(s["average_heartrate"])
        available["heartrate"] = [int(avg_hr + rng.uniform(-8, 8)) for _ in range(n)]
    if "average_cadence" in s:
        cadence = float(s["average_cadence"])
        available["cadence"] = [int(cadence + rng.uniform(-4, 4)) for _ in range(n)]
    if s.get("device_watts"):
        watts = float(s["average_watts"])
        available["watts"] = [int(max(0.0, watts + rng.uniform(-60, 60))) for _ in range(n)]
    if "average_temp" in s:
        available["temp"] = [int(s["average_temp"])] * n
    available["moving"] = [True] * n
    wanted = {k for k in keys if k in available}
    if "distance" in available:
        wanted.add("distance")
    elif not wanted:
        wanted.add("time")
    series_type = "distance" if "distance" in available else "time"
    return {
        key: {
            "data": available[key],
            "series_type": series_type,
            "original_size": n,
            "resolution": "high",
        }
        for key in STREAM_TYPES
        if key in wanted
    }
