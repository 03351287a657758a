"""The simulator's data are a function of the seed: pinned, so a refactor cannot move them.

`generate` draws everything from one `random.Random(seed)`; the order of the draws *is*
the data. Tests across the suite (and users' own fixtures) rely on a seed giving the same
athlete, the same activities with the same ids, names and quirks, and the same details
and streams. These digests were taken before the generator's long functions were split
into helpers (issue 15) and must not change with a refactor. If the data are meant to
change, replace the digests with the ones this test prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from strava_simulator import details
from strava_simulator.catalog import PLACES
from strava_simulator.data import generate

NOW = 1_780_000_000.0  # 2026-05-28, as in tests/test_simulator.py

#: (seed, activity count) -> sha256 of everything generated (see `dump`).
DIGESTS = {
    (1, 1): "e3d437d8fe42fcade0fad8d2a11759edb16a610502122af9e5696a201948f78a",
    (3, 12): "c63a3141f00c7e3aadcd158ee31c05d20edb3937d5762bb736a4c1c39f5d96f1",
    (7, 60): "7b4fb9f60fbcbb0b8e24f6415171913a2f7e400d9fc5e31f38dfa8174f9bc77c",
    (42, 200): "a777076ec40fab1c0ee9f4975cc86928f54f1b5d08f648ed5ee546c57a11687d",
}
#: Seed and count whose details, laps, zones and streams are pinned too (they derive from
#: each activity's `detail_seed` and summary).
WITH_DETAILS = (3, 12)


def _zones_available() -> bool:
    """Offsets come from the tz database; without it the data differ (standard offsets)."""
    try:
        for place in PLACES:
            ZoneInfo(place.tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def dump(seed: int, count: int) -> str:
    """Everything of one dataset, key order included, plus what the factory draws next."""
    dataset = generate(seed, count, NOW)
    activities = []
    for activity in dataset.activities:
        entry = {
            "summary": activity.summary,
            "start_ts": activity.start_ts,
            "tie": activity.tie,
            "upload_ts": activity.upload_ts,
            "detail_seed": activity.detail_seed,
            "place": dataclasses.asdict(activity.place),
            "extra": activity.extra,
        }
        if (seed, count) == WITH_DETAILS:
            entry["detailed"] = details.detailed(activity, dataset.gear)
            entry["laps"] = details.laps(activity)
            entry["zones"] = details.zones(activity)
            entry["streams"] = details.streams(activity, list(details.STREAM_TYPES))
        activities.append(entry)
    # Later uploads (`add_activity`) keep drawing from the same generator.
    factory = dataset.factory
    later = []
    for _ in range(5):
        upload = factory.build(factory.random_sport(), int(NOW) - 3600, factory.random_place())
        factory.assign_id(upload)
        later.append([upload.summary, upload.extra, upload.tie, upload.upload_ts])
    manual = factory.build(factory.sport_for("Padel"), int(NOW), dataset.home, manual=True)
    later.append(manual.summary)
    return json.dumps(
        {
            "athlete": dataset.athlete,
            "gear": dataset.gear,
            "clubs": dataset.clubs,
            "home": dataclasses.asdict(dataset.home),
            "activities": activities,
            "later": later,
            "next_draw": factory.rng.random(),
        },
        ensure_ascii=False,
    )


@pytest.mark.skipif(not _zones_available(), reason="no tz database for the simulator's places")
def test_a_seed_always_gives_the_same_data():
    got = {key: hashlib.sha256(dump(*key).encode()).hexdigest() for key in DIGESTS}
    assert got == DIGESTS, f"the data of a seed changed; if intended, use: {got}"
