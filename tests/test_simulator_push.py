"""The simulator pushes events like Strava: subscription, handshake, events, retries, forgeries.

Every test points the simulator at a real HTTP callback on 127.0.0.1 (``Callback`` below, an
``http.server`` in a thread) that records what it receives and answers as the test tells
it. Waits poll with generous deadlines (``sim.push.wait_idle``); nothing sleeps a fixed time.
Facts: ``shared/docs/strava-export-and-events.md`` part 2.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from strava_simulator import StravaSimulator

NOW = 1_780_000_000.0
TIMEOUT = 10
IDLE = 30.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Callback:
    """A webhook receiver: records GETs and POSTs; answers as configured.

    ``challenge``: ``echo`` (right), ``wrong``, ``500`` or ``slow`` (after ``slow_seconds``).
    ``post_statuses``: the statuses of the next POSTs in order (then ``post_default``).
    ``gate``: POSTs wait until it is set (to prove delivery does not block the caller).
    """

    def __init__(self) -> None:
        self.challenge = "echo"
        self.slow_seconds = 3.0
        self.post_statuses: list[int] = []
        self.post_default = 200
        self.post_delay = 0.0
        self.gate = threading.Event()
        self.gate.set()
        self.gets: list[dict[str, str]] = []
        self.posts: list[dict[str, Any]] = []
        self.post_answers: list[int] = []
        self.lock = threading.Lock()
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                with callback.lock:
                    callback.gets.append(query)
                mode = callback.challenge
                if mode == "500":
                    self._answer(500, b'{"error":"boom"}')
                    return
                if mode == "slow":
                    threading.Event().wait(callback.slow_seconds)
                value = query.get("hub.challenge", "")
                if mode == "wrong":
                    value = "not-the-challenge"
                self._answer(200, json.dumps({"hub.challenge": value}).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                event = json.loads(self.rfile.read(length))
                callback.gate.wait(TIMEOUT)
                if callback.post_delay:
                    threading.Event().wait(callback.post_delay)
                with callback.lock:
                    callback.posts.append(event)
                    status = (
                        callback.post_statuses.pop(0)
                        if callback.post_statuses
                        else callback.post_default
                    )
                    callback.post_answers.append(status)
                self._answer(status)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/strava/webhook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Callback:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback() -> Iterator[Callback]:
    with Callback() as receiver:
        yield receiver


@pytest.fixture
def sim() -> Iterator[StravaSimulator]:
    with StravaSimulator(
        seed=3, activity_count=40, now=NOW, clock=FakeClock(NOW), push_retry_delay=0.05
    ) as simulator:
        yield simulator


def creds(sim: StravaSimulator) -> dict[str, str]:
    return {"client_id": sim.client_id, "client_secret": sim.client_secret}


def subscribe(
    sim: StravaSimulator, url: str, token: str = "my-verify-token", base: str | None = None
) -> requests.Response:
    """Create the subscription with form data, as Strava's docs and stravalib do."""
    data = {**creds(sim), "callback_url": url, "verify_token": token}
    return requests.post((base or sim.api_url) + "/push_subscriptions", data=data, timeout=TIMEOUT)


def subscribed(sim: StravaSimulator, callback: Callback) -> int:
    answer = subscribe(sim, callback.url)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def delivered(sim: StravaSimulator, callback: Callback) -> list[dict[str, Any]]:
    assert sim.push.wait_idle(IDLE), "the delivery queue did not drain"
    with callback.lock:
        return list(callback.posts)


def public_activity(sim: StravaSimulator) -> dict[str, Any]:
    return next(a for a in sim.activities if not a["private"])


# -- the subscription ----------------------------------------------------------------------
def test_create_runs_the_validation_handshake_with_the_verify_token(sim, callback):
    answer = subscribe(sim, callback.url, token="s3cret-token")
    assert answer.status_code == 201
    assert set(answer.json()) == {"id"}
    assert len(callback.gets) == 1
    query = callback.gets[0]
    assert query["hub.mode"] == "subscribe"
    assert query["hub.verify_token"] == "s3cret-token"
    assert len(query["hub.challenge"]) >= 16
    assert sim.push.validations[-1].ok
    listed = requests.get(sim.api_url + "/push_subscriptions", params=creds(sim), timeout=TIMEOUT)
    assert listed.status_code == 200
    [subscription] = listed.json()
    assert subscription["id"] == answer.json()["id"]
    assert subscription["callback_url"] == callback.url
    assert subscription["application_id"] == int(sim.client_id)
    assert {"resource_state", "created_at", "updated_at"} <= set(subscription)
    assert "verify_token" not in subscription


def test_create_accepts_multipart_form_data_as_curl_sends_it(sim, callback):
    """Strava's docs create the subscription with ``curl -F`` (multipart/form-data)."""
    fields = {**creds(sim), "callback_url": callback.url, "verify_token": "curl-token"}
    answer = requests.post(
        sim.api_url + "/push_subscriptions",
        files={name: (None, value) for name, value in fields.items()},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 201, answer.text
    assert callback.gets[0]["hub.verify_token"] == "curl-token"


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("wrong", "not verifiable"),
        ("slow", "not verifiable"),
        ("500", "GET to callback URL does not return 200"),
    ],
)
def test_create_fails_when_the_callback_does_not_verify(sim, callback, mode, code):
    callback.challenge = mode
    answer = subscribe(sim, callback.url)
    assert answer.status_code == 400
    assert answer.json() == {
        "message": "Bad Request",
        "errors": [{"resource": "PushSubscription", "field": "callback url", "code": code}],
    }
    assert len(callback.gets) == 1
    assert sim.push.subscription is None
    listed = requests.get(sim.api_url + "/push_subscriptions", params=creds(sim), timeout=TIMEOUT)
    assert listed.json() == []
    validation = sim.push.validations[-1]
    assert not validation.ok
    assert validation.reason


def test_create_fails_when_nothing_listens(sim):
    with Callback() as gone:
        url = gone.url
    answer = subscribe(sim, url)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "not verifiable"


def test_create_refuses_a_callback_off_this_machine_without_calling_it(sim):
    answer = subscribe(sim, "http://callback.invalid/strava/webhook")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "not verifiable"
    validation = sim.push.validations[-1]
    assert validation.status is None
    assert "loopback_only" in validation.reason


def test_a_second_subscription_already_exists(sim, callback):
    subscribed(sim, callback)
    again = subscribe(sim, callback.url)
    assert again.status_code == 400
    assert again.json()["errors"] == [
        {"resource": "PushSubscription", "field": "", "code": "already exists"}
    ]
    assert len(callback.gets) == 1  # no second handshake


def test_a_bad_callback_url_is_refused(sim, callback):
    too_long = callback.url + "?" + "x" * 256
    for url in (too_long, "", "ftp://127.0.0.1/hook"):
        answer = subscribe(sim, url)
        assert answer.status_code == 400, url
        assert answer.json()["errors"][0]["field"] == "callback url"
    assert callback.gets == []


def test_delete_and_list(sim, callback):
    sub_id = subscribed(sim, callback)
    url = f"{sim.api_url}/push_subscriptions/{sub_id}"
    wrong = requests.delete(url + "0", params=creds(sim), timeout=TIMEOUT)
    assert wrong.status_code == 404
    gone = requests.delete(url, params=creds(sim), timeout=TIMEOUT)
    assert gone.status_code == 204
    assert gone.content == b""
    listed = requests.get(sim.api_url + "/push_subscriptions", params=creds(sim), timeout=TIMEOUT)
    assert listed.json() == []
    assert requests.delete(url, params=creds(sim), timeout=TIMEOUT).status_code == 404
    # A new subscription gets a new id; no event goes to a deleted subscription.
    assert subscribed(sim, callback) != sub_id


def test_the_app_credentials_are_checked(sim, callback):
    bad_secret = {**creds(sim), "client_secret": "nope"}
    listed = requests.get(sim.api_url + "/push_subscriptions", params=bad_secret, timeout=TIMEOUT)
    assert listed.status_code == 401
    assert listed.json()["message"] == "Authorization Error"
    bad_id = {**creds(sim), "client_id": "999"}
    listed = requests.get(sim.api_url + "/push_subscriptions", params=bad_id, timeout=TIMEOUT)
    assert listed.status_code == 400
    assert listed.json()["errors"][0]["field"] == "client_id"
    data = {**bad_secret, "callback_url": callback.url, "verify_token": "t"}
    created = requests.post(sim.api_url + "/push_subscriptions", data=data, timeout=TIMEOUT)
    assert created.status_code == 401
    assert callback.gets == []  # credentials come before the handshake


def test_subscription_calls_use_no_quota_and_work_on_the_2027_base(sim, callback):
    answer = subscribe(sim, callback.url, base=sim.api_url_2027)
    assert answer.status_code == 201
    assert "X-RateLimit-Usage" not in answer.headers
    listed = requests.get(
        sim.api_url_2027 + "/push_subscriptions", params=creds(sim), timeout=TIMEOUT
    )
    assert [s["id"] for s in listed.json()] == [answer.json()["id"]]
    assert "X-ReadRateLimit-Usage" not in listed.headers
    assert sim.rate_usage == (0, 0, 0, 0)
    assert [r.path for r in sim.requests][-1] == "/2027/push_subscriptions"
    assert all(r.query.get("client_secret") == "[REDACTED]" for r in sim.requests if r.query)


# -- events caused by changes --------------------------------------------------------------
def test_a_rename_delivers_a_title_update_and_the_api_shows_it(sim, callback):
    sub_id = subscribed(sim, callback)
    target = public_activity(sim)
    sim.update_activity(target["id"], name="Messy")
    assert delivered(sim, callback) == [
        {
            "aspect_type": "update",
            "event_time": int(NOW),
            "object_id": target["id"],
            "object_type": "activity",
            "owner_id": sim.athlete_id,
            "subscription_id": sub_id,
            "updates": {"title": "Messy"},
        }
    ]
    headers = {"Authorization": f"Bearer {sim.issue_access_token()}"}
    detail = requests.get(f"{sim.api_url}/activities/{target['id']}", headers=headers, timeout=10)
    assert detail.json()["name"] == "Messy"


def test_a_type_change_delivers_the_new_type(sim, callback):
    subscribed(sim, callback)
    target = next(a for a in sim.activities if a["sport_type"] == "Run" and not a["private"])
    sim.update_activity(target["id"], sport_type="TrailRun")
    sim.update_activity(target["id"], sport_type="Ride")
    events = delivered(sim, callback)
    assert [e["updates"] for e in events] == [{"type": "TrailRun"}, {"type": "Ride"}]
    headers = {"Authorization": f"Bearer {sim.issue_access_token()}"}
    detail = requests.get(f"{sim.api_url}/activities/{target['id']}", headers=headers, timeout=10)
    assert (detail.json()["type"], detail.json()["sport_type"]) == ("Ride", "Ride")


def test_privacy_changes_deliver_private_as_a_string(sim, callback):
    subscribed(sim, callback)
    target = public_activity(sim)
    sim.update_activity(target["id"], private=True)
    sim.update_activity(target["id"], private="false")  # text, as a JSON client may send it
    sim.update_activity(target["id"], visibility="only_me")
    sim.update_activity(target["id"], visibility="followers_only")
    sim.update_activity(target["id"], visibility="everyone")  # still not private: no event
    events = delivered(sim, callback)
    assert [e["updates"] for e in events] == [
        {"private": "true"},
        {"private": "false"},
        {"private": "true"},
        {"private": "false"},
    ]
    assert sim.activity(target["id"])["visibility"] == "everyone"


def test_one_save_changing_several_fields_is_one_event(sim, callback):
    subscribed(sim, callback)
    target = next(a for a in sim.activities if a["sport_type"] == "Run" and not a["private"])
    sim.update_activity(target["id"], name="Hill reps", sport_type="TrailRun", private=True)
    sim.update_activity(target["id"], description="legs gone", gear_id=None)  # no event
    [event] = delivered(sim, callback)
    assert event["updates"] == {"title": "Hill reps", "type": "TrailRun", "private": "true"}


def test_without_read_all_privacy_changes_are_deletes_and_creates(sim, callback):
    subscribed(sim, callback)
    sim.set_scope("read,activity:read")
    target = public_activity(sim)
    sim.update_activity(target["id"], private=True)
    sim.update_activity(target["id"], name="Unseen")  # private, the app cannot see it
    sim.update_activity(target["id"], private=False)
    events = delivered(sim, callback)
    assert [(e["aspect_type"], e["updates"], e["object_id"]) for e in events] == [
        ("delete", {}, target["id"]),
        ("create", {}, target["id"]),
    ]


def test_a_delete_delivers_a_delete_and_the_api_answers_404(sim, callback):
    subscribed(sim, callback)
    target = public_activity(sim)
    sim.delete_activity(target["id"])
    [event] = delivered(sim, callback)
    assert (event["aspect_type"], event["updates"], event["object_id"]) == (
        "delete",
        {},
        target["id"],
    )
    headers = {"Authorization": f"Bearer {sim.issue_access_token()}"}
    detail = requests.get(f"{sim.api_url}/activities/{target['id']}", headers=headers, timeout=10)
    assert detail.status_code == 404


def test_a_create_delivers_a_create(sim, callback):
    subscribed(sim, callback)
    new = sim.add_activity(name="Lunch Ride", sport_type="Ride")
    [event] = delivered(sim, callback)
    assert (event["aspect_type"], event["object_type"], event["object_id"]) == (
        "create",
        "activity",
        new["id"],
    )
    assert event["updates"] == {}
    assert event["owner_id"] == sim.athlete_id


def test_admin_api_changes_deliver_events(sim, callback):
    """What a demo does against a running strava-sim: create, edit, delete via /_sim/."""
    subscribed(sim, callback)
    base = sim.base_url + "/_sim/activities"
    made = requests.post(base, json={"name": "Evening Run"}, timeout=TIMEOUT).json()
    requests.patch(f"{base}/{made['id']}", json={"name": "Evening Tempo"}, timeout=TIMEOUT)
    requests.delete(f"{base}/{made['id']}", timeout=TIMEOUT)
    events = delivered(sim, callback)
    assert [(e["aspect_type"], e["updates"]) for e in events] == [
        ("create", {}),
        ("update", {"title": "Evening Tempo"}),
        ("delete", {}),
    ]
    assert {e["object_id"] for e in events} == {made["id"]}


def test_a_revocation_delivers_an_athlete_deauthorization_once(sim, callback):
    sub_id = subscribed(sim, callback)
    sim.revoke_tokens()
    sim.revoke_tokens()  # nothing left to revoke: no second event
    sim.update_activity(public_activity(sim)["id"], name="After revocation")  # unseen
    assert delivered(sim, callback) == [
        {
            "aspect_type": "update",
            "event_time": int(NOW),
            "object_id": sim.athlete_id,
            "object_type": "athlete",
            "owner_id": sim.athlete_id,
            "subscription_id": sub_id,
            "updates": {"authorized": "false"},
        }
    ]


def test_the_deauthorize_endpoint_and_admin_revoke_deliver_the_event(sim, callback):
    subscribed(sim, callback)
    token = sim.issue_access_token()
    answer = requests.post(
        sim.base_url + "/oauth/deauthorize", data={"access_token": token}, timeout=TIMEOUT
    )
    assert answer.status_code == 200
    sim.issue_refresh_token()  # the athlete authorizes again...
    requests.post(sim.base_url + "/_sim/revoke", timeout=TIMEOUT)  # ...and revokes again
    events = delivered(sim, callback)
    assert [e["updates"] for e in events] == [{"authorized": "false"}] * 2


def test_delivery_does_not_block_the_change(sim, callback):
    """The change returns while the callback still holds the POST (a background thread)."""
    subscribed(sim, callback)
    callback.gate.clear()
    sim.update_activity(public_activity(sim)["id"], name="Queued")
    assert callback.posts == []
    callback.gate.set()
    assert [e["updates"] for e in delivered(sim, callback)] == [{"title": "Queued"}]


# -- retries -------------------------------------------------------------------------------
def test_a_callback_failing_twice_gets_three_attempts(sim, callback):
    subscribed(sim, callback)
    callback.post_statuses = [500, 503]
    sim.update_activity(public_activity(sim)["id"], name="Third time lucky")
    posts = delivered(sim, callback)
    assert len(posts) == 3
    assert posts[0] == posts[1] == posts[2]  # the same event each time
    attempts = sim.push.deliveries
    assert [(a.attempt, a.status, a.ok) for a in attempts] == [
        (1, 500, False),
        (2, 503, False),
        (3, 200, True),
    ]
    assert all(a.latency >= 0 for a in attempts)


def test_a_callback_failing_always_gets_exactly_three_attempts(sim, callback):
    subscribed(sim, callback)
    callback.post_default = 500
    sim.update_activity(public_activity(sim)["id"], name="Never acknowledged")
    assert len(delivered(sim, callback)) == 3  # the queue is idle: no fourth will come
    assert [a.attempt for a in sim.push.deliveries] == [1, 2, 3]
    assert not any(a.ok for a in sim.push.deliveries)


def test_a_slow_acknowledgement_is_a_failed_attempt(sim, callback):
    subscribed(sim, callback)
    sim.push.deliverer.timeout = 0.2  # Strava's is 2 s; shortened to keep the test quick
    callback.post_delay = 1.0
    sim.update_activity(public_activity(sim)["id"], name="Slow receiver")
    delivered(sim, callback)
    attempts = sim.push.deliveries
    assert len(attempts) == 3
    assert not any(a.ok for a in attempts)


def test_the_delivery_log_is_on_the_admin_api(sim, callback):
    subscribed(sim, callback)
    callback.post_statuses = [500]
    sim.update_activity(public_activity(sim)["id"], name="Logged")
    waited = requests.post(sim.base_url + "/_sim/push/wait", json={"timeout": IDLE}, timeout=60)
    assert waited.json() == {"idle": True}
    log = requests.get(sim.base_url + "/_sim/push/deliveries", timeout=TIMEOUT).json()
    assert [(d["attempt"], d["status"], d["ok"]) for d in log] == [(1, 500, False), (2, 200, True)]
    assert log[0]["event"]["updates"] == {"title": "Logged"}
    assert isinstance(log[0]["latency"], float)
    status = requests.get(sim.base_url + "/_sim/push", timeout=TIMEOUT).json()
    assert status["subscription"]["callback_url"] == callback.url
    assert status["verify_token"] == "my-verify-token"
    assert status["idle"] is True


def test_the_retry_delay_is_a_setting(sim, callback):
    subscribed(sim, callback)
    answer = requests.post(
        sim.base_url + "/_sim/push/settings", json={"retry_delay": 0.3}, timeout=TIMEOUT
    )
    assert answer.json()["retry_delay"] == 0.3
    bad = requests.post(
        sim.base_url + "/_sim/push/settings", json={"retry_delay": -1}, timeout=TIMEOUT
    )
    assert bad.status_code == 400
    callback.post_statuses = [500]
    sim.update_activity(public_activity(sim)["id"], name="Retried later")
    delivered(sim, callback)
    first, second = sim.push.deliveries
    assert (first.ok, second.ok) == (False, True)


# -- forged and duplicate events -----------------------------------------------------------
def test_forged_events_arrive_as_asked(sim, callback):
    sub_id = subscribed(sim, callback)
    other = sim.add_athlete(seed=99, activity_count=5)
    delivered(sim, callback)
    callback.posts.clear()
    theirs = other.activities[0]["id"]
    sim.push.forge_event({"subscription_id": sub_id + 1, "object_id": theirs})
    sim.push.forge_event({"anything": [1, 2]}, template=False)
    posts = delivered(sim, callback)
    assert posts[0] == {
        "aspect_type": "create",
        "event_time": int(NOW),
        "object_id": theirs,
        "object_type": "activity",
        "owner_id": sim.athlete_id,
        "subscription_id": sub_id + 1,
        "updates": {},
    }
    assert posts[1] == {"anything": [1, 2]}
    assert [e.kind for e in sim.push.events] == ["forged", "forged"]


def test_forged_events_via_the_admin_api(sim, callback):
    subscribed(sim, callback)
    answer = requests.post(
        sim.base_url + "/_sim/push/forge",
        json={"event": {"object_type": "athlete", "updates": {"authorized": "false"}}},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 201
    [post] = delivered(sim, callback)
    assert post["object_type"] == "athlete"
    assert post["updates"] == {"authorized": "false"}
    too_big = requests.post(
        sim.base_url + "/_sim/push/forge",
        json={"event": {"pad": "x" * 70_000}},
        timeout=TIMEOUT,
    )
    assert too_big.status_code == 400


def test_a_forged_event_needs_somewhere_to_go(sim):
    with pytest.raises(ValueError, match="no push subscription"):
        sim.push.forge_event({"object_id": 1})


def test_a_duplicate_repeats_a_past_event(sim, callback):
    subscribed(sim, callback)
    target = public_activity(sim)
    sim.update_activity(target["id"], name="Twice")
    sim.update_activity(target["id"], name="Once")
    delivered(sim, callback)
    first = sim.push.events[0]
    sim.push.duplicate_event(first.event_id)
    answer = requests.post(sim.base_url + "/_sim/push/duplicate", json={}, timeout=TIMEOUT)
    assert answer.status_code == 201
    posts = delivered(sim, callback)
    assert [p["updates"] for p in posts] == [
        {"title": "Twice"},
        {"title": "Once"},
        {"title": "Twice"},
        {"title": "Once"},
    ]
    assert posts[2] == posts[0]  # the same body, event_time included
    assert [e.kind for e in sim.push.events] == ["event", "event", "duplicate", "duplicate"]
    missing = requests.post(
        sim.base_url + "/_sim/push/duplicate", json={"event_id": 999}, timeout=TIMEOUT
    )
    assert missing.status_code == 404


def test_no_subscription_no_events(sim, callback):
    sim.update_activity(public_activity(sim)["id"], name="Nobody listens")
    assert sim.push.wait_idle(IDLE)
    assert sim.push.events == []
    assert callback.posts == []


def test_an_api_update_and_another_athletes_change_deliver_events(sim, callback):
    """The app's own PUT is a change like any other; each event names its athlete."""
    subscribed(sim, callback)
    sim.set_scope("read,activity:read_all,activity:write")
    target = public_activity(sim)
    headers = {"Authorization": f"Bearer {sim.issue_access_token()}"}
    answer = requests.put(
        f"{sim.api_url}/activities/{target['id']}",
        params={"name": "Renamed by the app"},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    other = sim.add_athlete(seed=42, activity_count=5)
    theirs = other.activities[0]["id"]
    other.delete_activity(theirs)
    events = delivered(sim, callback)
    assert [(e["aspect_type"], e["object_id"], e["owner_id"], e["updates"]) for e in events] == [
        ("update", target["id"], sim.athlete_id, {"title": "Renamed by the app"}),
        ("delete", theirs, other.athlete_id, {}),
    ]
