"""One activity at a time: how the simulator builds a realistic Strava activity.

:class:`ActivityFactory` builds the history (:func:`strava_simulator.data.generate`)
and every later upload of a running simulator from the same ``random.Random``, so a seed
gives the same activities and the same uploads after them. Each step of
:meth:`ActivityFactory.build` is a helper here that draws from that generator in a fixed
order; that order is the data of a seed (``tests/test_simulator_determinism.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from strava_simulator import timeutil
from strava_simulator.catalog import DEVICES, PLACES, SPORTS, WATOPIA, Place, Sport
from strava_simulator.geo import encode_polyline, make_track

JSONDict = dict[str, Any]

DAY = 86_400


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


class IdSequence:
    """Increasing activity and upload ids with irregular gaps, as Strava's are.

    Strava's activity ids are unique across all athletes. Each athlete's sequence is drawn
    from its own seed, so two athletes of one simulator could draw the same id (200
    athletes x 447 activities drew two such pairs); ``taken``, shared by the simulator's
    athletes, moves a drawn id up to the next free one. It draws nothing from the random
    generator, so an athlete without a clash keeps exactly the data its seed gives.
    """

    def __init__(self, rng: random.Random, first_id: int, taken: set[int] | None = None) -> None:
        self._rng = rng
        self.last_id = first_id
        self.last_upload_id = first_id + first_id // 12
        self._taken = taken if taken is not None else set()

    def next(self) -> tuple[int, int]:
        """Return the next (activity id, upload id)."""
        self.last_id += self._rng.randint(1_000_000, 30_000_000)
        while self.last_id in self._taken:
            self.last_id += 1
        self._taken.add(self.last_id)
        self.last_upload_id += self._rng.randint(1_000_000, 32_000_000)
        return self.last_id, self.last_upload_id


def round1(value: float) -> float:
    """One decimal, as Strava rounds distances, speeds and weights."""
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
        calories = round1(summary.get("kilojoules", estimate))
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
    distance = round1(distance)
    average_speed = round(distance / moving_time, 3) if distance > 0 else 0.0
    no_speed = manual or distance == 0
    max_speed = 0.0 if no_speed else round1(average_speed * rng.uniform(1.3, 2.2))
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
    total = int(gain) if setting.virtual else round1(gain)
    low = round1(rng.uniform(-8, 450))
    return _Climb(total, (low + round1(gain * rng.uniform(0.2, 0.7)) + 1.0, low))


def _sensors(rng: random.Random, sport: Sport, setting: _Setting) -> _Sensors:
    """The device and sensors: none for a manual entry, no thermometer in Zwift."""
    manual = setting.manual
    device_kind = "virtual" if setting.virtual else ("bike" if sport.power else "watch")
    device_name = None if manual else rng.choice(DEVICES[device_kind])
    has_hr = (not manual) and rng.random() < 0.85
    has_cadence = (not manual) and sport.cadence is not None and rng.random() < 0.85
    has_temp = (not manual) and (not setting.virtual) and rng.random() < 0.35
    avg_hr = round1(rng.uniform(*sport.hr)) if has_hr else 0.0
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
        summary["average_cadence"] = round1(rng.uniform(*sport.cadence))
    if sport.power and not setting.manual:
        device_watts = setting.virtual or rng.random() < 0.5
        avg_w = round1(rng.uniform(140, 260))
        summary["average_watts"] = avg_w
        if device_watts:
            summary["max_watts"] = int(avg_w * rng.uniform(2.5, 4.5))
            summary["weighted_average_watts"] = int(avg_w * rng.uniform(1.02, 1.12))
        summary["kilojoules"] = round1(avg_w * moving_time / 1000)
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
        summary["elev_high"] = round1(climb.high_low[0])
        summary["elev_low"] = round1(climb.high_low[1])
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
