"""Seeded generator of a realistic Strava athlete: profile, gear and activity history.

Everything is drawn from one ``random.Random(seed)`` so a seed always gives the same data
(for the same ``now``). The generator deliberately produces what makes real Strava data hard
to load: ints and floats where Strava mixes them, ``[]`` coordinates and empty or null
polylines for indoor and manual activities, fields that are absent without a sensor, names
with unicode, quotes, backslashes, newlines and SQL/CSV injection text, activities that start
at exactly the same second, and late uploads of old activities (new high id, old start date).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from strava_simulator import timeutil
from strava_simulator.activity_factory import (
    DAY,
    ActivityFactory,
    IdSequence,
    StoredActivity,
    round1,
)
from strava_simulator.catalog import (
    AWKWARD_NAMES,
    CUSTOM_NAMES,
    FIRSTNAMES,
    LASTNAMES,
    PLACES,
    SPORTS,
    Place,
)

JSONDict = dict[str, Any]

#: First activity id: above 2**32 so that a client storing ids in 32 bits fails visibly.
FIRST_ACTIVITY_ID = 5_000_000_000


@dataclass
class Dataset:
    """Everything generated for one seed."""

    athlete: JSONDict
    gear: dict[str, JSONDict]
    clubs: list[JSONDict]
    activities: list[StoredActivity]
    home: Place
    factory: ActivityFactory


def _local_start(rng: random.Random, anchor: date, days_ago: int, place: Place) -> int:
    """Pick a realistic local start time on a day and convert it to epoch seconds."""
    day = anchor - timedelta(days=days_ago)
    if day.weekday() >= 5:
        hour = rng.choice((7, 8, 9, 9, 10, 10, 11, 14, 16))
    else:
        hour = rng.choice((5, 6, 6, 7, 7, 12, 12, 17, 18, 18, 19, 20, 21))
    local = datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), rng.randint(0, 59))
    return timeutil.local_to_epoch(place.tz_name, place.std_offset, local)


def _make_athlete(rng: random.Random, home: Place, now: int) -> JSONDict:
    athlete_id = rng.randint(2_000_000, 150_000_000)
    firstname = rng.choice(FIRSTNAMES)
    lastname = rng.choice(LASTNAMES)
    created = now - rng.randint(400, 800) * DAY  # moved before the first activity later
    picture_id = rng.randint(10**6, 10**7)
    picture = f"https://dgalywyr863hv.cloudfront.net/pictures/athletes/{athlete_id}/{picture_id}/2"
    return {
        "id": athlete_id,
        "username": f"sim_{athlete_id}",
        "resource_state": 3,
        "firstname": firstname,
        "lastname": lastname,
        "bio": 'Runs, rides & swims \U0001f3ca\u200d\u2640\ufe0f \u2014 "slowly", but daily.',
        "city": home.city,
        "state": home.state,
        "country": home.country,
        "sex": rng.choice(("M", "F")),
        "premium": True,
        "summit": True,
        "created_at": timeutil.iso_utc(created),
        "updated_at": timeutil.iso_utc(now - rng.randint(1, 20) * DAY),
        "badge_type_id": 1,
        "weight": round(rng.uniform(52, 95), 3),
        "profile_medium": f"{picture}/medium.jpg",
        "profile": f"{picture}/large.jpg",
        "friend": None,
        "follower": None,
        "blocked": False,
        "can_follow": True,
        "follower_count": rng.randint(0, 400),
        "friend_count": rng.randint(0, 400),
        "mutual_friend_count": 0,
        "athlete_type": rng.choice((0, 1)),
        "date_preference": "%m/%d/%Y",
        "measurement_preference": rng.choice(("meters", "feet")),
        "clubs": [],
        "postable_clubs_count": 0,
        "ftp": rng.choice((None, rng.randint(180, 320))),
        "bikes": [],
        "shoes": [],
    }


def _make_gear(rng: random.Random) -> dict[str, JSONDict]:
    gear: dict[str, JSONDict] = {}
    bikes = (
        ("Canyon", "Ultimate CF SL", 3),
        ("Trek", "Checkpoint SL 5", 5),
        ("Specialized", "Tarmac SL7", 3),
        ("Brompton", "C Line", 4),
    )
    shoes = (
        ("Nike", "Pegasus 40"),
        ("Adidas", "Adizero Adios Pro 3"),
        ("Hoka", "Speedgoat 5"),
        ("ASICS", "Gel-Nimbus 25"),
        ("Saucony", "Endorphin Speed 3"),
    )
    for i, (brand, model, frame) in enumerate(rng.sample(bikes, rng.randint(1, 3))):
        gear_id = f"b{rng.randint(10**7, 10**8)}"
        gear[gear_id] = {
            "id": gear_id,
            "primary": i == 0,
            "name": f"{brand} {model}",
            "nickname": rng.choice((None, "", 'L\u00e9o\'s "fast" bike')),
            "resource_state": 3,
            "retired": False,
            "distance": 0,
            "converted_distance": 0.0,
            "brand_name": brand,
            "model_name": model,
            "frame_type": frame,
            "description": rng.choice(("", "Race bike.", None)),
            "weight": round1(rng.uniform(7, 12)),
        }
    for i, (brand, model) in enumerate(rng.sample(shoes, rng.randint(2, 4))):
        gear_id = f"g{rng.randint(10**7, 10**8)}"
        gear[gear_id] = {
            "id": gear_id,
            "primary": i == 0,
            "name": f"{brand} {model}",
            "nickname": rng.choice((None, "")),
            "resource_state": 3,
            "retired": i > 1,
            "distance": 0,
            "converted_distance": 0.0,
            "brand_name": brand,
            "model_name": model,
            "description": rng.choice(("", "Marathon shoes.", None)),
            "notification_distance": rng.choice((0, 800)),
        }
    return gear


def _make_clubs(rng: random.Random, home: Place) -> list[JSONDict]:
    clubs = []
    for name, sport in (("Sim Road Runners", "running"), ("Caf\u00e9 Ride Club", "cycling")):
        club_id = rng.randint(10_000, 1_500_000)
        base = f"https://dgalywyr863hv.cloudfront.net/pictures/clubs/{club_id}"
        clubs.append(
            {
                "id": club_id,
                "resource_state": 2,
                "name": name,
                "profile_medium": f"{base}/1/medium.jpg",
                "profile": f"{base}/1/large.jpg",
                "cover_photo": None,
                "cover_photo_small": None,
                "activity_types": ["Run", "VirtualRun"] if sport == "running" else ["Ride"],
                "activity_types_icon": "sports_run_normal"
                if sport == "running"
                else ("sports_bike_normal"),
                "dimensions": ["distance", "num_activities", "moving_time"],
                "sport_type": sport,
                "localized_sport_type": sport.capitalize(),
                "city": home.city,
                "state": home.state,
                "country": home.country,
                "private": False,
                "member_count": rng.randint(10, 5000),
                "featured": False,
                "verified": False,
                "url": name.lower().replace(" ", ""),
                "membership": "member",
                "admin": False,
                "owner": False,
            }
        )
    return clubs


def gear_summary(gear: JSONDict) -> JSONDict:
    """Gear as nested in the athlete and in a detailed activity (resource_state 2)."""
    return {
        "id": gear["id"],
        "primary": gear["primary"],
        "name": gear["name"],
        "nickname": gear["nickname"],
        "resource_state": 2,
        "retired": gear["retired"],
        "distance": gear["distance"],
        "converted_distance": gear["converted_distance"],
    }


#: The awkward cases every history of 12 activities or more has once (see `generate`).
SPECIAL_CASES = (
    "padel",
    "manual",
    "only_me",
    "followers_only",
    "injection",
    "multiline",
    "unicode",
    "late_upload",
)


def generate(
    seed: int, activity_count: int, now: float, taken_ids: set[int] | None = None
) -> Dataset:
    """Generate the athlete, gear and ``activity_count`` activities before ``now``.

    Activities all end before midnight UTC of ``now``'s day (so the data only changes once a
    day for a given seed); the newest is one to three days old. The steps draw from one
    ``rng`` in a fixed order, which is what makes a seed reproducible: keep that order.
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    anchor_ts = int(now) - int(now) % DAY
    home = rng.choice(PLACES[:6])
    gear = _make_gear(rng)
    ids = IdSequence(rng, FIRST_ACTIVITY_ID + rng.randint(0, 10**8), taken_ids)
    athlete_id_rng = random.Random(seed * 7919 + 1)  # noqa: S311 - deterministic test data
    athlete = _make_athlete(athlete_id_rng, home, anchor_ts)
    factory = ActivityFactory(
        rng,
        athlete["id"],
        home,
        {
            "shoes": [g for g in gear if g.startswith("g") and not gear[g]["retired"]],
            "bikes": [g for g in gear if g.startswith("b")],
        },
        ids,
    )
    slots = _start_slots(rng, factory, activity_count, anchor_ts)
    _share_start_seconds(rng, slots)
    special = _special_cases(rng, activity_count)
    activities = [
        _history_activity(rng, factory, start, place, special.get(index), anchor_ts)
        for index, (start, place) in enumerate(slots)
    ]
    # Ids grow with upload order: a late upload of an old activity gets a high id.
    for activity in sorted(activities, key=lambda a: (a.upload_ts, a.start_ts)):
        factory.assign_id(activity)
    _count_gear_mileage(athlete, gear, activities)
    clubs = _make_clubs(rng, home)
    athlete["clubs"] = clubs
    athlete["postable_clubs_count"] = len(clubs)
    if activities:
        created = timeutil.parse_iso(athlete["created_at"])
        athlete["created_at"] = timeutil.iso_utc(min(created, activities[0].start_ts - 90 * DAY))
    return Dataset(athlete, gear, clubs, activities, home, factory)


def _start_slots(
    rng: random.Random, factory: ActivityFactory, activity_count: int, anchor_ts: int
) -> list[tuple[int, Place]]:
    """When and where, oldest first: the newest one to three days ago.

    Every start is at least 14 hours before midnight UTC of ``now``'s day, so that the
    activity ends before it and the data of a seed change only once a day. The history
    spans about 1.6 days per activity (at least 45 days, at most 12 years).
    """
    anchor_date = datetime.fromtimestamp(anchor_ts, timezone.utc).date()
    span_days = int(min(max(45, activity_count * 1.6), 12 * 365))
    slots: list[tuple[int, Place]] = []
    latest_allowed = anchor_ts - 14 * 3600
    for i in range(activity_count):
        days_ago = rng.randint(1, 2) if i == 0 else rng.randint(1, span_days)
        place = factory.random_place()
        start = _local_start(rng, anchor_date, days_ago, place)
        while start > latest_allowed:
            start -= DAY
        slots.append((start, place))
    slots.sort(key=lambda slot: slot[0])
    return slots


def _share_start_seconds(rng: random.Random, slots: list[tuple[int, Place]]) -> None:
    """Make some neighbours start at the very same second (two devices, or a copy).

    One pair per 150 activities (at least one): a client must not key activities on their
    start time.
    """
    count = len(slots)
    pairs = 0 if count < 2 else 1 + count // 150
    candidates = list(range(count - 1))
    rng.shuffle(candidates)
    used: set[int] = set()
    for i in candidates:
        if pairs == 0:
            break
        if i in used or i + 1 in used:
            continue
        slots[i + 1] = slots[i]
        used.update((i, i + 1))
        pairs -= 1


def _special_cases(rng: random.Random, activity_count: int) -> dict[int, str]:
    """Which activities are the guaranteed awkward cases, once a history can hold them."""
    if activity_count < 12:
        return {}
    indexes = rng.sample(range(activity_count - 1), len(SPECIAL_CASES))
    return dict(zip(indexes, SPECIAL_CASES, strict=True))


def _history_activity(
    rng: random.Random,
    factory: ActivityFactory,
    start: int,
    place: Place,
    what: str | None,
    anchor_ts: int,
) -> StoredActivity:
    """One activity of the history: a special case, or a random one with random quirks."""
    sport = SPORTS["Padel"] if what == "padel" else factory.random_sport()
    manual = what == "manual" or (what is None and rng.random() < 0.04)
    if sport.sport_type == "VirtualRide":
        manual = False
    visibility = what if what in ("only_me", "followers_only") else None
    name = _history_name(rng, what)
    delay = None
    if what == "late_upload" or (what is None and rng.random() < 0.02):
        delay = rng.randint(20, 400) * DAY
    activity = factory.build(
        sport,
        start,
        place,
        manual=manual,
        visibility=visibility,
        name=name,
        upload_delay=delay,
    )
    activity.upload_ts = min(activity.upload_ts, anchor_ts - 60)
    return activity


def _history_name(rng: random.Random, what: str | None) -> str | None:
    """An awkward or custom title for about a third of the history (None: Strava's own)."""
    if what == "injection":
        return AWKWARD_NAMES[0]
    if what == "multiline":
        return AWKWARD_NAMES[6]
    if what == "unicode":
        return AWKWARD_NAMES[1]
    if what is not None:
        return None
    roll = rng.random()
    if roll < 0.22:
        return rng.choice(AWKWARD_NAMES)
    if roll < 0.32:
        return rng.choice(CUSTOM_NAMES)
    return None


def _count_gear_mileage(
    athlete: JSONDict, gear: dict[str, JSONDict], activities: list[StoredActivity]
) -> None:
    """Each gear's distance from its activities, and the athlete's bike and shoe lists."""
    for activity in activities:
        gear_id = activity.summary.get("gear_id")
        if gear_id in gear:
            gear[gear_id]["distance"] += int(activity.summary["distance"])
    for item in gear.values():
        item["converted_distance"] = round1(item["distance"] / 1000)
        key = "bikes" if item["id"].startswith("b") else "shoes"
        athlete[key].append(gear_summary(item))
