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
        """Build one activity (id 0 until :meth:`assign_id`).

        Each step below is a helper that draws from the one ``rng`` in a fixed order: the
        order of the calls here *is* the data of a seed, so a step may be rewritten but
        never moved or skipped (``tests/test_simulator.py`` pins the output of a few seeds).
        """
        rng = self.rng
        setting = _setting(rng, sport, manual)
        motion = _motion(rng, sport, manual)
        route = _route(rng, place, motion.distance, setting)
        climb = _climb(rng, sport, motion.distance, setting)
        sensors = _sensors(rng, sport, setting)
        social = _social(rng, sport, setting.manual, visibility)
        gear_id = self._gear_for(sport)
        utc_offset = timeutil.utc_offset_at(place.tz_name, place.std_offset, start_ts)
        local_hour = int(((start_ts + utc_offset) % DAY) // 3600)
        if name is None:
            name = self.default_name(sport, local_hour)
        external_id = _external_id(rng, setting, sensors.device_name)
        summary: JSONDict = {
            "resource_state": 2,
            "athlete": {"id": self.athlete_id, "resource_state": 1},
            "name": name,
            **_timing_fields(rng, sport, motion, climb, start_ts, place, utc_offset),
            **_social_fields(rng, social),
            "map": {"id": "a0", "summary_polyline": route.polyline, "resource_state": 2},
            "trainer": setting.trainer,
            "commute": (
                sport.legacy_type == "Ride" and not setting.trainer and rng.random() < 0.15
            ),
            "manual": manual,
            "private": social.visibility == "only_me",
            "visibility": social.visibility,
            "flagged": False,
            "gear_id": gear_id,
            "start_latlng": route.start_latlng,
            "end_latlng": route.end_latlng,
            "average_speed": motion.average_speed,
            "max_speed": motion.max_speed,
        }
        _add_device_fields(rng, summary, sport, setting, sensors, motion.moving_time)
        _add_upload_fields(rng, summary, setting, sensors, social, climb, external_id)
        return self._stored(summary, start_ts, place, motion, route, upload_delay)

    def _gear_for(self, sport: Sport) -> str | None:
        """Mostly the athlete's shoes or bikes, as a sport uses them; sometimes none."""
        rng = self.rng
        if sport.gear == "shoe" and self.gear_ids["shoes"] and rng.random() < 0.9:
            return rng.choice(self.gear_ids["shoes"])
        if sport.gear == "bike" and self.gear_ids["bikes"] and rng.random() < 0.95:
            return rng.choice(self.gear_ids["bikes"])
        return None

    def _stored(
        self,
        summary: JSONDict,
        start_ts: int,
        place: Place,
        motion: _Motion,
        route: _Route,
        upload_delay: int | None,
    ) -> StoredActivity:
        """Wrap a summary with what only the detail has and when it was uploaded."""
        rng = self.rng
        manual = bool(summary["manual"])
        if upload_delay is None:
            upload_delay = (
                int(rng.uniform(60, 3600)) if not manual else int(rng.uniform(3600, 5 * DAY))
            )
        # The default is drawn even when kilojoules exist: one draw per activity, always.
        estimate = motion.moving_time / 60 * rng.uniform(6, 12)
        calories = _r1(summary.get("kilojoules", estimate))
        extra: JSONDict = {
            "description": self._description(),
            "calories": calories,
            "perceived_exertion": rng.choice((None, None, None, 3.0, 5.0, 7.0, 9.0)),
            "track_points": route.track_points,
        }
        return StoredActivity(
            summary=summary,
            start_ts=start_ts,
            tie=rng.getrandbits(31),
            upload_ts=start_ts + motion.elapsed_time + upload_delay,
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


@dataclass(frozen=True)
class _Setting:
    """Where an activity happens: outdoors with GPS, indoors, on a trainer, in Zwift."""

    manual: bool
    indoor: bool
    virtual: bool
    trainer: bool

    @property
    def gps(self) -> bool:
        """Whether the activity has a GPS track (Zwift's virtual one included)."""
        return not self.indoor


@dataclass(frozen=True)
class _Motion:
    """Distance, times and speeds, as Strava rounds them."""

    distance: float
    moving_time: int
    elapsed_time: int
    average_speed: float
    max_speed: float


@dataclass(frozen=True)
class _Route:
    """The GPS part of a summary: end points and polyline, or nothing indoors."""

    start_latlng: list[float]
    end_latlng: list[float]
    polyline: str | None
    track_points: int


@dataclass(frozen=True)
class _Climb:
    """Elevation gain (an int 0 without data) and the high and low points if known."""

    total_elevation_gain: int | float
    high_low: tuple[float, float] | None


@dataclass(frozen=True)
class _Sensors:
    """The recording device and which sensors it had (no sensor: no field)."""

    device_name: str | None
    has_hr: bool
    has_cadence: bool
    has_temp: bool
    avg_hr: float
    max_hr: float


@dataclass(frozen=True)
class _Social:
    """Who sees the activity and what they did with it."""

    visibility: str
    athlete_count: int
    kudos: int
    achievements: int
    prs: int
    total_photos: int


def _setting(rng: random.Random, sport: Sport, manual: bool) -> _Setting:
    """Indoors without GPS, sometimes indoors for a GPS sport; Zwift rides are outdoors."""
    indoor = (not sport.gps) or (sport.indoor_share > 0 and rng.random() < sport.indoor_share)
    if manual:
        indoor = True
    virtual = sport.sport_type == "VirtualRide"
    if virtual:
        indoor = False
    trainer = sport.trainer or (indoor and sport.sport_type == "Run")
    return _Setting(manual=manual, indoor=indoor, virtual=virtual, trainer=trainer)


def _motion(rng: random.Random, sport: Sport, manual: bool) -> _Motion:
    """Distance and speed for distance sports, a duration for the others.

    A manual entry has no pauses (elapsed equals moving time) and no speed sensor.
    """
    if sport.distance_km[1] > 0:
        distance = rng.uniform(*sport.distance_km) * 1000
        speed = rng.uniform(*sport.speed)
        moving_time = max(int(distance / speed), 60)
    else:
        distance = 0.0
        moving_time = int(rng.uniform(*sport.duration_min) * 60)
    elapsed_time = moving_time if manual else moving_time + int(rng.expovariate(1 / 120))
    distance = _r1(distance)
    average_speed = round(distance / moving_time, 3) if distance > 0 else 0.0
    no_speed = manual or distance == 0
    max_speed = 0.0 if no_speed else _r1(average_speed * rng.uniform(1.3, 2.2))
    return _Motion(distance, moving_time, elapsed_time, average_speed, max_speed)


def _route(rng: random.Random, place: Place, distance: float, setting: _Setting) -> _Route:
    """A GPS track near the place (Watopia for Zwift), or ``[]`` and an empty polyline.

    A manual activity has ``null`` as its polyline, an indoor recording ``""``: real
    Strava data has both.
    """
    if not setting.gps:
        return _Route([], [], None if setting.manual else "", 0)
    base = WATOPIA if setting.virtual else (place.lat, place.lng)
    start = (
        round(base[0] + rng.uniform(-0.04, 0.04), 6),
        round(base[1] + rng.uniform(-0.04, 0.04), 6),
    )
    track_points = rng.randint(20, 48)
    track = make_track(rng, start, distance, track_points)
    return _Route(
        start_latlng=[track[0][0], track[0][1]],
        end_latlng=[track[-1][0], track[-1][1]],
        polyline=encode_polyline(track),
        track_points=track_points,
    )


def _climb(rng: random.Random, sport: Sport, distance: float, setting: _Setting) -> _Climb:
    """Elevation: an int 0 without elevation data, floats (or ints for Zwift) otherwise."""
    if not (setting.gps and distance > 0):
        return _Climb(0, None)
    gain = distance / 1000 * rng.uniform(*sport.climb_per_km)
    total = int(gain) if setting.virtual else _r1(gain)
    low = _r1(rng.uniform(-8, 450))
    return _Climb(total, (low + _r1(gain * rng.uniform(0.2, 0.7)) + 1.0, low))


def _sensors(rng: random.Random, sport: Sport, setting: _Setting) -> _Sensors:
    """The device and sensors: none for a manual entry, no thermometer in Zwift."""
    manual = setting.manual
    device_kind = "virtual" if setting.virtual else ("bike" if sport.power else "watch")
    device_name = None if manual else rng.choice(DEVICES[device_kind])
    has_hr = (not manual) and rng.random() < 0.85
    has_cadence = (not manual) and sport.cadence is not None and rng.random() < 0.85
    has_temp = (not manual) and (not setting.virtual) and rng.random() < 0.35
    avg_hr = _r1(rng.uniform(*sport.hr)) if has_hr else 0.0
    max_hr = float(int(avg_hr + rng.uniform(8, 30))) if has_hr else 0.0
    return _Sensors(device_name, has_hr, has_cadence, has_temp, avg_hr, max_hr)


def _social(rng: random.Random, sport: Sport, manual: bool, visibility: str | None) -> _Social:
    """Visibility (drawn unless given), group size, kudos, achievements and photos.

    Only public runs and rides earn achievements; nobody gives kudos to ``only_me``.
    """
    if visibility is None:
        roll = rng.random()
        visibility = "only_me" if roll < 0.07 else "followers_only" if roll < 0.15 else "everyone"
    athlete_count = 1 if rng.random() < 0.88 else rng.randint(2, 6)
    kudos = 0 if visibility == "only_me" else int(rng.expovariate(1 / 6))
    achievements = 0
    prs = 0
    if not manual and sport.legacy_type in ("Run", "Ride") and visibility == "everyone":
        achievements = int(rng.expovariate(1 / 3))
        prs = min(achievements, int(rng.expovariate(1 / 1.2)))
    total_photos = 0 if rng.random() < 0.85 else rng.randint(1, 6)
    return _Social(visibility, athlete_count, kudos, achievements, prs, total_photos)


def _external_id(rng: random.Random, setting: _Setting, device_name: str | None) -> str | None:
    """The uploaded file's name as each source names it (none for a manual entry)."""
    if setting.manual:
        return None
    if setting.virtual:
        return f"zwift-activity-{rng.randint(10**17, 10**18)}.fit"
    if device_name == "Strava App":
        return f"{rng.getrandbits(64):016x}"
    if rng.random() < 0.6:
        return f"garmin_ping_{rng.randint(10**11, 10**12)}"
    return f"{rng.randint(10**10, 10**11)}.{rng.choice(('fit', 'tcx', 'gpx'))}"


def _timing_fields(
    rng: random.Random,
    sport: Sport,
    motion: _Motion,
    climb: _Climb,
    start_ts: int,
    place: Place,
    utc_offset: float,
) -> JSONDict:
    """The summary's fields from ``distance`` to ``location_country``, in Strava's order."""
    return {
        "distance": motion.distance,
        "moving_time": motion.moving_time,
        "elapsed_time": motion.elapsed_time,
        "total_elevation_gain": climb.total_elevation_gain,
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
    }


def _social_fields(rng: random.Random, social: _Social) -> JSONDict:
    """The summary's counts, from ``achievement_count`` to ``photo_count``."""
    return {
        "achievement_count": social.achievements,
        "kudos_count": social.kudos,
        "comment_count": 0 if social.kudos == 0 else int(rng.expovariate(1 / 1.0)),
        "athlete_count": social.athlete_count,
        "photo_count": 0,
    }


def _add_device_fields(
    rng: random.Random,
    summary: JSONDict,
    sport: Sport,
    setting: _Setting,
    sensors: _Sensors,
    moving_time: int,
) -> None:
    """Cadence, power and temperature: each field only with its sensor, as Strava does."""
    if sensors.has_cadence and sport.cadence is not None:
        summary["average_cadence"] = _r1(rng.uniform(*sport.cadence))
    if sport.power and not setting.manual:
        device_watts = setting.virtual or rng.random() < 0.5
        avg_w = _r1(rng.uniform(140, 260))
        summary["average_watts"] = avg_w
        if device_watts:
            summary["max_watts"] = int(avg_w * rng.uniform(2.5, 4.5))
            summary["weighted_average_watts"] = int(avg_w * rng.uniform(1.02, 1.12))
        summary["kilojoules"] = _r1(avg_w * moving_time / 1000)
        summary["device_watts"] = device_watts
    if sensors.has_temp:
        summary["average_temp"] = rng.randint(2, 31)


def _add_upload_fields(
    rng: random.Random,
    summary: JSONDict,
    setting: _Setting,
    sensors: _Sensors,
    social: _Social,
    climb: _Climb,
    external_id: str | None,
) -> None:
    """Heart rate, elevation extremes, upload and device fields, to the end of a summary."""
    summary["has_heartrate"] = sensors.has_hr
    if sensors.has_hr:
        summary["average_heartrate"] = sensors.avg_hr
        summary["max_heartrate"] = sensors.max_hr
    summary["heartrate_opt_out"] = False
    summary["display_hide_heartrate_option"] = sensors.has_hr
    if climb.high_low is not None:
        summary["elev_high"] = _r1(climb.high_low[0])
        summary["elev_low"] = _r1(climb.high_low[1])
    summary["upload_id"] = None
    if not setting.manual:
        summary["upload_id_str"] = ""
    summary["external_id"] = external_id
    summary["from_accepted_tag"] = social.athlete_count > 1 and rng.random() < 0.2
    summary["pr_count"] = social.prs
    summary["total_photo_count"] = social.total_photos
    summary["has_kudoed"] = False
    summary["suffer_score"] = (
        float(max(1, int(summary["moving_time"] / 60 * max(sensors.avg_hr - 95, 5) / 40)))
        if sensors.has_hr
        else None
    )
    summary["device_name"] = sensors.device_name
    summary["hide_from_home"] = bool(summary["commute"]) and rng.random() < 0.5


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


def generate(seed: int, activity_count: int, now: float) -> Dataset:
    """Generate the athlete, gear and ``activity_count`` activities before ``now``.

    Activities all end before midnight UTC of ``now``'s day (so the data only changes once a
    day for a given seed); the newest is one to three days old. The steps draw from one
    ``rng`` in a fixed order, which is what makes a seed reproducible: keep that order.
    """
    rng = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    anchor_ts = int(now) - int(now) % DAY
    home = rng.choice(PLACES[:6])
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
        item["converted_distance"] = _r1(item["distance"] / 1000)
        key = "bikes" if item["id"].startswith("b") else "shoes"
        athlete[key].append(gear_summary(item))
