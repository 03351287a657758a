"""``athlete_ids``: one run per athlete out of a club's configured tokens (docs/scaling.md)."""

from __future__ import annotations

import json
import re
import typing as t

import pytest

from strava_simulator import StravaSimulator
from strava_simulator.athlete import SimulatedAthlete
from tap_strava.errors import StravaConfigError
from tests.support import run_tap, run_tap_cli
from tests.test_athletes import CORE_STREAMS, athletes_config, ids_by_athlete, partitions


@pytest.fixture
def club() -> t.Iterator[tuple[StravaSimulator, list[SimulatedAthlete]]]:
    """One app, three athletes (40, 25 and 10 activities)."""
    with StravaSimulator(seed=11, activity_count=40, read_limit_15min=600) as sim:
        sim.add_athlete(seed=12, activity_count=25)
        sim.add_athlete(seed=13, activity_count=10)
        yield sim, list(sim.athletes)


def club_config(sim: StravaSimulator, tmp_path: t.Any, **overrides: t.Any) -> dict:
    config = athletes_config(sim, tmp_path, **overrides)
    config["athletes"].append({"name": "cid", "refresh_token": sim.athletes[2].refresh_token})
    return config


def test_a_run_restricted_to_one_athlete_syncs_that_athlete_only(club, tmp_path):
    sim, (ann, bob, cid) = club
    config = club_config(sim, tmp_path, athlete_ids=[bob.athlete_id])

    result = run_tap(config, streams=CORE_STREAMS)

    assert ids_by_athlete(result.records("activities")) == {
        bob.athlete_id: {a["id"] for a in bob.activities}
    }
    assert {r["athlete_id"] for r in result.records("athlete")} == {bob.athlete_id}
    assert set(partitions(result.final_state)) == {bob.athlete_id}

    # The next athlete's run, as an orchestrator starts it: given as text (Meltano, env).
    config["athlete_ids"] = f"{cid.athlete_id}, {ann.athlete_id}"
    again = run_tap(config, streams=CORE_STREAMS)
    assert ids_by_athlete(again.records("activities")) == {
        cid.athlete_id: {a["id"] for a in cid.activities},
        ann.athlete_id: {a["id"] for a in ann.activities},
    }


def test_an_id_without_a_token_is_one_line_and_exit_1(club, tmp_path):
    sim, (_ann, bob, _cid) = club
    config = club_config(sim, tmp_path, athlete_ids=[bob.athlete_id, 999])

    proc = run_tap_cli(config, tmp_path)

    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "tap-strava: error: athlete_ids: no configured token belongs to athlete 999; "
        "authorize that athlete (`tap-strava-auth --athlete NAME` adds an entry to athletes) "
        "or remove the id from athlete_ids"
    )
    assert "Traceback" not in proc.stderr
    assert '"type": "RECORD"' not in proc.stdout


def test_a_revoked_athlete_fails_its_own_run_in_one_line(club, tmp_path):
    """Alone in its run, a revoked athlete is the run's failure (not a skipped partition)."""
    sim, (ann, bob, _cid) = club
    config = club_config(sim, tmp_path)
    run_tap(config, streams=CORE_STREAMS)  # every chain's athlete is known from now on
    config["athlete_ids"] = [bob.athlete_id]
    bob.revoke_tokens()

    failed = run_tap_cli(config, tmp_path)
    assert failed.returncode == 1
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: Strava rejected the refresh token")
    assert "tap-strava-auth --athlete bob" in last
    assert "Traceback" not in failed.stderr

    config["athlete_ids"] = [ann.athlete_id]
    fine = run_tap(config, streams=CORE_STREAMS)
    assert set(ids_by_athlete(fine.records("activities"))) == {ann.athlete_id}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("seven", "athlete_ids (TAP_STRAVA_ATHLETE_IDS) must be a JSON list of athlete ids"),
        ('["x"]', "'x' is not of type 'integer'"),
    ],
)
def test_malformed_athlete_ids_are_one_line(club, tmp_path, value, expected):
    sim, _athletes = club
    with pytest.raises(StravaConfigError, match=re.escape(expected)):
        run_tap(club_config(sim, tmp_path, athlete_ids=json.loads(json.dumps(value))))


def test_athlete_ids_and_reconcile_exclude_each_other(club, tmp_path):
    sim, (ann, _bob, _cid) = club
    config = club_config(sim, tmp_path, athlete_ids=[ann.athlete_id], reconcile=True)
    with pytest.raises(StravaConfigError, match="athlete_ids and reconcile exclude each other"):
        run_tap(config)


def test_a_new_token_whose_athlete_cannot_be_read_is_named(club, tmp_path):
    """A token not in the store yet costs a profile read; if that fails, the line says so."""
    sim, (_ann, bob, _cid) = club
    config = club_config(sim, tmp_path, athlete_ids=[bob.athlete_id])
    bob.revoke_tokens()

    proc = run_tap_cli(config, tmp_path)

    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"tap-strava: error: athlete_ids: no configured token belongs to athlete {bob.athlete_id}"
    )
    assert "bob: Strava rejected the refresh token" in last
    assert "Traceback" not in proc.stderr
