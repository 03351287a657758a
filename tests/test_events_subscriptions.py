"""The push subscription commands, against the Strava simulator and a real HTTP server.

The simulator runs Strava's validation GET against the real receiver, so creating a
subscription there proves the handshake end to end, and its events (caused by editing an
activity, duplicated, forged) show what reaches the tap. A small http.server answers the
error bodies Strava is documented to send that the simulator cannot be made to give.
"""

from __future__ import annotations

import http.server
import json
import threading
import typing as t
import urllib.parse

import httpx
import pytest

from strava_events import cli, subscriptions
from strava_events.settings import StravaApp, load_strava_app
from tests.test_events_support import (
    CALLBACK_PATH,
    TAP_TOKEN,
    VERIFY_TOKEN,
    Served,
    event,
    settings_for,
    wait_for,
)

AUTH = {"Authorization": f"Bearer {TAP_TOKEN}"}
SECRET = "client-secret-never-printed-0123"


def app_for(api_base: str, callback_url: str | None, verify_token: str = VERIFY_TOKEN) -> StravaApp:
    return load_strava_app(
        {
            "STRAVA_EVENTS_CLIENT_ID": "4321",
            "STRAVA_EVENTS_CLIENT_SECRET": SECRET,
            "STRAVA_EVENTS_API_BASE": api_base,
            "STRAVA_EVENTS_CALLBACK_URL": callback_url or "",
            "STRAVA_EVENTS_VERIFY_TOKEN": verify_token,
        }
    )


# -- against the simulator ------------------------------------------------------------------


@pytest.fixture
def receiver_for_simulator(simulator, tmp_path):
    # The simulator numbers subscriptions from Strava's documented example id.
    settings = settings_for(
        tmp_path, athlete_ids=str(simulator.athlete_id), subscription_id="120475"
    )
    with Served(settings) as served:
        yield served


def sim_app(simulator, callback_url, verify_token=VERIFY_TOKEN) -> StravaApp:
    return load_strava_app(
        {
            "TAP_STRAVA_CLIENT_ID": simulator.client_id,
            "TAP_STRAVA_CLIENT_SECRET": simulator.client_secret,
            "STRAVA_EVENTS_API_BASE": simulator.api_url,
            "STRAVA_EVENTS_CALLBACK_URL": callback_url,
            "STRAVA_EVENTS_VERIFY_TOKEN": verify_token,
        }
    )


def pending_ids(served: Served) -> list[tuple[str, int]]:
    answer = httpx.get(f"{served.tap_url}/tap/events/pending", headers=AUTH).json()
    return [(item["event"]["aspect_type"], item["event"]["object_id"]) for item in answer["events"]]


def test_create_show_delete_against_the_simulator(simulator, receiver_for_simulator):
    served = receiver_for_simulator
    wrong = sim_app(simulator, served.callback, verify_token="another-token-0123456789")
    with pytest.raises(subscriptions.SubscriptionError, match="did not get a 200") as caught:
        subscriptions.create(wrong)
    assert "verify token" in str(caught.value)
    assert CALLBACK_PATH not in str(caught.value)

    app = sim_app(simulator, served.callback)
    assert subscriptions.create(app) == 120475
    [shown] = subscriptions.show(app)
    assert shown.id == 120475
    assert shown.callback_url == served.callback
    with pytest.raises(subscriptions.SubscriptionError, match="already has a push subscription"):
        subscriptions.create(app)

    # An edit on "Strava" reaches the tap's queue; a duplicate and a forgery do not add.
    activity = simulator.activities[0]
    simulator.update_activity(activity["id"], name="Renamed by the test")
    wait_for(lambda: pending_ids(served), what="the simulator's event")
    simulator.push.wait_idle()
    simulator.push.duplicate_event()
    simulator.push.forge_event({"subscription_id": 1, "object_id": 5})
    simulator.push.forge_event({"owner_id": simulator.athlete_id + 1, "object_id": 6})
    assert simulator.push.wait_idle()
    assert all(attempt.status == 200 for attempt in simulator.push.deliveries)
    assert pending_ids(served) == [("update", activity["id"])]

    subscriptions.delete(app, 120475)
    assert subscriptions.show(app) == []
    with pytest.raises(subscriptions.SubscriptionError, match="no such subscription"):
        subscriptions.delete(app, 120475)


def test_create_records_the_id_for_the_running_receiver(simulator, tmp_path, monkeypatch, capsys):
    settings = settings_for(tmp_path, athlete_ids=str(simulator.athlete_id), subscription_id="")
    with Served(settings) as served:
        early = httpx.post(served.callback, json=event(owner_id=simulator.athlete_id))
        assert early.status_code == 503  # no subscription yet: Strava would retry
        for name, value in {
            "TAP_STRAVA_CLIENT_ID": simulator.client_id,
            "TAP_STRAVA_CLIENT_SECRET": simulator.client_secret,
            "STRAVA_EVENTS_API_BASE": simulator.api_url,
            "STRAVA_EVENTS_CALLBACK_URL": served.callback,
            "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
            "STRAVA_EVENTS_STATE_DIR": str(tmp_path / "state"),
        }.items():
            monkeypatch.setenv(name, value)
        assert cli.main(["subscription", "create"]) == 0
        assert capsys.readouterr().out.startswith("created push subscription 120475\n")
        assert (tmp_path / "state" / "subscription.json").stat().st_mode & 0o077 == 0

        # No restart: the next event of the new subscription is queued.
        activity = simulator.activities[0]
        simulator.update_activity(activity["id"], name="First event")
        wait_for(lambda: pending_ids(served) == [("update", activity["id"])], what="the event")

        assert cli.main(["subscription", "delete"]) == 0
        assert not (tmp_path / "state" / "subscription.json").exists()


def test_a_callback_nobody_answers_is_not_verifiable(simulator):
    app = sim_app(simulator, "http://127.0.0.1:9/" + CALLBACK_PATH)
    with pytest.raises(subscriptions.SubscriptionError, match="could not verify") as caught:
        subscriptions.create(app)
    assert CALLBACK_PATH not in str(caught.value)


def test_wrong_credentials_are_one_line(simulator, receiver_for_simulator, monkeypatch, capsys):
    monkeypatch.setenv("STRAVA_EVENTS_CLIENT_ID", simulator.client_id)
    monkeypatch.setenv("STRAVA_EVENTS_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("STRAVA_EVENTS_API_BASE", simulator.api_url)
    assert cli.main(["subscription", "show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("strava-events: Strava refused the application's credentials (401)")
    assert SECRET not in err


# -- Strava's documented error bodies from a real HTTP server --------------------------------


class _Canned(http.server.BaseHTTPRequestHandler):
    answers: t.ClassVar[list[tuple[int, bytes]]] = []
    seen: t.ClassVar[list[tuple[str, str, dict[str, list[str]]]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        split = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(body or split.query)
        type(self).seen.append((self.command, split.path, params))
        status, payload = type(self).answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *_args: t.Any) -> None:
        pass


@pytest.fixture
def canned():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Canned.answers, _Canned.seen = [], []
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v3"
    server.shutdown()
    server.server_close()


def strava_400(field: str, code: str) -> tuple[int, bytes]:
    body = {
        "message": "Bad Request",
        "errors": [{"resource": "PushSubscription", "field": field, "code": code}],
    }
    return 400, json.dumps(body).encode()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            strava_400("callback url", "not verifiable"),
            "could not verify https://events.example.org/<secret path",
        ),
        (
            strava_400("callback url", "GET to callback URL does not return 200"),
            "did not get a 200",
        ),
        (strava_400("", "already exists"), "already has a push subscription"),
        ((403, b'{"message":"Forbidden"}'), "forbids push subscriptions"),
        ((429, b"{}"), "rate limit"),
        ((502, b"<html>bad gateway</html>"), "HTTP 502): try again later"),
        (strava_400("callback url", "invalid"), "HTTP 400 (invalid)"),
        ((201, b"<html>"), "not JSON"),
    ],
)
def test_each_strava_error_is_one_clear_line(canned, answer, expected):
    _Canned.answers.append(answer)
    app = app_for(canned, f"https://events.example.org/{CALLBACK_PATH}")
    with pytest.raises(subscriptions.SubscriptionError) as caught:
        subscriptions.create(app)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    for secret in (SECRET, VERIFY_TOKEN, CALLBACK_PATH):
        assert secret not in message
    # What Strava was sent: form data with the four fields.
    method, path, params = _Canned.seen[0]
    assert (method, path) == ("POST", "/api/v3/push_subscriptions")
    assert params == {
        "client_id": ["4321"],
        "client_secret": [SECRET],
        "callback_url": [f"https://events.example.org/{CALLBACK_PATH}"],
        "verify_token": [VERIFY_TOKEN],
    }


def test_create_needs_a_callback_url(canned):
    with pytest.raises(
        subscriptions.SubscriptionError, match="STRAVA_EVENTS_CALLBACK_URL is not set"
    ):
        subscriptions.create(app_for(canned, None))
    assert _Canned.seen == []


def test_cli_show_masks_the_secret_path(canned, monkeypatch, capsys):
    callback = f"https://events.example.org/{CALLBACK_PATH}"
    listing = [
        {
            "id": 7,
            "resource_state": 2,
            "application_id": 4321,
            "callback_url": callback,
            "created_at": "2026-12-01T10:00:00Z",
            "updated_at": "2026-12-01T10:00:00Z",
        }
    ]
    _Canned.answers += [
        (200, json.dumps(listing).encode()),
        (200, json.dumps(listing).encode()),
        (204, b""),
    ]
    for name, value in {
        "STRAVA_EVENTS_CLIENT_ID": "4321",
        "STRAVA_EVENTS_CLIENT_SECRET": SECRET,
        "STRAVA_EVENTS_API_BASE": canned,
        "STRAVA_EVENTS_CALLBACK_URL": callback,
    }.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["subscription", "show"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("subscription 7: https://events.example.org/<secret path ")
    assert "(this receiver)" in out
    assert CALLBACK_PATH not in out
    assert cli.main(["subscription", "delete"]) == 0
    assert capsys.readouterr().out == "deleted push subscription 7\n"
    method, path, params = _Canned.seen[-1]
    assert (method, path) == ("DELETE", "/api/v3/push_subscriptions/7")
    assert params["client_id"] == ["4321"]
