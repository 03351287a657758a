"""SIGKILL the whole pipeline at many points of a multi-page sync, re-run, compare.

Postgres must end with exactly the source's activities (none lost, none duplicated), and
the state Meltano saved must never be ahead of what the target committed.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import threading

import pytest

from tap_strava.simulator import StravaSimulator
from tests.pipeline import MeltanoProject

pytestmark = pytest.mark.e2e

STATE_ID = "dev:tap-strava-to-target-postgres"
LIST_PATH = "/api/v3/athlete/activities"


def _saved_bookmark(project: MeltanoProject) -> str | None:
    proc = project.meltano("state", "get", STATE_ID)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    bookmarks = json.loads(proc.stdout).get("singer_state", {}).get("bookmarks", {})
    for partition in bookmarks.get("activities", {}).get("partitions", []):
        if partition.get("replication_key_value"):
            return str(partition["replication_key_value"])
    return None


def _committed_newest(project: MeltanoProject) -> datetime.datetime | None:
    try:
        rows = project.rows("activities")
    except Exception:
        return None
    return max((r["start_date"] for r in rows), default=None)


@pytest.mark.parametrize("kill_at", [1, 3, 6, 10, 15, 22])
def test_sigkill_at_the_kth_request_then_rerun_loses_and_duplicates_nothing(
    postgres_url, tmp_path, kill_at
):
    victim: dict[str, int] = {}
    seen = {"list_requests": 0}
    killed = threading.Event()

    def on_request(record) -> None:
        if record.path != LIST_PATH or killed.is_set():
            return
        seen["list_requests"] += 1
        if seen["list_requests"] == kill_at and "pgid" in victim:
            killed.set()
            os.killpg(victim["pgid"], signal.SIGKILL)

    with StravaSimulator(seed=kill_at, activity_count=400, request_log=on_request) as sim:
        oldest = min(a["start_date"] for a in sim.activities)
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=tmp_path, refresh_token=sim.refresh_token
        )
        extra = {"TAP_STRAVA_WINDOW_DAYS": "20", "TAP_STRAVA_START_DATE": oldest}
        try:
            proc = project.popen("run", "tap-strava", "target-postgres", **extra)
            victim["pgid"] = proc.pid
            proc.wait(timeout=300)
            assert killed.is_set(), f"the sync made fewer than {kill_at} list requests"

            saved = _saved_bookmark(project)
            committed = _committed_newest(project)
            if saved is not None:
                assert committed is not None, "state saved but nothing committed"
                saved_at = datetime.datetime.fromisoformat(saved.replace("Z", "+00:00"))
                assert saved_at.replace(tzinfo=None) <= committed, "state ran ahead of the target"

            # Meltano refuses the state id of a killed run for five minutes unless forced
            # (the scheduled job decides that itself; here nothing of the old run is alive).
            rerun = project.meltano("run", "--force", "tap-strava", "target-postgres", **extra)
            assert rerun.returncode == 0, rerun.stderr[-3000:]
            rows = project.rows("activities")
            ids = [r["id"] for r in rows]
            assert len(ids) == len(set(ids)), "duplicated rows"
            assert set(ids) == {a["id"] for a in sim.activities}, "lost or extra rows"
        finally:
            project.drop_schema()
