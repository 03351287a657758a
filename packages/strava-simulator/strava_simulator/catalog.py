"""The simulator's world: sports, places, devices and names real Strava data has.

Static tables only, no randomness: the generator (:mod:`strava_simulator.data`)
draws from them, the store maps an edited ``timezone`` or ``sport_type`` back to them and
the stats group sport types as Strava's totals do.
"""

from __future__ import annotations

from dataclasses import dataclass

from strava_simulator.geo import LatLng


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
