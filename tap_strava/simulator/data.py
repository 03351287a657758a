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
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from tap_strava.simulator import timeutil
from tap_strava.simulator.geo import LatLng, encode_polyline, make_track

JSONDict = dict[str, Any]

#: First activity id: above 2**32 so that a client storing ids in 32 bits fails visibly.
FIRST_ACTIVITY_ID = 5_000_000_000
DAY = 86_400


@dataclass(frozen=True)
class Place:
    """A place activities start from, with its time zone as Strava names it."""

    tz_name: str
    std_offset: int
    city: str
    state: str
    country: str
    lat: float
    lng: float


PLACES: tuple[Place, ...] = (
    Place("Europe/Amsterdam", 3600, "Amsterdam", "Noord-Holland", "Netherlands", 52.3676, 4.9041),
    Place("America/New_York", -18000, "New York", "NY", "United States", 40.7812, -73.9665),
    Place("Europe/Zurich", 3600, "Z\u00fcrich", "ZH", "Switzerland", 47.3769, 8.5417),
    Place("America/Sao_Paulo", -10800, "S\u00e3o Paulo", "SP", "Brazil", -23.5505, -46.6333),
    Place("Asia/Tokyo", 32400, "\u6771\u4eac", "Tokyo", "Japan", 35.6762, 139.6503),
    Place("Asia/Kolkata", 19800, "Bengaluru", "Karnataka", "India", 12.9716, 77.5946),
    Place("Australia/Sydney", 36000, "Sydney", "NSW", "Australia", -33.8688, 151.2093),
    Place("America/Los_Angeles", -28800, "Los Angeles", "CA", "United States", 34.0522, -118.2437),
    Place("America/St_Johns", -12600, "St. John's", "NL", "Canada", 47.5615, -52.7126),
)
#: Zwift's Watopia lies in the Pacific: virtual rides have real-looking coordinates there.
WATOPIA: LatLng = (-11.6386, 166.9521)


@dataclass(frozen=True)
class Sport:
    """How one sport type looks in Strava data (ranges are uniform draws)."""

    sport_type: str
    legacy_type: str
    label: str
    weight: float
    gps: bool
    distance_km: tuple[float, float] = (0.0, 0.0)
    speed: tuple[float, float] = (0.0, 0.0)
    duration_min: tuple[float, float] = (30.0, 60.0)
    climb_per_km: tuple[float, float] = (0.0, 0.0)
    gear: str | None = None
    power: bool = False
    cadence: tuple[float, float] | None = None
    hr: tuple[float, float] = (110.0, 150.0)
    workout_types: tuple[int | None, ...] = (None,)
    trainer: bool = False
    indoor_share: float = 0.0


SPORTS: dict[str, Sport] = {
    s.sport_type: s
    for s in (
        Sport(
            "Run",
            "Run",
            "Run",
            28,
            True,
            (3, 21),
            (2.6, 3.9),
            climb_per_km=(2, 15),
            gear="shoe",
            cadence=(76, 90),
            hr=(135, 170),
            workout_types=(None, None, 0, 0, 0, 1, 2, 3),
            indoor_share=0.06,
        ),
        Sport(
            "TrailRun",
            "Run",
            "Trail Run",
            5,
            True,
            (5, 30),
            (1.8, 3.0),
            climb_per_km=(20, 60),
            gear="shoe",
            cadence=(70, 85),
            hr=(130, 165),
            workout_types=(None, 0, 0, 1, 2),
        ),
        Sport(
            "Ride",
            "Ride",
            "Ride",
            15,
            True,
            (15, 120),
            (5.5, 9.0),
            climb_per_km=(3, 15),
            gear="bike",
            power=True,
            cadence=(75, 92),
            hr=(120, 160),
            workout_types=(None, 10, 10, 10, 11, 12),
        ),
        Sport(
            "GravelRide",
            "Ride",
            "Gravel Ride",
            3,
            True,
            (20, 100),
            (5.0, 7.5),
            climb_per_km=(5, 15),
            gear="bike",
            power=True,
            cadence=(72, 88),
            hr=(120, 160),
            workout_types=(None, 10, 12),
        ),
        Sport(
            "VirtualRide",
            "VirtualRide",
            "Virtual Ride",
            8,
            True,
            (15, 60),
            (7.0, 10.0),
            climb_per_km=(5, 12),
            gear="bike",
            power=True,
            cadence=(80, 95),
            hr=(125, 165),
            workout_types=(None, 10, 12),
            trainer=True,
        ),
        Sport(
            "Swim", "Swim", "Swim", 7, False, (1, 4), (0.6, 1.1), hr=(120, 150), indoor_share=0.8
        ),
        Sport(
            "Walk",
            "Walk",
            "Walk",
            12,
            True,
            (1.5, 8),
            (1.1, 1.6),
            climb_per_km=(1, 10),
            gear="shoe",
            hr=(90, 115),
        ),
        Sport(
            "Hike",
            "Hike",
            "Hike",
            5,
            True,
            (5, 20),
            (0.7, 1.3),
            climb_per_km=(30, 90),
            gear="shoe",
            hr=(100, 135),
        ),
        Sport(
            "WeightTraining",
            "WeightTraining",
            "Weight Training",
            7,
            False,
            duration_min=(30, 75),
            hr=(95, 125),
        ),
        Sport("Yoga", "Yoga", "Yoga", 5, False, duration_min=(20, 75), hr=(75, 100)),
        Sport("Padel", "Workout", "Padel", 3, False, duration_min=(60, 120), hr=(120, 150)),
        Sport("Workout", "Workout", "Workout", 2, False, duration_min=(20, 60), hr=(110, 145)),
    )
}
RIDE_TYPES = frozenset(
    {"Ride", "GravelRide", "VirtualRide", "MountainBikeRide", "EBikeRide", "EMountainBikeRide"}
)
RUN_TYPES = frozenset({"Run", "TrailRun", "VirtualRun"})
SWIM_TYPES = frozenset({"Swim"})

#: Names that break naive CSV writers, SQL string building, shells and terminals.
AWKWARD_NAMES: tuple[str, ...] = (
    '"; DROP TABLE activities; --',
    "Caf\u00e9 au lait \u2192 10 km \U0001f3c3\u200d\u2640\ufe0f",
    "\u6771\u4eac\u30de\u30e9\u30bd\u30f3 2019 \U0001f5fc",
    "He said \"sub-3\", I said 'maybe'",
    "Intervals, 6x800m, 90s rest",
    "C:\\Users\\run\\track.fit",
    "Line one\nLine two\twith a tab",
    '=HYPERLINK("http://example.com","click")',
    "Z\u00fcrich \u2013 \u00dcetliberg \u26f0\ufe0f",
    "\u0631\u0643\u0636 \u0635\u0628\u0627\u062d\u064a",
    "Ride \U0001f6b4\u200d\u2642\ufe0f with \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "Robert'); DELETE FROM runs;--",
    "null",
    "  spaces around  ",
    "\u00c5rsta \u2192 \u00d8rsta, \u00e6\u00f8\u00e5 \u00c6\u00d8\u00c5",
    "Tab\tseparated\tname",
    "Semi;colon|pipe\\backslash",
    "Long " + "very " * 40 + "long name",
)
CUSTOM_NAMES: tuple[str, ...] = (
    "Long run with Artyom",
    "Tempo Tuesday",
    "Commute home",
    "Recovery spin",
    "Track session",
    "Sunday long ride",
    "Parkrun",
    "Club run",
    "Hill repeats",
)
DEVICES: dict[str, tuple[str, ...]] = {
    "watch": (
        "Garmin Forerunner 965",
        "Apple Watch Series 9",
        "COROS PACE 3",
        "Garmin fenix 7",
        "Polar Vantage V3",
    ),
    "bike": ("Garmin Edge 840", "Wahoo ELEMNT BOLT", "Hammerhead Karoo"),
    "virtual": ("Zwift",),
    "phone": ("Strava App",),
}
FIRSTNAMES = (
    "Zo\u00eb",
    "Jos\u00e9",
    "S\u00f8ren",
    "Am\u00e9lie",
    "\u0141ukasz",
    "Bj\u00f6rn",
    "Chlo\u00e9",
    "M\u00e5rten",
    "A\u00efcha",
    "Ren\u00e9e",
)
LASTNAMES = (
    "M\u00fcller-L\u00fcdenscheidt",
    "\u00d8deg\u00e5rd",
    "O'Connor",
    "van der Berg",
    "Nu\u00f1ez",
    "Dvo\u0159\u00e1k",
    "\u017d\u00e1kov\u00e1",
    "Sch\u00f6nfeld",
    "\u5c71\u7530",
)


@dataclass
class StoredActivity:
    """One activity as the simulator keeps it.

    ``summary`` is exactly what the list endpoint serves (key order included); ``extra``
    holds what only the detailed representation has. ``tie`` orders activities that start at
    the same second in a stable order unrelated to their ids.
    """

    summary: JSONDict
    start_ts: int
    tie: int
    upload_ts: int
    detail_seed: int
    place: Place
    extra: JSONDict = field(default_factory=dict)

    @property
    def id(self) -> int:
        """The activity id."""
        return int(self.summary["id"])

    @property
    def visibility(self) -> str:
        """``everyone``, ``followers_only`` or ``only_me``."""
        return str(self.summary.get("visibility", "everyone"))


@dataclass
class Dataset:
    """Everything generated for one seed."""

    athlete: JSONDict
    gear: dict[str, JSONDict]
    clubs: list[JSONDict]
    activities: list[StoredActivity]
    home: Place
    factory: ActivityFactory


class IdSequence:
    """Increasing activity and upload ids with irregular gaps, as Strava's are."""

    def __init__(self, rng: random.Random, first_id: int) -> None:
        self._rng = rng
        self.last_id = first_id
        self.last_upload_id = first_id + first_id // 12

    def next(self) -> tuple[int, int]:
        """Return the next (activity id, upload id)."""
        self.last_id += self._rng.randint(1_000_000, 30_000_000)
        self.last_upload_id += self._rng.randint(1_000_000, 32_000_000)
        return self.last_id, self.last_upload_id


def _r1(value: float) -> float:
    return round(value, 1)


def _pick_weighted(rng: random.Random, sports: list[Sport]) -> Sport:
    return rng.choices(sports, weights=[s.weight for s in sports])[0]


class ActivityFactory:
    """Builds realistic activities for one athlete (the history and later uploads)."""

    def __init__(
        self,
        rng: random.Random,
        athlete_id: int,
        home: Place,
        gear_ids: dict[str, list[str]],
        ids: IdSequence,
    ) -> None:
        self.rng = rng
        self.athlete_id = athlete_id
        self.home = home
        self.gear_ids = gear_ids
        self.ids = ids
        self._sports = list(SPORTS.values())

    def random_sport(self) -> Sport:
        """Draw a sport with realistic frequencies."""
        return _pick_weighted(self.rng, self._sports)

    def random_place(self) -> Place:
        """Home most of the time, sometimes a trip abroad."""
        if self.rng.random() < 0.1:
            return self.rng.choice(PLACES)
        return self.home

    def sport_for(self, sport_type: str) -> Sport:
        """Return the profile of a sport type; unknown (new) types look like a workout."""
        if sport_type in SPORTS:
            return SPORTS[sport_type]
        return Sport(sport_type, "Workout", sport_type, 0, False, duration_min=(30, 90))

    def default_name(self, sport: Sport, local_hour: int) -> str:
        """Strava's automatic title: part of day plus sport."""
        if sport.sport_type == "VirtualRide":
            return self.rng.choice(("Zwift - Watopia", "Zwift - Makuri Islands", "Zwift - London"))
        if 4 <= local_hour < 11:
            part = "Morning"
        elif 11 <= local_hour < 14:
            part = "Lunch"
        elif 14 <= local_hour < 18:
            part = "Afternoon"
        elif 18 <= local_hour < 21:
            part = "Evening"
        else:
            part = "Night"
        return f"{part} {sport.label}"

    def build(
        self,
        sport: Sport,
        start_ts: int,
        place: Place,
        *,
        manual: bool = False,
        visibility: str | None = None,
        name: str | None = None,
        upload_delay: int | None = None,
    ) -> StoredActivity:
        """Build one activity (id 0 until :meth:`assign_id`)."""
        rng = self.rng
        indoor = (not sport.gps) or (sport.indoor_share > 0 and rng.random() < sport.indoor_share)
        if manual:
            indoor = True
        virtual = sport.sport_type == "VirtualRide"
        if virtual:
            indoor = False
        trainer = sport.trainer or (indoor and sport.sport_type == "Run")

        # Distance, time, speed.
        if sport.distance_km[1] > 0:
            distance = rng.uniform(*sport.distance_km) * 1000
            speed = rng.uniform(*sport.speed)
            moving_time = max(int(distance / speed), 60)
        else:
            distance = 0.0
            moving_time = int(rng.uniform(*sport.duration_min) * 60)
            speed = 0.0
        elapsed_time = moving_time if manual else moving_time + int(rng.expovariate(1 / 120))
        distance = _r1(distance)
        average_speed = round(distance / moving_time, 3) if distance > 0 else 0.0
        no_speed = manual or distance == 0
        max_speed = 0.0 if no_speed else _r1(average_speed * rng.uniform(1.3, 2.2))

        # Where: GPS track, or nothing.
        gps = not indoor
        start_latlng: list[float] = []
        end_latlng: list[float] = []
        polyline: str | None = None if manual else ""
        track_points = 0
        if gps:
            base = WATOPIA if virtual else (place.lat, place.lng)
            start = (
                round(base[0] + rng.uniform(-0.04, 0.04), 6),
                round(base[1] + rng.uniform(-0.04, 0.04), 6),
            )
            track_points = rng.randint(20, 48)
            track = make_track(rng, start, distance, track_points)
            polyline = encode_polyline(track)
            start_latlng = [track[0][0], track[0][1]]
            end_latlng = [track[-1][0], track[-1][1]]

        # Elevation: an int 0 without elevation data, floats (or ints for Zwift) otherwise.
        total_elevation_gain: int | float = 0
        elev: tuple[float, float] | None = None
        if gps and distance > 0:
            gain = distance / 1000 * rng.uniform(*sport.climb_per_km)
            total_elevation_gain = int(gain) if virtual else _r1(gain)
            low = _r1(rng.uniform(-8, 450))
            elev = (low + _r1(gain * rng.uniform(0.2, 0.7)) + 1.0, low)

        # Sensors.
        device_kind = "virtual" if virtual else ("bike" if sport.power else "watch")
        device_name = None if manual else rng.choice(DEVICES[device_kind])
        has_hr = (not manual) and rng.random() < 0.85
        has_cadence = (not manual) and sport.cadence is not None and rng.random() < 0.85
        has_temp = (not manual) and (not virtual) and rng.random() < 0.35
        avg_hr = _r1(rng.uniform(*sport.hr)) if has_hr else 0.0
        max_hr = float(int(avg_hr + rng.uniform(8, 30))) if has_hr else 0.0

        # Visibility and social counts.
        if visibility is None:
            roll = rng.random()
            visibility = (
                "only_me" if roll < 0.07 else "followers_only" if roll < 0.15 else ("everyone")
            )
        athlete_count = 1 if rng.random() < 0.88 else rng.randint(2, 6)
        kudos = 0 if visibility == "only_me" else int(rng.expovariate(1 / 6))
        achievements = 0
        prs = 0
        if not manual and sport.legacy_type in ("Run", "Ride") and visibility == "everyone":
            achievements = int(rng.expovariate(1 / 3))
            prs = min(achievements, int(rng.expovariate(1 / 1.2)))
        total_photos = 0 if rng.random() < 0.85 else rng.randint(1, 6)

        gear_id: str | None = None
        if sport.gear == "shoe" and self.gear_ids["shoes"] and rng.random() < 0.9:
            gear_id = rng.choice(self.gear_ids["shoes"])
        elif sport.gear == "bike" and self.gear_ids["bikes"] and rng.random() < 0.95:
            gear_id = rng.choice(self.gear_ids["bikes"])

        utc_offset = timeutil.utc_offset_at(place.tz_name, place.std_offset, start_ts)
        local_hour = int(((start_ts + utc_offset) % DAY) // 3600)
        if name is None:
            name = self.default_name(sport, local_hour)

        if manual:
            external_id: str | None = None
        elif virtual:
            external_id = f"zwift-activity-{rng.randint(10**17, 10**18)}.fit"
        elif device_name == "Strava App":
            external_id = f"{rng.getrandbits(64):016x}"
        elif rng.random() < 0.6:
            external_id = f"garmin_ping_{rng.randint(10**11, 10**12)}"
        else:
            external_id = f"{rng.randint(10**10, 10**11)}.{rng.choice(('fit', 'tcx', 'gpx'))}"

        summary: JSONDict = {
            "resource_state": 2,
            "athlete": {"id": self.athlete_id, "resource_state": 1},
            "name": name,
            "distance": distance,
            "moving_time": moving_time,
            "elapsed_time": elapsed_time,
            "total_elevation_gain": total_elevation_gain,
            "type": sport.legacy_type,
            "sport_type": sport.sport_type,
            "workout_type": rng.choice(sport.workout_types),
            "id": 0,
            "start_date": timeutil.iso_utc(start_ts),
            "start_date_local": timeutil.iso_local(start_ts, utc_offset),
            "timezone": timeutil.timezone_label(place.tz_name, place.std_offset),
            "utc_offset": utc_offset,
            "location_city": None,
            "location_state": None,
            "location_country": None,
            "achievement_count": achievements,
            "kudos_count": kudos,
            "comment_count": 0 if kudos == 0 else int(rng.expovariate(1 / 1.0)),
            "athlete_count": athlete_count,
            "photo_count": 0,
            "map": {"id": "a0", "summary_polyline": polyline, "resource_state": 2},
            "trainer": trainer,
            "commute": sport.legacy_type == "Ride" and not trainer and rng.random() < 0.15,
            "manual": manual,
            "private": visibility == "only_me",
            "visibility": visibility,
            "flagged": False,
            "gear_id": gear_id,
            "start_latlng": start_latlng,
            "end_latlng": end_latlng,
            "average_speed": average_speed,
            "max_speed": max_speed,
        }
        if has_cadence and sport.cadence is not None:
            summary["average_cadence"] = _r1(rng.uniform(*sport.cadence))
        if sport.power and not manual:
            device_watts = virtual or rng.random() < 0.5
            avg_w = _r1(rng.uniform(140, 260))
            summary["average_watts"] = avg_w
            if device_watts:
                summary["max_watts"] = int(avg_w * rng.uniform(2.5, 4.5))
                summary["weighted_average_watts"] = int(avg_w * rng.uniform(1.02, 1.12))
            summary["kilojoules"] = _r1(avg_w * moving_time / 1000)
            summary["device_watts"] = device_watts
        if has_temp:
            summary["average_temp"] = rng.randint(2, 31)
        summary["has_heartrate"] = has_hr
        if has_hr:
            summary["average_heartrate"] = avg_hr
            summary["max_heartrate"] = max_hr
        summary["heartrate_opt_out"] = False
        summary["display_hide_heartrate_option"] = has_hr
        if elev is not None:
            summary["elev_high"] = _r1(elev[0])
            summary["elev_low"] = _r1(elev[1])
        summary["upload_id"] = None
        if not manual:
            summary["upload_id_str"] = ""
        summary["external_id"] = external_id
        summary["from_accepted_tag"] = athlete_count > 1 and rng.random() < 0.2
        summary["pr_count"] = prs
        summary["total_photo_count"] = total_photos
        summary["has_kudoed"] = False
        summary["suffer_score"] = (
            float(max(1, int(moving_time / 60 * max(avg_hr - 95, 5) / 40))) if has_hr else None
        )
        summary["device_name"] = device_name
        summary["hide_from_home"] = bool(summary["commute"]) and rng.random() < 0.5

        if upload_delay is None:
            upload_delay = (
                int(rng.uniform(60, 3600)) if not manual else int(rng.uniform(3600, 5 * DAY))
            )
        calories = _r1(summary.get("kilojoules", moving_time / 60 * rng.uniform(6, 12)))
        extra: JSONDict = {
            "description": self._description(),
            "calories": calories,
            "perceived_exertion": rng.choice((None, None, None, 3.0, 5.0, 7.0, 9.0)),
            "track_points": track_points,
        }
        return StoredActivity(
            summary=summary,
            start_ts=start_ts,
            tie=rng.getrandbits(31),
            upload_ts=start_ts + elapsed_time + upload_delay,
            detail_seed=rng.getrandbits(32),
            place=place,
            extra=extra,
        )

    def _description(self) -> str | None:
        roll = self.rng.random()
        if roll < 0.6:
            return None
        if roll < 0.7:
            return ""
        return self.rng.choice(
            (
                "Felt strong today.",
                "Official time 3:42:02. Legs gone at 30k. \r\n\r\nStill happy!",
                'Easy pace, "conversational".',
                "Windy \U0001f32c\ufe0f, cold \u2744\ufe0f",
            )
        )

    def assign_id(self, activity: StoredActivity) -> None:
        """Give an activity the next id (ids grow with upload order, never with start date)."""
        activity_id, upload_id = self.ids.next()
        summary = activity.summary
        summary["id"] = activity_id
        summary["map"]["id"] = f"a{activity_id}"
        if not summary["manual"]:
            summary["upload_id"] = upload_id
            summary["upload_id_str"] = str(upload_id)


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
            "weight": _r1(rng.uniform(7, 12)),
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


def generate(seed: int, activity_count: int, now: float) -> Dataset:
    """Generate the athlete, gear and ``activity_count`` activities before ``now``.

    Activities all end before midnight UTC of ``now``'s day (so the data only changes once a
    day for a given seed); the newest is one to three days old.
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    anchor_ts = int(now) - int(now) % DAY
    anchor_date = datetime.fromtimestamp(anchor_ts, timezone.utc).date()
    home = rng.choice(PLACES[:6])
    span_days = int(min(max(45, activity_count * 1.6), 12 * 365))
    gear = _make_gear(rng)
    ids = IdSequence(rng, FIRST_ACTIVITY_ID + rng.randint(0, 10**8))
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

    # 1. When and where: sorted start times, the newest one to three days ago.
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

    # 2. Activities that start at the very same second (two devices, or a copy).
    pairs = 0 if activity_count < 2 else 1 + activity_count // 150
    candidates = list(range(activity_count - 1))
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

    # 3. Guarantee the awkward cases exist once the history is big enough to hold them.
    special: dict[int, str] = {}
    wanted = [
        "padel",
        "manual",
        "only_me",
        "followers_only",
        "injection",
        "multiline",
        "unicode",
        "late_upload",
    ]
    if activity_count >= 12:
        indexes = rng.sample(range(activity_count - 1), len(wanted))
        special = dict(zip(indexes, wanted, strict=True))

    activities: list[StoredActivity] = []
    for index, (start, place) in enumerate(slots):
        what: str | None = special.get(index)
        sport = SPORTS["Padel"] if what == "padel" else factory.random_sport()
        manual = what == "manual" or (what is None and rng.random() < 0.04)
        if sport.sport_type == "VirtualRide":
            manual = False
        visibility = what if what in ("only_me", "followers_only") else None
        name: str | None = None
        if what == "injection":
            name = AWKWARD_NAMES[0]
        elif what == "multiline":
            name = AWKWARD_NAMES[6]
        elif what == "unicode":
            name = AWKWARD_NAMES[1]
        elif what is None:
            roll = rng.random()
            if roll < 0.22:
                name = rng.choice(AWKWARD_NAMES)
            elif roll < 0.32:
                name = rng.choice(CUSTOM_NAMES)
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
        activities.append(activity)

    # 4. Ids grow with upload order: a late upload of an old activity gets a high id.
    for activity in sorted(activities, key=lambda a: (a.upload_ts, a.start_ts)):
        factory.assign_id(activity)

    # 5. Gear mileage and the athlete's gear lists.
    for activity in activities:
        gear_id = activity.summary.get("gear_id")
        if gear_id in gear:
            gear[gear_id]["distance"] += int(activity.summary["distance"])
    for item in gear.values():
        item["converted_distance"] = _r1(item["distance"] / 1000)
        key = "bikes" if item["id"].startswith("b") else "shoes"
        athlete[key].append(gear_summary(item))
    clubs = _make_clubs(rng, home)
    athlete["clubs"] = clubs
    athlete["postable_clubs_count"] = len(clubs)
    if activities:
        created = timeutil.parse_iso(athlete["created_at"])
        athlete["created_at"] = timeutil.iso_utc(min(created, activities[0].start_ts - 90 * DAY))
    return Dataset(athlete, gear, clubs, activities, home, factory)
