"""``GET /athletes/{id}/stats``: totals computed from the stored activities.

Strava counts only activities visible to Everyone here (private and followers-only ones are
left out), "recent" means the last four weeks, "ytd" the current calendar year. Computing the
totals from the same activities the list endpoint serves lets a test check a pipeline's sums
against them.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable
from typing import Any

from strava_simulator.activity_factory import StoredActivity
from strava_simulator.catalog import RIDE_TYPES, RUN_TYPES, SWIM_TYPES

JSONDict = dict[str, Any]
RECENT_SECONDS = 28 * 86_400


def _totals(items: list[StoredActivity], *, with_achievements: bool) -> JSONDict:
    """One ``*_totals`` object; an empty one has int zeros, as Strava sends."""
    if not items:
        empty: JSONDict = {
            "count": 0,
            "distance": 0,
            "moving_time": 0,
            "elapsed_time": 0,
            "elevation_gain": 0,
        }
        if with_achievements:
            empty["achievement_count"] = 0
        return empty
    result: JSONDict = {
        "count": len(items),
        "distance": float(sum(float(a.summary["distance"]) for a in items)),
        "moving_time": sum(int(a.summary["moving_time"]) for a in items),
        "elapsed_time": sum(int(a.summary["elapsed_time"]) for a in items),
        "elevation_gain": float(sum(float(a.summary["total_elevation_gain"]) for a in items)),
    }
    if with_achievements:
        result["achievement_count"] = sum(int(a.summary["achievement_count"]) for a in items)
    return result


def athlete_stats(activities: Iterable[StoredActivity], now: float) -> JSONDict:
    """Build the ActivityStats object from the activities visible to Everyone."""
    public = [a for a in activities if a.visibility == "everyone"]
    year = time.gmtime(now).tm_year
    ytd_from = calendar.timegm((year, 1, 1, 0, 0, 0, 0, 0, 0))
    recent_from = int(now) - RECENT_SECONDS
    groups = {"ride": RIDE_TYPES, "run": RUN_TYPES, "swim": SWIM_TYPES}
    rides = [a for a in public if a.summary.get("sport_type") in RIDE_TYPES]
    result: JSONDict = {
        "biggest_ride_distance": max((float(a.summary["distance"]) for a in rides), default=None),
        "biggest_climb_elevation_gain": max(
            (float(a.summary["total_elevation_gain"]) for a in rides), default=None
        ),
    }
    for period, since, with_achievements in (
        ("recent", recent_from, True),
        ("all", None, False),
        ("ytd", ytd_from, False),
    ):
        for group, types in groups.items():
            items = [
                a
                for a in public
                if a.summary.get("sport_type") in types
                and (since is None or a.start_ts >= since)
                and a.start_ts <= now
            ]
            result[f"{period}_{group}_totals"] = _totals(items, with_achievements=with_achievements)
    return result
