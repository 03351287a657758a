"""Several tap processes of one app on one shared database (extras: tens of seconds).

What no exit code shows, read from the simulator's own logs: no rotated refresh token is
presented again when workers refresh at once (its token grants), and no quota window
goes above the limit nor gets a 429 when workers share one quota (its request log).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
import typing as t

import psycopg
import pytest

from strava_simulator import StravaSimulator
from strava_simulator.oauth import token_fingerprint
from tap_strava.shared_database import SharedDatabase
from tap_strava.token_store_postgres import PostgresTokenStore
from tests.conftest import tap_config_for

pytestmark = pytest.mark.extras


def _run_workers(config: dict[str, t.Any], tmp_path: t.Any, count: int) -> list[t.Any]:
    """``count`` tap processes at once, each with the same config; their results."""
    results: list[subprocess.CompletedProcess[str]] = []
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))

    def run() -> None:
        results.append(
            subprocess.run(
                [sys.executable, "-m", "tap_strava.tap", "--config", str(path)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                env={**os.environ, "NO_COLOR": "1"},
            )
        )

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_workers_refreshing_at_once_never_present_a_rotated_token(
    tmp_path, shared_database_url, token_keys
):
    # Access tokens shorter than the tap's expiry margin: every worker refreshes again and
    # again, each time under the row lock, with the token the last refresh committed.
    with StravaSimulator(seed=3, activity_count=5, access_token_lifetime=120) as sim:
        config = tap_config_for(sim, tmp_path, shared_database_url=shared_database_url)
        results = _run_workers(config, tmp_path, 3)
        assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-500:] for r in results]
        grants = sim.token_grants
        assert len(grants) >= 3, "every worker refreshed"
        presented = [g.presented for g in grants]
        assert len(presented) == len(set(presented)), "a refresh token was presented twice"
        assert all(g.accepted and g.rotated for g in grants), [g for g in grants if not g.accepted]
        assert [g.presented for g in grants[1:]] == [g.issued for g in grants[:-1]]
        assert grants[-1].issued == token_fingerprint(sim.refresh_token)
        store = PostgresTokenStore(
            SharedDatabase(shared_database_url),
            client_id=sim.client_id,
            configured_refresh_token=config["refresh_token"],
        )
        stored = store.load()
        assert stored is not None
        assert stored.refresh_token == sim.refresh_token, "the database holds the newest"


LIMIT, WINDOW = 10, 3


def test_workers_sharing_one_quota_stay_under_every_window_without_a_429(
    tmp_path, shared_database_url, token_keys
):
    with StravaSimulator(
        seed=6, activity_count=60, read_limit_15min=LIMIT, window_seconds=WINDOW
    ) as sim:
        config = tap_config_for(
            sim,
            tmp_path,
            shared_database_url=shared_database_url,
            rate_limit_window_seconds=WINDOW,
            max_rate_limit_wait_seconds=30,
            window_days=3650,
            start_date=min(a["start_date"] for a in sim.activities),
            activity_details_per_run=12,
        )
        results = _run_workers(config, tmp_path, 4)
        assert [r.returncode for r in results] == [0] * 4, [r.stderr[-800:] for r in results]
        api = [r for r in sim.requests if r["path"].startswith("/api/v3")]
    statuses = collections.Counter(r["status"] for r in api)
    assert 429 not in statuses, statuses
    per_window = collections.Counter(int(r["time"] // WINDOW) for r in api)
    assert len(api) >= 4 * 13, "every worker read its list and its details"
    assert max(per_window.values()) <= LIMIT, sorted(per_window.items())
    assert len(per_window) >= len(api) // LIMIT, "the workers waited for the next windows"


def test_meltano_runs_with_its_system_database_and_the_tap_facts_on_one_server(
    meltano_project, simulator, shared_database_url, token_keys
):
    """MELTANO_DATABASE_URI on PostgreSQL, the tap's shared facts beside it: a worker's view."""
    system_uri = shared_database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    extra = {
        "MELTANO_DATABASE_URI": system_uri,
        "TAP_STRAVA_SHARED_DATABASE_URL": shared_database_url,
        "TAP_STRAVA_TOKEN_KEYS": token_keys,
    }
    proc = meltano_project.meltano("run", "tap-strava", "target-postgres", **extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(meltano_project.rows("activities")) == len(simulator.activities)
    state = meltano_project.meltano("state", "get", "dev:tap-strava-to-target-postgres", **extra)
    assert state.returncode == 0, state.stderr[-2000:]
    assert json.loads(state.stdout)["singer_state"]["bookmarks"]["activities"]
    with psycopg.connect(shared_database_url) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables"
            )
        }
        ((athlete_id,),) = connection.execute(
            "SELECT athlete_id FROM strava_shared.tokens WHERE refresh_token IS NOT NULL"
        ).fetchall()
    assert {"public.runs", "public.state"} <= tables, "Meltano's system database is there"
    assert athlete_id == simulator.athlete_id, "the tap's tokens are there too"
    assert not (meltano_project.workdir / "tokens.json").exists(), "no token file"
