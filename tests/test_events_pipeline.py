"""Push events end to end: the simulator pushes, the real receiver stores, Meltano loads.

The simulator holds the app's push subscription and POSTs the events its changes cause to
the receiver (``strava-events serve``, a real process) on 127.0.0.1; the receiver
queues them in PostgreSQL; ``meltano run strava-events`` (the events tap, then the
deletions step) loads them into the same PostgreSQL, next to a polled history.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import typing as t
import urllib.request
import uuid
from pathlib import Path

import pytest

from strava_simulator import StravaSimulator
from tests.pipeline import MeltanoProject
from tests.test_events_support import Forwarder, wait_for

pytestmark = pytest.mark.e2e

BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
VERIFY_TOKEN = "verify-token-e2e-0123456789"
CALLBACK_PATH = "cb-e2e-0123456789abcdefSECRET"
TAP_TOKEN = "tap-token-e2e-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """``strava-events serve`` as a process, restartable on the same port."""

    def __init__(self, sim: StravaSimulator, dsn: str, workdir: Path) -> None:
        self.port = _free_port()
        self.tap_port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tap_url = f"http://127.0.0.1:{self.tap_port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STRAVA_EVENTS_")},
            "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
            "STRAVA_EVENTS_CALLBACK_PATH": CALLBACK_PATH,
            "STRAVA_EVENTS_TAP_TOKEN": TAP_TOKEN,
            "STRAVA_EVENTS_ATHLETE_IDS": str(sim.athlete_id),
            "STRAVA_EVENTS_POSTGRES_DSN": dsn,
            "STRAVA_EVENTS_POSTGRES_SCHEMA": "strava_events_" + uuid.uuid4().hex[:10],
            "STRAVA_EVENTS_SPOOL_DIR": str(workdir / "receiver-spool"),
            "STRAVA_EVENTS_STATE_DIR": str(workdir / "receiver-state"),
            "STRAVA_EVENTS_CLIENT_ID": sim.client_id,
            "STRAVA_EVENTS_CLIENT_SECRET": sim.client_secret,
            "STRAVA_EVENTS_API_BASE": sim.api_url,
            "STRAVA_EVENTS_CALLBACK_URL": f"http://127.0.0.1:{self.port}/{CALLBACK_PATH}",
        }
        self.log = (workdir / "receiver.log").open("a")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **extra: str) -> None:
        self.env.update(extra)
        self.proc = subprocess.Popen(
            [
                str(BIN / "strava-events"),
                "serve",
                "--port",
                str(self.port),
                "--tap-port",
                str(self.tap_port),
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._healthy, 30, "the receiver to listen")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "strava-events"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def pending(self) -> list[dict[str, t.Any]]:
        request = urllib.request.Request(
            f"{self.tap_url}/tap/events/pending?limit=1000",
            headers={"Authorization": f"Bearer {TAP_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return list(json.loads(answer.read())["events"])


@pytest.fixture
def pushed(postgres_url, tmp_path):
    """A simulator with a polled history in PostgreSQL and a subscribed receiver."""
    with StravaSimulator(seed=41, activity_count=600) as sim:
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=tmp_path, refresh_token=sim.refresh_token
        )
        forwarder = Forwarder(postgres_url)
        forwarder.up()
        receiver = Receiver(sim, forwarder.dsn, tmp_path)
        try:
            project.run("tap-strava", "target-postgres")
            receiver.start()  # no subscription id yet: the handshake works, events wait
            created = receiver.command("subscription", "create")
            assert created.returncode == 0, created.stderr
            subscription = int(created.stdout.split()[3])
            receiver.stop()
            receiver.start(STRAVA_EVENTS_SUBSCRIPTION_ID=str(subscription))
            yield sim, project, receiver, forwarder
        finally:
            receiver.stop()
            forwarder.down()
            project.drop_schema()


def _events_run(project: MeltanoProject, receiver: Receiver) -> subprocess.CompletedProcess[str]:
    return project.meltano(
        "run",
        "strava-events",
        STRAVA_EVENTS_TAP_URL=f"{receiver.tap_url}/tap",
        STRAVA_EVENTS_TAP_TOKEN=TAP_TOKEN,
    )


def _by_id(rows: list[dict[str, t.Any]]) -> dict[int, dict[str, t.Any]]:
    return {int(row["id"]): row for row in rows}


def test_renames_and_deletions_of_any_age_arrive_at_one_read_each(pushed):
    sim, project, receiver, forwarder = pushed
    before = _by_id(project.rows("activities"))
    by_age = sorted(sim.activities, key=lambda a: a["start_date"])
    renamed, gone, alive = by_age[0], by_age[1], by_age[2]
    assert renamed["start_date"] < "2024-12-01", "a two-year-old activity"

    sim.update_activity(renamed["id"], name='Two years on: "renamed", ünïcode\\')
    # The receiver's database goes away: the deletion's event is spooled, answered 200.
    # Strava delivers that event twice: it is stored once.
    forwarder.down()
    sim.delete_activity(gone["id"])
    sim.push.duplicate_event()
    assert sim.push.wait_idle(30)
    forwarder.up()
    # Forged: a delete of an activity that still exists, another subscription's event.
    sim.push.forge_event({"object_id": alive["id"], "aspect_type": "delete"})
    sim.push.forge_event({"object_id": alive["id"], "subscription_id": 1, "updates": {}})
    assert sim.push.wait_idle(30)
    pending = wait_for(lambda: len(receiver.pending()) == 3 and receiver.pending(), 30, "3")
    assert sorted(e["event"]["aspect_type"] for e in pending) == ["delete", "delete", "update"]

    sim.clear_requests()
    run = _events_run(project, receiver)
    assert run.returncode == 0, run.stderr[-4000:]
    reads = sorted(r.path for r in sim.requests if r.path.startswith("/api/v3/"))
    assert reads == sorted(f"/api/v3/activities/{a['id']}" for a in (renamed, gone, alive))

    after = _by_id(project.rows("activities"))
    assert len(after) == len(before), "no duplicate, nothing lost"
    row = after[renamed["id"]]
    assert row["name"] == 'Two years on: "renamed", ünïcode\\'
    untouched = ("distance", "moving_time", "start_date", "sport_type", "map", "athlete_id")
    assert {k: row[k] for k in untouched} == {k: before[renamed["id"]][k] for k in untouched}
    assert after[gone["id"]]["_sdc_deleted_at"] is not None, "the deletion is applied"
    assert after[alive["id"]]["_sdc_deleted_at"] is None, "a forged delete changes nothing"
    assert [r["name"] for r in project.rows("activity_details") if r["id"] == renamed["id"]] == [
        row["name"]
    ]
    receipts = project.rows("event_receipts")
    assert sorted(r["outcome"] for r in receipts) == ["applied", "deleted", "ignored"]

    # The next run starts from the committed state: it acknowledges, then finds nothing.
    sim.clear_requests()
    again = _events_run(project, receiver)
    assert again.returncode == 0, again.stderr[-4000:]
    assert [r.path for r in sim.requests if r.path.startswith("/api/v3/")] == []
    assert receiver.pending() == []
    assert len(project.rows("event_receipts")) == 3


# Among the slowest end-to-end tests (over a minute each): in the extras, which CI also runs,
# to keep `make test` well under its 15 minutes.
@pytest.mark.extras
def test_a_crashed_events_run_replays_and_a_revocation_is_applied(pushed):
    sim, project, receiver, _forwarder = pushed
    target = sorted(sim.activities, key=lambda a: a["start_date"])[10]
    sim.update_activity(target["id"], name="Renamed before the crash")
    assert sim.push.wait_idle(30)
    wait_for(lambda: len(receiver.pending()) == 1, 30, "the rename's event")
    # Strava fails that activity's GET through every retry: the run fails, nothing is
    # acknowledged, the event stays queued.
    sim.inject_fault(rf"^/api/v3/activities/{target['id']}$", "status", count=-1, status=503)
    crashed = _events_run(project, receiver)
    assert crashed.returncode != 0
    assert len(receiver.pending()) == 1
    sim.clear_faults()
    recovered = _events_run(project, receiver)
    assert recovered.returncode == 0, recovered.stderr[-4000:]
    rows = [r for r in project.rows("activities") if r["id"] == target["id"]]
    assert [r["name"] for r in rows] == ["Renamed before the crash"], "applied once"

    # The athlete revokes the app: the events run confirms it and removes the tokens;
    # strava-forget-athlete removes the athlete's rows.
    sim.revoke_tokens()
    assert sim.push.wait_idle(30)
    wait_for(lambda: any(e["event"]["object_type"] == "athlete" for e in receiver.pending()), 30)
    revoked = _events_run(project, receiver)
    assert revoked.returncode == 0, revoked.stderr[-4000:]
    assert "revoked this app's access" in revoked.stderr
    tokens = json.loads((project.workdir / "tokens.json").read_text())
    assert not any(
        entry.get("athlete_id") == sim.athlete_id for entry in tokens.get("tokens", {}).values()
    )
    forget = subprocess.run(
        [
            str(BIN / "strava-forget-athlete"),
            "--athlete",
            str(sim.athlete_id),
            "--apply",
        ],
        env=project.env(
            STRAVA_EVENTS_POSTGRES_SCHEMA=receiver.env["STRAVA_EVENTS_POSTGRES_SCHEMA"]
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert forget.returncode == 0, forget.stderr
    assert project.rows("activities") == []
    assert f"{project.schema}.activities" in forget.stdout
    # The receipts (owner_id, with titles in `updates`) and the receiver's queue too.
    assert project.rows("event_receipts") == []
    assert receiver.pending() == []
