"""The simulator against the facts: real recorded answers, listing rules, tokens, scopes.

Shapes are compared with the real Strava answers recorded in ``tests/fixtures/strava-samples``
(a copy of ``shared/docs/strava-samples``; ``STRAVA_SAMPLES_DIR`` overrides the location). A
missing sample fails the test: a fresh clone always checks the shapes.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from strava_simulator import StravaSimulator
from strava_simulator.data import generate
from strava_simulator.geo import decode_polyline, encode_polyline

SAMPLES_DIR = Path(
    os.environ.get("STRAVA_SAMPLES_DIR")
    or Path(__file__).resolve().parent / "fixtures" / "strava-samples"
)
NOW = 1_780_000_000.0  # 2026-05-28, fixed so that the data are the same on every run
TIMEOUT = 10


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sample(name: str) -> dict[str, Any]:
    path = SAMPLES_DIR / name
    if not path.is_file():
        pytest.fail(f"real Strava sample {path} is missing (tests/fixtures or STRAVA_SAMPLES_DIR)")
    return json.loads(path.read_text(encoding="utf-8"))[0]


IN_REPO_SAMPLES = Path(__file__).resolve().parent / "fixtures" / "strava-samples"
SAMPLE_FILES = (
    "activity.json",
    "activity_laps.json",
    "activity_streams.json",
    "activity_zones.json",
    "athlete.json",
    "athlete_activities.json",
    "athlete_activities_december_2018.json",
    "athlete_stats.json",
    "gear.json",
    "oauth_token_authorization_code.json",
    "oauth_token_invalid_client.json",
    "oauth_token_refresh_token.json",
)


def test_the_real_samples_are_in_the_repository():
    """A fresh clone has every recorded answer the shape tests compare with."""
    missing = [n for n in SAMPLE_FILES if not (IN_REPO_SAMPLES / n).is_file()]
    assert not missing, f"missing from {IN_REPO_SAMPLES}: {missing}"
    for name in SAMPLE_FILES:
        recorded = json.loads((IN_REPO_SAMPLES / name).read_text(encoding="utf-8"))
        assert recorded, name
        assert {"status", "body"} <= set(recorded[0]), name


# -- type comparison ---------------------------------------------------------------------
def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    return "dict"


def compatible(sample_kinds: set[str], sim_kind: str, *, numeric_mix: bool, nullable: bool) -> bool:
    if sample_kinds == {"null"} or sim_kind in sample_kinds:
        return True
    if sim_kind == "null":
        return nullable
    return numeric_mix and sim_kind in ("int", "float") and bool(sample_kinds & {"int", "float"})


def assert_same_shape(
    samples: list[Any],
    sims: list[Any],
    where: str,
    *,
    mixed: frozenset[str] = frozenset(),
    nullable: frozenset[str] = frozenset(),
) -> None:
    """Every field of the samples exists in the sim objects with a compatible JSON type."""
    sample_fields: dict[str, set[str]] = {}
    for item in samples:
        for key, value in item.items():
            sample_fields.setdefault(key, set()).add(kind(value))
    sim_fields: dict[str, set[str]] = {}
    for item in sims:
        for key, value in item.items():
            sim_fields.setdefault(key, set()).add(kind(value))
    for key, kinds in sample_fields.items():
        assert key in sim_fields, f"{where}.{key} is never sent by the simulator"
        for sim_kind in sim_fields[key]:
            assert compatible(
                kinds, sim_kind, numeric_mix=key in mixed, nullable=key in nullable
            ), f"{where}.{key}: simulator sends {sim_kind}, Strava sends {sorted(kinds)}"
        if "dict" in kinds:
            assert_same_shape(
                [i[key] for i in samples if isinstance(i.get(key), dict)],
                [i[key] for i in sims if isinstance(i.get(key), dict)],
                f"{where}.{key}",
                mixed=mixed,
                nullable=nullable,
            )
        if "list" in kinds:
            inner_sample = [v for i in samples if isinstance(i.get(key), list) for v in i[key]]
            inner_sim = [v for i in sims if isinstance(i.get(key), list) for v in i[key]]
            if inner_sample and isinstance(inner_sample[0], dict):
                assert_same_shape(
                    inner_sample, inner_sim, f"{where}.{key}[]", mixed=mixed, nullable=nullable
                )
            elif inner_sample and inner_sim:
                sample_kinds = {kind(v) for v in inner_sample}
                for v in inner_sim:
                    assert compatible(sample_kinds, kind(v), numeric_mix=True, nullable=False), (
                        f"{where}.{key}[] holds {kind(v)}, Strava sends {sorted(sample_kinds)}"
                    )


def header(response: requests.Response, name: str) -> str | None:
    return response.headers.get(name)  # requests' headers are case-insensitive


def assert_rate_headers_like_sample(response: requests.Response, recorded: dict[str, str]) -> None:
    recorded_lower = {k.lower(): v for k, v in recorded.items()}
    for name in (
        "X-RateLimit-Limit",
        "X-RateLimit-Usage",
        "X-ReadRateLimit-Limit",
        "X-ReadRateLimit-Usage",
    ):
        value = header(response, name)
        assert value is not None, f"missing {name}"
        assert re.fullmatch(r"\d+,\d+", value), value
        assert re.fullmatch(r"\d+,\d+", recorded_lower[name.lower()])
    assert header(response, "Content-Type") == recorded_lower["content-type"]


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_sim():
    """A read-only simulator for the tests that do not change state."""
    with StravaSimulator(
        seed=7,
        activity_count=600,
        clock=FakeClock(NOW),
        read_limit_15min=10**6,
        read_limit_daily=10**7,
        overall_limit_15min=10**6,
        overall_limit_daily=10**7,
    ) as sim:
        yield sim


@pytest.fixture(scope="module")
def shared_auth(shared_sim: StravaSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {shared_sim.issue_access_token()}"}


@pytest.fixture
def sim():
    """A fresh simulator (state-changing tests)."""
    with StravaSimulator(seed=3, activity_count=120, clock=FakeClock(NOW)) as simulator:
        yield simulator


def bearer(sim: StravaSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.issue_access_token()}"}


def get(sim: StravaSimulator, path: str, headers: dict[str, str], **params: Any):
    return requests.get(sim.api_url + path, headers=headers, params=params, timeout=TIMEOUT)


def list_all(
    sim: StravaSimulator, headers: dict[str, str], per_page: int = 200, **params: Any
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        response = get(sim, "/athlete/activities", headers, page=page, per_page=per_page, **params)
        assert response.status_code == 200, response.text
        batch = response.json()
        if not batch:
            return items
        items.extend(batch)
        page += 1


def refresh(sim: StravaSimulator, refresh_token: str | None, **overrides: str):
    data = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "grant_type": "refresh_token",
        "refresh_token": refresh_token or "",
    }
    data.update(overrides)
    return requests.post(sim.token_url, data=data, timeout=TIMEOUT)


# -- shapes ------------------------------------------------------------------------------
ACTIVITY_NULLABLE = frozenset(
    {
        "workout_type",
        "gear_id",
        "external_id",
        "upload_id",
        "upload_id_str",
        "suffer_score",
        "summary_polyline",
        "polyline",
        "device_name",
        "description",
        "pr_rank",
    }
)


def test_activity_list_shape_matches_real_answers(shared_sim, shared_auth):
    response = get(shared_sim, "/athlete/activities", shared_auth, per_page=200)
    assert response.status_code == 200
    sims = response.json()
    for name in ("athlete_activities.json", "athlete_activities_december_2018.json"):
        recorded = sample(name)
        assert_same_shape(
            recorded["body"],
            sims,
            name,
            mixed=frozenset({"total_elevation_gain"}),
            nullable=ACTIVITY_NULLABLE,
        )
        assert_rate_headers_like_sample(response, recorded["headers"])


def test_athlete_shape_matches_real_answer(shared_sim, shared_auth):
    recorded = sample("athlete.json")
    response = get(shared_sim, "/athlete", shared_auth)
    assert response.status_code == 200
    body = response.json()
    assert body["resource_state"] == 3
    assert_same_shape(
        [recorded["body"]],
        [body],
        "athlete",
        nullable=frozenset({"nickname", "ftp", "cover_photo", "cover_photo_small"}),
    )
    assert_rate_headers_like_sample(response, recorded["headers"])


def test_stats_shape_matches_real_answer(shared_sim, shared_auth):
    recorded = sample("athlete_stats.json")
    response = get(shared_sim, f"/athletes/{shared_sim.athlete_id}/stats", shared_auth)
    assert response.status_code == 200
    # Strava itself mixes ints and floats in the totals (e.g. "distance": 1336128).
    assert_same_shape(
        [recorded["body"]],
        [response.json()],
        "stats",
        mixed=frozenset({"distance", "moving_time", "elapsed_time", "elevation_gain"}),
    )
    assert_rate_headers_like_sample(response, recorded["headers"])


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("activity.json", ""),
        ("activity_laps.json", "/laps"),
        ("activity_zones.json", "/zones"),
    ],
)
def test_activity_detail_shapes_match_real_answers(shared_sim, shared_auth, name, path):
    recorded = sample(name)
    run = next(
        a
        for a in shared_sim.activities
        if a["type"] == "Run"
        and a["has_heartrate"]
        and a["gear_id"]
        and a["distance"] > 5000
        and not a["manual"]
        and a["start_latlng"]
    )
    response = get(shared_sim, f"/activities/{run['id']}{path}", shared_auth)
    assert response.status_code == 200
    body = response.json()
    recorded_body = recorded["body"]
    if isinstance(recorded_body, dict):
        recorded_body = dict(recorded_body)
        # Not generated: the segment efforts of real segments and Strava's own statistics.
        for key in ("segment_efforts", "similar_activities", "photos"):
            recorded_body.pop(key, None)
        recorded_body, body = [recorded_body], [body]
    assert_same_shape(
        recorded_body,
        body,
        name,
        nullable=ACTIVITY_NULLABLE | {"nickname"},
        mixed=frozenset({"total_elevation_gain", "score", "time", "min", "max", "distance"}),
    )
    assert_rate_headers_like_sample(response, recorded["headers"])


def test_streams_and_gear_shapes_match_real_answers(shared_sim, shared_auth):
    recorded = sample("activity_streams.json")
    run = next(a for a in shared_sim.activities if a["type"] == "Run" and a["start_latlng"])
    response = get(shared_sim, f"/activities/{run['id']}/streams", shared_auth, key_by_type="true")
    assert response.status_code == 200
    body = response.json()
    assert set(recorded["body"]) <= set(body)  # distance always comes back
    assert_same_shape(list(recorded["body"].values()), list(body.values()), "streams")
    with_keys = get(
        shared_sim,
        f"/activities/{run['id']}/streams",
        shared_auth,
        keys="time,latlng,heartrate,altitude",
        key_by_type="true",
    ).json()
    assert {"time", "latlng", "distance"} <= set(with_keys)
    assert all(len(s["data"]) == s["original_size"] for s in with_keys.values())
    as_list = get(shared_sim, f"/activities/{run['id']}/streams", shared_auth, keys="time").json()
    assert isinstance(as_list, list)
    assert {s["type"] for s in as_list} == {"time", "distance"}

    gear_samples = json.loads((SAMPLES_DIR / "gear.json").read_text(encoding="utf-8"))
    for recorded_gear in gear_samples:
        prefix = recorded_gear["body"]["id"][0]
        gear_id = next(g for g in shared_sim.gear if g.startswith(prefix))
        response = get(shared_sim, f"/gear/{gear_id}", shared_auth)
        assert response.status_code == 200
        assert_same_shape(
            [recorded_gear["body"]],
            [response.json()],
            f"gear {prefix}",
            nullable=frozenset({"nickname", "description"}),
            mixed=frozenset({"distance", "weight"}),
        )


def test_token_answers_match_real_answers(sim):
    recorded = sample("oauth_token_refresh_token.json")
    response = refresh(sim, sim.refresh_token)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == recorded["headers"]["Content-Type"]
    assert_same_shape([recorded["body"]], [response.json()], "token")
    assert "X-RateLimit-Usage" not in response.headers  # token calls carry no quota headers

    invalid = sample("oauth_token_invalid_client.json")
    response = refresh(sim, sim.refresh_token, client_id="999")
    assert response.status_code == invalid["status"]
    assert response.json() == invalid["body"]

    code_sample = sample("oauth_token_authorization_code.json")
    code = authorize(sim, scope="read,activity:read_all")["code"][0]
    response = requests.post(
        sim.token_url,
        data={
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "code": code,
            "grant_type": "authorization_code",
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert_same_shape([code_sample["body"]], [response.json()], "token(code)")


def test_date_and_content_type_headers(shared_sim, shared_auth):
    response = get(shared_sim, "/athlete", shared_auth)
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    # RFC 7231 IMF-fixdate from the simulator's (fake) clock.
    assert response.headers["Date"] == time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(NOW))
    assert "Retry-After" not in response.headers


def test_errors_have_strava_bodies(shared_sim, shared_auth):
    unknown = get(shared_sim, "/activities/1", shared_auth)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "message": "Record Not Found",
        "errors": [{"resource": "Activity", "field": "id", "code": "invalid"}],
    }
    assert "X-RateLimit-Usage" in unknown.headers
    nowhere = get(shared_sim, "/no/such/path", shared_auth)
    assert nowhere.status_code == 404
    assert nowhere.json()["message"] == "Record Not Found"
    no_token = get(shared_sim, "/athlete", {})
    assert no_token.status_code == 401
    assert no_token.json() == {
        "message": "Authorization Error",
        "errors": [{"resource": "Athlete", "field": "access_token", "code": "invalid"}],
    }
    assert get(shared_sim, "/athlete", {"Authorization": "Bearer nope"}).status_code == 401


# -- generated data ----------------------------------------------------------------------
def test_generated_data_has_the_hard_cases(shared_sim):
    acts = shared_sim.activities
    assert len(acts) == 600
    names = [a["name"] for a in acts]
    assert any("DROP TABLE" in n for n in names)
    assert any("\n" in n for n in names)
    assert any("\t" in n for n in names)
    assert any('"' in n for n in names)
    assert any("'" in n for n in names)
    assert any("\\" in n for n in names)
    assert any(any(ord(c) > 0xFFFF for c in n) for n in names)  # emoji beyond the BMP
    assert any(any(0x4E00 <= ord(c) <= 0x9FFF for c in n) for n in names)  # CJK
    sports = {a["sport_type"] for a in acts}
    assert {
        "Run",
        "Ride",
        "Swim",
        "Walk",
        "Hike",
        "TrailRun",
        "VirtualRide",
        "WeightTraining",
        "Yoga",
        "Padel",
    } <= sports
    assert all(a["trainer"] for a in acts if a["sport_type"] == "VirtualRide")
    manual = [a for a in acts if a["manual"]]
    assert manual
    for a in manual:
        assert a["start_latlng"] == []
        assert a["end_latlng"] == []
        assert a["upload_id"] is None
        assert a["external_id"] is None
    assert any(a["summary_polyline"] == "" for a in (x["map"] for x in acts))
    assert {a["visibility"] for a in acts} == {"everyone", "followers_only", "only_me"}
    assert all(a["private"] == (a["visibility"] == "only_me") for a in acts)
    assert any(a["gear_id"] is None for a in acts)
    assert {a["workout_type"] for a in acts} >= {None, 0, 1, 2, 3, 10, 11, 12}
    for a in acts:
        assert ("average_heartrate" in a) == a["has_heartrate"]
        assert ("max_heartrate" in a) == a["has_heartrate"]
        if "average_watts" in a or "kilojoules" in a or "device_watts" in a:
            assert a["type"] in ("Ride", "VirtualRide")
        assert isinstance(a["utc_offset"], float)
        assert isinstance(a["distance"], float)
        assert isinstance(a["moving_time"], int)
        assert isinstance(a["id"], int)
        assert a["id"] > 2**32
        assert a["map"]["id"] == f"a{a['id']}"
    assert {type(a["total_elevation_gain"]) for a in acts} == {int, float}


def test_dates_are_consistent_and_in_the_past(shared_sim):
    acts = shared_sim.activities
    for a in acts:
        assert a["start_date"].endswith("Z")
        assert a["start_date_local"].endswith("Z")
        utc = epoch(a["start_date"])
        assert epoch(a["start_date_local"]) - utc == a["utc_offset"]
        assert re.fullmatch(r"\(GMT[+-]\d\d:\d\d\) [A-Za-z_/]+", a["timezone"])
        assert utc + a["elapsed_time"] < NOW
    newest = max(acts, key=lambda a: a["start_date"])
    assert NOW - epoch(newest["start_date"]) < 4 * 86400
    # Half-hour zones and daylight saving both show up in real data: the offsets vary.
    assert len({a["utc_offset"] for a in acts}) > 2


def test_polylines_are_real_encoded_polylines(shared_sim):
    gps = [a for a in shared_sim.activities if a["start_latlng"]]
    assert gps
    for a in gps[:50]:
        points = decode_polyline(a["map"]["summary_polyline"])
        assert len(points) >= 2
        assert abs(points[0][0] - a["start_latlng"][0]) < 1e-4
        assert abs(points[-1][1] - a["end_latlng"][1]) < 1e-4
    track = [(52.37, 4.9), (52.371, 4.901), (52.369, 4.9005)]
    assert decode_polyline(encode_polyline(track)) == track
    assert encode_polyline([(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]) == (
        "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    )


def test_generation_is_deterministic():
    first = generate(42, 50, NOW)
    again = generate(42, 50, NOW)
    other = generate(43, 50, NOW)
    assert [a.summary for a in first.activities] == [a.summary for a in again.activities]
    assert [a.summary for a in first.activities] != [a.summary for a in other.activities]
    assert len(generate(5, 1, NOW).activities) == 1
    # Its speed is not asserted here: a timed test fails on a loaded machine (it did, under
    # six parallel builds); `make bench` times the simulator's answers.
    big = generate(9, 5000, NOW)
    assert len(big.activities) == 5000
    assert len({a.id for a in big.activities}) == 5000
    starts = [a.start_ts for a in big.activities]
    assert len(starts) - len(set(starts)) >= 5000 // 150  # several equal start times


def test_ids_follow_upload_order_not_start_order(shared_sim):
    acts = shared_sim.activities  # newest start first
    ids_by_start = [a["id"] for a in reversed(acts)]
    assert ids_by_start != sorted(ids_by_start)  # late uploads of old activities exist


# -- listing semantics -------------------------------------------------------------------
def test_default_list_is_newest_first_with_30_per_page(shared_sim, shared_auth):
    page = get(shared_sim, "/athlete/activities", shared_auth).json()
    assert len(page) == 30
    starts = [a["start_date"] for a in page]
    assert starts == sorted(starts, reverse=True)
    assert "Link" not in get(shared_sim, "/athlete/activities", shared_auth).headers


def test_paging_returns_everything_once_and_ends_with_an_empty_page(shared_sim, shared_auth):
    items = list_all(shared_sim, shared_auth, per_page=50)
    assert [a["id"] for a in items] == [a["id"] for a in shared_sim.activities]
    assert len({a["id"] for a in items}) == 600


def test_per_page_is_capped_at_200(shared_sim, shared_auth):
    response = get(shared_sim, "/athlete/activities", shared_auth, per_page=500)
    assert response.status_code == 200
    assert len(response.json()) == 200


@pytest.mark.parametrize("field", ["after", "before"])
def test_milliseconds_are_rejected(shared_sim, shared_auth, field):
    response = get(shared_sim, "/athlete/activities", shared_auth, **{field: 1_700_000_000_000})
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Bad Request"
    assert body["errors"][0]["field"] == field


def epoch(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


def test_order_depends_on_after_and_before(shared_sim, shared_auth):
    acts = shared_sim.activities
    middle = epoch(acts[300]["start_date"])
    after_only = list_all(shared_sim, shared_auth, after=middle)
    starts = [a["start_date"] for a in after_only]
    assert starts == sorted(starts)  # ascending with after alone
    assert after_only
    both = list_all(shared_sim, shared_auth, after=middle - 200 * 86400, before=middle)
    starts = [a["start_date"] for a in both]
    assert starts == sorted(starts, reverse=True)  # descending with after and before
    before_only = get(shared_sim, "/athlete/activities", shared_auth, before=middle).json()
    starts = [a["start_date"] for a in before_only]
    assert starts == sorted(starts, reverse=True)


def test_after_and_before_are_exclusive(shared_sim, shared_auth):
    target = shared_sim.activities[100]
    ts = epoch(target["start_date"])
    same_second = {
        a["id"] for a in shared_sim.activities if a["start_date"] == target["start_date"]
    }
    after = {a["id"] for a in list_all(shared_sim, shared_auth, after=ts)}
    before = {a["id"] for a in list_all(shared_sim, shared_auth, before=ts)}
    assert not same_second & after
    assert not same_second & before
    around = {a["id"] for a in list_all(shared_sim, shared_auth, after=ts - 1, before=ts + 1)}
    assert around == same_second
    everything = {a["id"] for a in shared_sim.activities}
    assert after | before | same_second == everything


def test_equal_start_times_come_in_a_stable_non_id_order(shared_sim, shared_auth):
    by_start: dict[str, list[int]] = {}
    for a in shared_sim.activities:
        by_start.setdefault(a["start_date"], []).append(a["id"])
    ties = {start: ids for start, ids in by_start.items() if len(ids) > 1}
    assert len(ties) >= 2
    ascending = list_all(shared_sim, shared_auth, after=0)
    descending = list_all(shared_sim, shared_auth)
    assert descending == list_all(shared_sim, shared_auth)  # stable between calls

    def tie_orders(items: list[dict[str, Any]]) -> list[list[int]]:
        return [[a["id"] for a in items if a["start_date"] == s] for s in ties]

    orders = tie_orders(ascending) + tie_orders(descending)
    assert any(o != sorted(o) for o in orders)
    assert any(o != sorted(o, reverse=True) for o in orders)


# -- tokens ------------------------------------------------------------------------------
def test_refresh_rotates_and_old_refresh_token_dies(sim):
    first = sim.refresh_token
    response = refresh(sim, first)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 21600
    assert body["expires_at"] == int(NOW) + 21600
    assert body["refresh_token"] != first
    assert sim.refresh_token == body["refresh_token"]
    old = refresh(sim, first)
    assert old.status_code == 400
    assert old.json() == {
        "message": "Bad Request",
        "errors": [{"resource": "RefreshToken", "field": "refresh_token", "code": "invalid"}],
    }
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert get(sim, "/athlete", headers).status_code == 200

    # More than an hour left: the same access and refresh tokens come back.
    sim.advance_clock(3600)
    same = refresh(sim, body["refresh_token"]).json()
    assert same["access_token"] == body["access_token"]
    assert same["refresh_token"] == body["refresh_token"]
    assert same["expires_in"] == 21600 - 3600

    # Within the last hour: new access token and (rotation) new refresh token.
    sim.advance_clock(5.5 * 3600 - 3600)
    new = refresh(sim, body["refresh_token"]).json()
    assert new["access_token"] != body["access_token"]
    assert new["refresh_token"] != body["refresh_token"]
    assert refresh(sim, body["refresh_token"]).status_code == 400

    # The first access token expires after its 6 hours.
    sim.advance_clock(3600)
    expired = get(sim, "/athlete", headers)
    assert expired.status_code == 401
    assert expired.json()["errors"][0]["field"] == "access_token"
    assert get(sim, "/athlete", {"Authorization": f"Bearer {new['access_token']}"}).ok


def test_refresh_grants_and_lost_answers_are_recorded_without_tokens(sim):
    """What tests of token races rely on: each grant's fingerprints, never a token."""
    first = sim.refresh_token
    sim.advance_clock(6 * 3600)  # the generator's access token is too old to reuse
    # The refresh is served (the token rotates), then the connection is dropped.
    sim.inject_fault(r"^/oauth/token$", "lost_answer")
    with pytest.raises(requests.ConnectionError):
        refresh(sim, first)
    assert sim.refresh_token != first, "Strava rotated although the answer was lost"
    assert refresh(sim, first).status_code == 400, "the old token died with the rotation"
    assert refresh(sim, sim.refresh_token).status_code == 200

    grants = requests.get(sim.base_url + "/_sim/token_grants", timeout=TIMEOUT).json()
    assert [(g["accepted"], g["rotated"]) for g in grants] == [
        (True, True),
        (False, False),
        (True, False),  # the new access token has > 1 hour left: nothing rotates
    ]
    assert grants[0]["presented"] == grants[1]["presented"], "the same token, twice"
    assert grants[2]["presented"] == grants[0]["issued"]
    text = json.dumps(grants)
    assert first not in text
    assert str(sim.refresh_token) not in text
    lost = [r for r in sim.requests if r.fault == "lost_answer"]
    assert [r.status for r in lost] == [None], "the client never got an answer"


def test_no_rotation_keeps_the_refresh_token():
    with StravaSimulator(
        seed=2,
        activity_count=5,
        rotate_refresh_tokens=False,
        access_token_lifetime=60,
        initial_refresh_token="fixed-token",
    ) as sim:
        assert sim.refresh_token == "fixed-token"
        first = refresh(sim, "fixed-token").json()
        again = refresh(sim, "fixed-token").json()
        assert first["refresh_token"] == again["refresh_token"] == "fixed-token"
        assert first["access_token"] != again["access_token"]  # 60 s left < one hour


def test_client_credentials_are_checked(sim):
    wrong_id = refresh(sim, sim.refresh_token, client_id="54321")
    assert wrong_id.status_code == 400
    assert wrong_id.json()["errors"] == [
        {"resource": "Application", "field": "client_id", "code": "invalid"}
    ]
    wrong_secret = refresh(sim, sim.refresh_token, client_secret="nope")
    assert wrong_secret.status_code == 401
    assert wrong_secret.json() == {
        "message": "Authorization Error",
        "errors": [{"resource": "Application", "field": "", "code": "invalid"}],
    }
    assert refresh(sim, sim.refresh_token, grant_type="password").status_code == 400
    # The refresh token survived the failed calls.
    assert refresh(sim, sim.refresh_token).status_code == 200
    # Strava also accepts the parameters as JSON.
    response = requests.post(
        sim.token_url,
        json={
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": sim.refresh_token,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200


def test_revocation_kills_every_token(sim):
    headers = bearer(sim)
    old_refresh = sim.refresh_token
    assert get(sim, "/athlete", headers).status_code == 200
    sim.revoke_tokens()
    assert get(sim, "/athlete", headers).status_code == 401
    assert sim.refresh_token is None
    assert refresh(sim, old_refresh).status_code == 400


def test_a_new_authorization_starts_a_new_chain(sim):
    old = sim.refresh_token
    fresh = sim.issue_refresh_token()
    assert fresh != old
    assert sim.refresh_token == fresh
    assert refresh(sim, old).status_code == 400
    body = refresh(sim, fresh).json()
    assert body["refresh_token"] == fresh  # its access token has hours left: no rotation yet
    assert get(sim, "/athlete", {"Authorization": f"Bearer {body['access_token']}"}).ok
    sim.revoke_tokens()
    assert refresh(sim, fresh).status_code == 400
    assert refresh(sim, sim.issue_refresh_token()).status_code == 200  # authorized again


def test_deauthorize_endpoint(sim):
    token = sim.issue_access_token()
    response = requests.post(
        sim.base_url + "/oauth/deauthorize", data={"access_token": token}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    assert response.json() == {"access_token": token}
    assert get(sim, "/athlete", {"Authorization": f"Bearer {token}"}).status_code == 401


def test_token_in_query_string_is_accepted_and_recorded(sim):
    token = sim.issue_access_token()
    assert get(sim, "/athlete", {}, access_token=token).status_code == 200
    assert get(sim, "/athlete", {"Authorization": f"Bearer {token}"}).status_code == 200
    query_record, header_record = sim.requests[-2:]
    assert query_record.auth == "query"
    assert query_record.token_in_query
    assert token not in json.dumps(query_record.as_dict())
    assert header_record["auth"] == "header"
    assert header_record["token_in"] == "header"
    assert query_record.token_in == "query"
    assert header_record.path == "/api/v3/athlete"
    assert header_record.status == 200


def authorize(sim: StravaSimulator, **params: str) -> dict[str, list[str]]:
    query = {
        "client_id": sim.client_id,
        "redirect_uri": "http://localhost/cb",
        "response_type": "code",
        "approval_prompt": "force",
        "state": "xyz",
        **params,
    }
    response = requests.get(
        sim.base_url + "/oauth/authorize", params=query, allow_redirects=False, timeout=TIMEOUT
    )
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith("http://localhost/cb?")
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def test_authorization_code_flow(sim):
    granted = authorize(sim, scope="activity:read")
    assert granted["state"] == ["xyz"]
    assert granted["scope"] == ["read,activity:read"]
    code = granted["code"][0]
    exchange = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "code": code,
        "grant_type": "authorization_code",
    }
    response = requests.post(sim.token_url, data=exchange, timeout=TIMEOUT)
    assert response.status_code == 200
    body = response.json()
    assert body["athlete"]["id"] == sim.athlete_id
    assert body["athlete"]["resource_state"] == 2
    assert sim.refresh_token == body["refresh_token"]
    again = requests.post(sim.token_url, data=exchange, timeout=TIMEOUT)
    assert again.status_code == 400
    assert again.json()["errors"][0] == {
        "resource": "AuthorizationCode",
        "field": "code",
        "code": "invalid",
    }
    assert authorize(sim, scope="read", deny="1") == {"state": ["xyz"], "error": ["access_denied"]}
    sim.set_authorization(scope="read")
    assert authorize(sim, scope="read,activity:read_all")["scope"] == ["read"]


# -- scopes ------------------------------------------------------------------------------
def test_missing_activity_scope(sim):
    sim.set_scope("read")
    headers = bearer(sim)
    response = get(sim, "/athlete/activities", headers)
    assert response.status_code == 401
    assert response.json() == {
        "message": "Authorization Error",
        "errors": [
            {"resource": "AccessToken", "field": "activity:read_permission", "code": "missing"}
        ],
    }
    athlete = get(sim, "/athlete", headers).json()
    assert athlete["resource_state"] == 2
    assert "bikes" not in athlete


def test_activity_read_hides_only_me(sim):
    headers = bearer(sim)
    everything = list_all(sim, headers)
    private = [a for a in everything if a["visibility"] == "only_me"]
    assert private
    sim.set_scope("read,activity:read")
    visible = list_all(sim, headers)
    assert len(visible) == len(everything) - len(private)
    assert all(a["visibility"] != "only_me" for a in visible)
    assert any(a["visibility"] == "followers_only" for a in visible)
    assert get(sim, f"/activities/{private[0]['id']}", headers).status_code == 404


def test_stats_are_for_the_athlete_only_and_count_only_public(sim):
    headers = bearer(sim)
    assert get(sim, f"/athletes/{sim.athlete_id + 1}/stats", headers).status_code == 403
    stats = get(sim, f"/athletes/{sim.athlete_id}/stats", headers).json()
    runs = [a for a in sim.activities if a["sport_type"] in ("Run", "TrailRun")]
    public = [a for a in runs if a["visibility"] == "everyone"]
    assert stats["all_run_totals"]["count"] == len(public) < len(runs)
    assert stats["all_run_totals"]["moving_time"] == sum(a["moving_time"] for a in public)


# -- edits -------------------------------------------------------------------------------
def test_late_upload_gets_a_new_high_id_and_an_old_date(sim):
    headers = bearer(sim)
    newest_id = max(a["id"] for a in sim.activities)
    old = sim.add_activity(
        start_date="2020-01-01T10:00:00Z", sport_type="Run", name="Found an old file"
    )
    assert old["id"] > newest_id
    assert old["start_date"] == "2020-01-01T10:00:00Z"
    offset = old["utc_offset"]
    local = time.gmtime(epoch("2020-01-01T10:00:00Z") + int(offset))
    assert old["start_date_local"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", local)
    listed = list_all(sim, headers, after=epoch("2019-12-31T00:00:00Z"))
    assert listed[0]["id"] == old["id"]  # ascending: it comes first
    fresh = sim.add_activity()
    assert fresh["id"] > old["id"]
    assert get(sim, "/athlete/activities", headers).json()[0]["id"] == fresh["id"]
    assert sim.activity(fresh["id"]) == fresh


def test_edits_and_deletes_show_in_the_api(sim):
    headers = bearer(sim)
    target = next(a for a in sim.activities if a["visibility"] == "everyone")
    edited = sim.update_activity(
        target["id"], name='Renamed, with "quotes"', sport_type="TrailRun", private=True
    )
    assert edited["type"] == "Run"
    assert edited["visibility"] == "only_me"
    assert edited["private"]
    detail = get(sim, f"/activities/{target['id']}", headers).json()
    assert detail["name"] == 'Renamed, with "quotes"'
    sim.set_scope("read,activity:read")
    assert target["id"] not in {a["id"] for a in list_all(sim, headers)}
    sim.set_scope("read,activity:read_all")
    sim.delete_activity(target["id"])
    assert get(sim, f"/activities/{target['id']}", headers).status_code == 404
    assert target["id"] not in {a["id"] for a in list_all(sim, headers)}
    with pytest.raises(KeyError):
        sim.delete_activity(target["id"])


def test_activity_ids_are_unique_across_athletes_as_strava_s_are():
    """Two athletes drawing the same id get distinct ids; the rest of their data is kept."""
    import random

    from strava_simulator.activity_factory import IdSequence
    from strava_simulator.data import generate

    # The id the other athlete's sequence draws next is taken already: it moves up by one.
    clone = random.Random(5)
    drawn = 7_000_000_000 + clone.randint(1_000_000, 30_000_000)
    taken = {drawn}
    ids = IdSequence(random.Random(5), 7_000_000_000, taken)
    assert ids.next()[0] == drawn + 1
    assert taken == {drawn, drawn + 1}

    # A whole athlete generated over another's ids: none shared, and an athlete without a
    # clash keeps exactly the data its seed gives alone.
    now = time.time()
    first = generate(11, 60, now)
    first_ids = {a.id for a in first.activities}
    crowded = set(first_ids)
    second = generate(12, 60, now, crowded)
    alone = generate(12, 60, now)
    second_ids = [a.id for a in second.activities]
    assert not first_ids & set(second_ids)
    assert crowded == first_ids | set(second_ids)
    assert [a.summary for a in second.activities] == [a.summary for a in alone.activities]
    # Forced clash: the second athlete's own ids are all taken before it is generated.
    clashing = generate(12, 60, now, {a.id for a in alone.activities})
    assert not {a.id for a in alone.activities} & {a.id for a in clashing.activities}
    assert [a.summary["name"] for a in clashing.activities] == [
        a.summary["name"] for a in alone.activities
    ]
