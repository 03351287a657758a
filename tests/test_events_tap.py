"""The tap's events mode: push events in, one read per activity, deletions confirmed.

The queue is served over real HTTP by a small receiver double that speaks the receiver's
tap interface (``GET /events/pending``, ``POST /events/ack``, bearer token); the
end-to-end tests with the real receiver (strava-events) are in test_events_pipeline.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from strava_simulator import StravaSimulator
from tap_strava.token_store import TokenStore
from tests.conftest import tap_config_for
from tests.support import run_tap

TOKEN = "tap-token-for-tests"
EVENT_STREAMS = ("activities", "activity_details", "activity_deletions", "event_receipts")


class Queue:
    """Pending events as the receiver keeps them, served on 127.0.0.1."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, t.Any]] = {}
        self.acked: list[str] = []
        self.ack_sticks = True  # False: the receiver answers but forgets (a lost write)
        self.lock = threading.Lock()

    def push(self, **event: t.Any) -> str:
        event.setdefault("updates", {})
        event.setdefault("event_time", 1_700_000_000)
        key = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()[:32]
        with self.lock:
            self.entries[key] = {
                "key": key,
                "received_at": f"2026-12-01T12:00:{len(self.entries):02d}Z",
                "event": event,
            }
        return key

    def pending(self) -> list[dict[str, t.Any]]:
        with self.lock:
            return sorted(self.entries.values(), key=lambda e: e["received_at"])

    def ack(self, keys: list[str]) -> None:
        with self.lock:
            for key in keys:
                self.acked.append(key)
                if self.ack_sticks:
                    self.entries.pop(key, None)


@pytest.fixture
def queue() -> t.Iterator[tuple[Queue, str]]:
    state = Queue()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: t.Any) -> None:
            pass

        def _answer(self, status: int, body: t.Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._answer(401, {"error": "unauthorized"})
                return False
            return True

        def do_GET(self) -> None:
            if self._authorized() and self.path.startswith("/tap/events/pending"):
                self._answer(200, {"events": state.pending()})

        def do_POST(self) -> None:
            if self._authorized() and self.path == "/tap/events/ack":
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                state.ack(body["keys"])
                self._answer(200, {"acknowledged": len(body["keys"])})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/tap"
    finally:
        server.shutdown()
        server.server_close()


def _events_config(sim: StravaSimulator, tmp_path: t.Any, url: str) -> dict[str, t.Any]:
    return tap_config_for(sim, tmp_path, events_url=url, events_token=TOKEN)


def _activity_reads(sim: StravaSimulator) -> list[str]:
    return [r.path for r in sim.requests if r.path.startswith("/api/v3/")]


def _event(sim: StravaSimulator, activity_id: int, aspect: str, **updates: str) -> dict:
    return {
        "object_type": "activity",
        "object_id": activity_id,
        "aspect_type": aspect,
        "owner_id": sim.athlete_id,
        "subscription_id": 120475,
        "updates": updates,
    }


def test_a_rename_of_a_two_year_old_activity_arrives_at_one_read(tmp_path, queue):
    events, url = queue
    with StravaSimulator(seed=21, activity_count=400) as sim:
        oldest = min(sim.activities, key=lambda a: a["start_date"])
        assert oldest["start_date"] < "2025-06-01"
        config = _events_config(sim, tmp_path, url)
        first = run_tap(config)  # the events job ran before: the athlete id is known
        assert first.records("event_receipts") == []
        sim.update_activity(oldest["id"], name='Renamed "late" — ünïcode\\ride')
        key = events.push(**_event(sim, oldest["id"], "update", title="Renamed"))
        sim.clear_requests()
        result = run_tap(config, state=first.final_state)
        reads = _activity_reads(sim)

    assert reads == [f"/api/v3/activities/{oldest['id']}"], "one read, the named activity"
    (row,) = result.records("activities")
    assert row["id"] == oldest["id"]
    assert row["name"] == 'Renamed "late" — ünïcode\\ride'
    assert row["athlete_id"] == sim.athlete_id
    assert "description" not in row, "activities keeps the list's columns only"
    assert "calories" not in (row.get("_unknown_fields") or {})
    (detail,) = result.records("activity_details")
    assert detail["id"] == oldest["id"]
    assert detail["name"] == row["name"]
    assert "embed_token" not in detail
    (receipt,) = result.records("event_receipts")
    assert (receipt["event_key"], receipt["outcome"]) == (key, "applied")
    receipts_state = result.final_state["bookmarks"]["event_receipts"]
    assert receipts_state["applied_events"] == [key]
    assert events.acked == [], "nothing is acknowledged before the state is committed"


def test_the_next_run_acknowledges_and_a_crash_replays(tmp_path, queue):
    events, url = queue
    with StravaSimulator(seed=22, activity_count=30) as sim:
        target = sim.activities[5]
        sim.update_activity(target["id"], name="Second name")
        key = events.push(**_event(sim, target["id"], "update", title="Second name"))
        config = _events_config(sim, tmp_path, url)
        first = run_tap(config)
        # The target never committed (a crash): the state is lost, the event replays.
        replay = run_tap(config)
        assert events.acked == []
        assert [r["name"] for r in replay.records("activities")] == ["Second name"]
        # This time the state was saved: the next run acknowledges before reading.
        sim.clear_requests()
        after = run_tap(config, state=replay.final_state)
        reads = _activity_reads(sim)
    assert [r["id"] for r in first.records("activities")] == [target["id"]]
    assert events.acked == [key]
    assert after.records("activities") == []
    assert after.records("event_receipts") == []
    assert reads == [], "nothing pending: no read at all"
    assert after.final_state["bookmarks"]["event_receipts"]["applied_events"] == []


def test_a_deletion_is_confirmed_and_emitted_by_id_and_athlete(tmp_path, queue):
    events, url = queue
    with StravaSimulator(seed=23, activity_count=30) as sim:
        gone = sim.activities[3]
        sim.delete_activity(gone["id"])
        events.push(**_event(sim, gone["id"], "delete"))
        result = run_tap(_events_config(sim, tmp_path, url))
    assert result.records("activities") == []
    (deletion,) = result.records("activity_deletions")
    assert (deletion["id"], deletion["athlete_id"]) == (gone["id"], sim.athlete_id)
    assert deletion["source"] == "push_event"
    assert deletion["deleted_at"] == "2023-11-14T22:13:20Z"
    assert [r["outcome"] for r in result.records("event_receipts")] == ["deleted"]


def test_forged_events_change_nothing(tmp_path, queue):
    events, url = queue
    with StravaSimulator(seed=24, activity_count=30) as sim:
        alive = sim.activities[2]
        # A delete of an activity that still exists, one naming an unknown athlete, an
        # update of an activity the owner's token cannot see (another athlete's id).
        events.push(**_event(sim, alive["id"], "delete"))
        stranger = _event(sim, alive["id"], "update", title="x")
        stranger["owner_id"] = 999_999_999
        events.push(**stranger)
        events.push(**_event(sim, 987_654_321_012, "delete"))
        events.push(**{**_event(sim, 1, "update"), "object_id": "1; DROP TABLE"})
        result = run_tap(_events_config(sim, tmp_path, url))
    assert result.records("activities") == []
    assert result.records("activity_deletions") == [
        {
            "id": 987_654_321_012,
            "athlete_id": sim.athlete_id,
            "deleted_at": "2023-11-14T22:13:20Z",
            "confirmed_at": result.records("activity_deletions")[0]["confirmed_at"],
            "source": "push_event",
        }
    ], "an id the owner's token gets 404 for: a deletion by (id, athlete) that matches no row"
    outcomes = sorted((r["outcome"], r["reason"] or "") for r in result.records("event_receipts"))
    assert outcomes == [
        ("deleted", ""),
        ("ignored", "athlete not configured"),
        ("ignored", "the activity still exists for its owner"),
    ]
    # The malformed entry is acknowledged next time too (it can never become valid).
    assert len(result.final_state["bookmarks"]["event_receipts"]["applied_events"]) == 4


def test_a_revocation_removes_the_tokens_and_a_forged_one_does_not(tmp_path, queue):
    events, url = queue
    with StravaSimulator(seed=25, activity_count=30) as sim:
        config = _events_config(sim, tmp_path, url)
        revocation = {
            "object_type": "athlete",
            "object_id": sim.athlete_id,
            "aspect_type": "update",
            "owner_id": sim.athlete_id,
            "subscription_id": 120475,
            "updates": {"authorized": "false"},
        }
        events.push(**revocation)
        forged = run_tap(config)
        store = TokenStore(
            tmp_path / "tokens" / "tokens.json",
            client_id=sim.client_id,
            configured_refresh_token=config["refresh_token"],
        )
        assert store.load() is not None
        assert [r["outcome"] for r in forged.records("event_receipts")] == ["ignored"]

        sim.revoke_tokens()
        events.push(**{**revocation, "event_time": 1_700_000_100})
        events.push(**_event(sim, sim.activities[0]["id"], "update", title="after"))
        revoked = run_tap(config, state=forged.final_state)
    outcomes = sorted(r["outcome"] for r in revoked.records("event_receipts"))
    assert outcomes == ["ignored", "revoked"]
    assert revoked.records("activities") == []
    assert store.load() is None, "the revoking athlete's tokens are gone"


def test_the_row_an_event_writes_is_the_row_a_poll_writes(tmp_path, queue):
    """No churn: an event's activities row equals the polled one, field for field."""
    events, url = queue
    with StravaSimulator(seed=26, activity_count=60) as sim:
        target = sim.activities[7]
        sim.update_activity(target["id"], name="Same row either way")
        events.push(**_event(sim, target["id"], "update", title="Same row either way"))
        pushed = run_tap(_events_config(sim, tmp_path, url))
        polled = run_tap(tap_config_for(sim, tmp_path / "polled"), streams=["activities"])
    (from_event,) = pushed.records("activities")
    (from_poll,) = [r for r in polled.records("activities") if r["id"] == target["id"]]
    assert from_event == from_poll


def test_an_acknowledgement_that_did_not_stick_is_neither_redone_nor_forgotten(tmp_path, queue):
    events, url = queue
    with StravaSimulator(seed=27, activity_count=30) as sim:
        target = sim.activities[4]
        key = events.push(**_event(sim, target["id"], "update", title="x"))
        config = _events_config(sim, tmp_path, url)
        first = run_tap(config)
        events.ack_sticks = False
        sim.clear_requests()
        second = run_tap(config, state=first.final_state)
        reads = _activity_reads(sim)
        events.ack_sticks = True
        third = run_tap(config, state=second.final_state)
    assert reads == [], "the event the last run handled is not fetched again"
    assert second.records("activities") == []
    assert second.final_state["bookmarks"]["event_receipts"]["applied_events"] == [key]
    assert events.pending() == [], "the run after acknowledges it for good"
    assert third.records("event_receipts") == []


def test_an_event_for_an_activity_named_with_nul_and_half_an_emoji_lands_storable(tmp_path, queue):
    # Issue 24: the rule for strings holds in the events mode too (every stream it emits).
    events, url = queue
    with StravaSimulator(seed=23, activity_count=30) as sim:
        target = sim.activities[3]
        sim.update_activity(target["id"], name="Evening\x00run \ud83d")
        events.push(**_event(sim, target["id"], "update", title="Evening\x00run \ud83d"))
        result = run_tap(_events_config(sim, tmp_path, url))
    for message in result.messages:
        for text in _strings(message):  # keys and values: UTF-8 without NUL
            assert "\x00" not in text
            text.encode("utf-8")  # raises on a lone surrogate
    (row,) = result.records("activities")
    (detail,) = result.records("activity_details")
    assert row["name"] == detail["name"] == "Evening\ufffdrun \ufffd"
    assert [r["outcome"] for r in result.records("event_receipts")] == ["applied"]


def _strings(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
