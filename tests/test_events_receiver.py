"""The push-event receiver, served by a real uvicorn on 127.0.0.1, on SQLite and PostgreSQL.

What a user checks: Strava's handshake passes, every real event is stored once, forged and
malformed ones change nothing, the tap reads and acknowledges them, and a database that is
down or hung costs nothing but a delay (events are spooled, then applied once).
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from strava_events.events import validate_event
from strava_events.queue import StoredEvent
from strava_events.settings import SettingsError, load_settings
from strava_events.spool import Spool
from tests.test_events_support import (
    ATHLETE,
    CALLBACK_PATH,
    SUBSCRIPTION_ID,
    TAP_TOKEN,
    VERIFY_TOKEN,
    Forwarder,
    Served,
    drop_schema,
    event,
    settings_for,
    wait_for,
)

AUTH = {"Authorization": f"Bearer {TAP_TOKEN}"}


@pytest.fixture(params=["sqlite", "postgres"])
def served(request, tmp_path):
    """The receiver on the SQLite store, then on PostgreSQL (its own schema)."""
    dsn = None
    if request.param == "postgres":
        postgres_url = request.getfixturevalue("postgres_url")
        from strava_events.settings import to_libpq

        dsn = to_libpq(postgres_url)
    settings = settings_for(tmp_path, dsn)
    with Served(settings) as server:
        yield server
    if dsn:
        drop_schema(dsn, settings.postgres_schema)


@pytest.fixture
def sqlite_served(tmp_path):
    with Served(settings_for(tmp_path)) as server:
        yield server


def pending(server: Served, limit: int = 1000) -> dict:
    answer = httpx.get(
        f"{server.tap_url}/tap/events/pending", params={"limit": limit}, headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def post(server: Served, body: object, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        server.callback, content=content, headers={"Content-Type": "application/json"}, **kwargs
    )


# -- the validation handshake ---------------------------------------------------------------


def test_handshake_echoes_the_challenge_and_refuses_a_wrong_token(sqlite_served):
    query = {"hub.mode": "subscribe", "hub.challenge": "15f7d1a91c1f40f8a748fd134752feb3"}
    ok = httpx.get(sqlite_served.callback, params={**query, "hub.verify_token": VERIFY_TOKEN})
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json"
    assert ok.json() == {"hub.challenge": "15f7d1a91c1f40f8a748fd134752feb3"}

    wrong = httpx.get(sqlite_served.callback, params={**query, "hub.verify_token": "guess"})
    assert wrong.status_code == 403
    assert "15f7d1a91c1f40f8a748fd134752feb3" not in wrong.text

    # PHP-style names (dots turned into underscores by a proxy) are read too.
    php = httpx.get(
        sqlite_served.callback,
        params={"hub_mode": "subscribe", "hub_challenge": "x1", "hub_verify_token": VERIFY_TOKEN},
    )
    assert php.json() == {"hub.challenge": "x1"}


def test_a_wrong_secret_path_is_not_found(sqlite_served):
    query = {"hub.mode": "subscribe", "hub.challenge": "c", "hub.verify_token": VERIFY_TOKEN}
    assert httpx.get(f"{sqlite_served.url}/not-the-path", params=query).status_code == 404
    assert httpx.post(f"{sqlite_served.url}/{CALLBACK_PATH}x", json=event()).status_code == 404
    assert pending(sqlite_served)["events"] == []


# -- events ---------------------------------------------------------------------------------


def test_a_duplicate_delivery_is_stored_once(served):
    for _attempt in range(3):  # Strava's three attempts
        assert post(served, event()).status_code == 200
    events = pending(served)["events"]
    assert len(events) == 1
    assert events[0]["event"] == validate_event(event())[0].as_dict()
    assert len(events[0]["key"]) == 64
    assert events[0]["received_at"].endswith("Z")


def test_two_events_of_one_save_are_both_stored(served):
    assert post(served, event(updates={"title": "Morning Ride"})).status_code == 200
    assert post(served, event(updates={"type": "Ride"})).status_code == 200
    # Same updates, keys in another order: the same event.
    assert post(served, event(updates={"private": "true", "title": "x"})).status_code == 200
    assert post(served, event(updates={"title": "x", "private": "true"})).status_code == 200
    updates = [item["event"]["updates"] for item in pending(served)["events"]]
    assert sorted(map(json.dumps, updates)) == sorted(
        map(
            json.dumps,
            [{"title": "Morning Ride"}, {"type": "Ride"}, {"private": "true", "title": "x"}],
        )
    )


def test_forged_events_are_answered_but_change_nothing(served):
    assert post(served, event(subscription_id=SUBSCRIPTION_ID + 1)).status_code == 200
    assert post(served, event(owner_id=ATHLETE + 1)).status_code == 200
    assert (
        post(
            served,
            event(
                object_type="athlete", object_id=999, owner_id=999, updates={"authorized": "false"}
            ),
        ).status_code
        == 200
    )
    assert pending(served)["events"] == []
    status = httpx.get(f"{served.tap_url}/tap/status", headers=AUTH).json()
    assert status["counters"]["ignored_subscription"] == 1
    assert status["counters"]["ignored_owner"] == 2
    assert status["pending"] == 0


def test_a_deauthorization_of_a_known_athlete_is_stored(served):
    deauth = event(object_type="athlete", object_id=ATHLETE, updates={"authorized": "false"})
    assert post(served, deauth).status_code == 200
    [item] = pending(served)["events"]
    assert item["event"]["object_type"] == "athlete"
    assert item["event"]["updates"] == {"authorized": "false"}


def test_an_oversize_body_is_refused_with_413(sqlite_served):
    huge = event(
        updates={
            "title": "x" * 1000,
            "a": "y" * 1000,
            "b": "z" * 1000,
            "c": "w" * 1000,
            "d": "v" * 1000,
        }
    )
    assert post(sqlite_served, huge).status_code == 413
    # Without a Content-Length (chunked), the bound holds too.
    chunked = httpx.post(sqlite_served.callback, content=iter([b"{" + b" " * 5000 + b"}"]))
    assert chunked.status_code == 413
    assert pending(sqlite_served)["events"] == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        json.dumps({k: v for k, v in event().items() if k != "owner_id"}).encode(),
        json.dumps(event(object_id="1360128428")).encode(),
        json.dumps(event(object_id=True)).encode(),
        json.dumps(event(owner_id=-5)).encode(),
        json.dumps(event(object_type="route")).encode(),
        json.dumps(event(aspect_type="rename")).encode(),
        json.dumps(event(event_time=12)).encode(),
        json.dumps(event(updates={"title": {"nested": "x"}})).encode(),
        json.dumps(event(updates={"private": True})).encode(),
        json.dumps(event(updates=["title"])).encode(),
        json.dumps(event(object_type="athlete", object_id=1)).encode(),
        b'{"event_time": NaN}',
        "\u00e9".encode("latin-1"),
    ],
)
def test_malformed_events_are_refused_with_400(sqlite_served, body):
    answer = post(sqlite_served, body)
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("not a Strava push event")
    assert pending(sqlite_served)["events"] == []


def test_undocumented_fields_are_dropped_not_stored(sqlite_served):
    assert post(sqlite_served, event(some_future_field="x")).status_code == 200
    [item] = pending(sqlite_served)["events"]
    assert "some_future_field" not in item["event"]


# -- the tap's interface --------------------------------------------------------------------


def test_the_tap_interface_needs_the_bearer_token(sqlite_served):
    url = f"{sqlite_served.tap_url}/tap/events/pending"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Basic {TAP_TOKEN}"}).status_code == 401
    ack = httpx.post(f"{sqlite_served.tap_url}/tap/events/ack", json={"keys": []})
    assert ack.status_code == 401
    assert ack.headers["www-authenticate"].startswith("Bearer")


def test_pending_then_ack_idempotently(served):
    for object_id in (11, 12, 13):
        assert (
            post(served, event(object_id=object_id, aspect_type="create", updates={})).status_code
            == 200
        )
    first = pending(served, limit=2)
    assert [item["event"]["object_id"] for item in first["events"]] == [11, 12]  # receive order
    assert first["more"] is True
    keys = [item["key"] for item in first["events"]]

    ack_url = f"{served.tap_url}/tap/events/ack"
    answer = httpx.post(ack_url, json={"keys": keys}, headers=AUTH)
    assert answer.json() == {"acknowledged": 2, "ignored": 0}
    again = httpx.post(ack_url, json={"keys": [*keys, "0" * 64]}, headers=AUTH)
    assert again.json() == {"acknowledged": 0, "ignored": 3}

    rest = pending(served)
    assert [item["event"]["object_id"] for item in rest["events"]] == [13]
    assert rest["more"] is False
    # A redelivery of an acknowledged event stays acknowledged: it is applied once.
    assert post(served, event(object_id=11, aspect_type="create", updates={})).status_code == 200
    assert [item["event"]["object_id"] for item in pending(served)["events"]] == [13]


@pytest.mark.parametrize(
    "body",
    [b"nope", b'{"keys": "abc"}', b'{"keys": [5]}', json.dumps({"keys": ["a" * 129]}).encode()],
)
def test_a_bad_ack_is_refused(sqlite_served, body):
    answer = httpx.post(f"{sqlite_served.tap_url}/tap/events/ack", content=body, headers=AUTH)
    assert answer.status_code == 400


def test_strings_that_are_no_key_are_ignored(sqlite_served):
    keys = ["short", "A" * 64, "../../etc"]
    answer = httpx.post(
        f"{sqlite_served.tap_url}/tap/events/ack", json={"keys": keys}, headers=AUTH
    )
    assert answer.json() == {"acknowledged": 0, "ignored": 3}


def test_a_bad_pending_limit_is_refused(sqlite_served):
    for limit in ("0", "1001", "x"):
        answer = httpx.get(
            f"{sqlite_served.tap_url}/tap/events/pending", params={"limit": limit}, headers=AUTH
        )
        assert answer.status_code == 400


# -- limits ---------------------------------------------------------------------------------


def test_failed_requests_spend_their_clients_budget_never_a_valid_senders(tmp_path):
    settings = settings_for(tmp_path, failure_burst="5", failure_rate="0.1")
    stranger = {"X-Forwarded-For": "203.0.113.5"}  # 127.0.0.1 is a trusted proxy
    strava = {"X-Forwarded-For": "198.51.100.7"}
    with Served(settings) as server:
        statuses = [
            httpx.post(f"{server.url}/guess-{n}", json=event(), headers=stranger).status_code
            for n in range(8)
        ]
        assert statuses[:5] == [404] * 5
        assert set(statuses[5:]) == {429}
        refused = httpx.post(server.callback, json=event(object_id=99), headers=stranger)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        # Valid events never spend a budget: 60 from one address, far beyond 5, all stored.
        for n in range(60):
            answer = httpx.post(server.callback, json=event(object_id=n + 1), headers=strava)
            assert answer.status_code == 200
        assert len(pending(server)["events"]) == 60
        assert server.receiver.counters["rate_limited"] == 4


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_an_athletes_pending_events_are_bounded(tmp_path, request, store):
    dsn = None
    if store == "postgres":
        from strava_events.settings import to_libpq

        dsn = to_libpq(request.getfixturevalue("postgres_url"))
    settings = settings_for(tmp_path, dsn, max_pending_per_athlete="3")
    try:
        bounded_to_three(settings)
    finally:
        if dsn:
            drop_schema(dsn, settings.postgres_schema)


def bounded_to_three(settings) -> None:
    with Served(settings) as server:
        statuses = [post(server, event(object_id=n)).status_code for n in range(1, 6)]
        assert statuses == [200, 200, 200, 503, 503]
        assert post(server, event(object_id=1)).status_code == 200  # a redelivery still is
        [first, *_rest] = pending(server)["events"]
        ack = httpx.post(
            f"{server.tap_url}/tap/events/ack", json={"keys": [first["key"]]}, headers=AUTH
        )
        assert ack.json()["acknowledged"] == 1
        assert post(server, event(object_id=4)).status_code == 200  # room again
        objects = sorted(item["event"]["object_id"] for item in pending(server)["events"])
        assert objects == [2, 3, 4]
        assert server.receiver.counters["refused_athlete_full"] == 2


# -- a database that is down or hung --------------------------------------------------------


def test_events_while_postgres_is_down_are_applied_once_afterwards(postgres_url, tmp_path):
    forwarder = Forwarder(postgres_url).up()
    settings = settings_for(tmp_path, forwarder.dsn)
    try:
        with Served(settings) as server:
            assert post(server, event(object_id=1)).status_code == 200  # the store works
            wait_for(lambda: len(pending(server)["events"]) == 1)
            forwarder.down()
            latencies = []
            for n in range(2, 22):
                for _delivery in range(2):  # every event delivered twice
                    started = time.perf_counter()
                    assert post(server, event(object_id=n)).status_code == 200
                    latencies.append(time.perf_counter() - started)
            assert max(latencies) < 2.0
            assert len(server.receiver.spool) >= 20
            unavailable = httpx.get(f"{server.tap_url}/tap/events/pending", headers=AUTH)
            assert unavailable.status_code == 503
            assert "retry-after" in unavailable.headers

            forwarder.up()
            wait_for(lambda: len(server.receiver.spool) == 0, what="the spool drained")
            objects = [item["event"]["object_id"] for item in pending(server)["events"]]
            assert sorted(objects) == list(range(1, 22))  # each once
            assert objects == list(range(1, 22))  # in receive order
    finally:
        forwarder.down()
        drop_schema(postgres_url, settings.postgres_schema)


def test_a_hung_database_still_gets_fast_answers(postgres_url, tmp_path):
    forwarder = Forwarder(postgres_url).up()
    settings = settings_for(tmp_path, forwarder.dsn)
    try:
        with Served(settings) as server:
            assert post(server, event(object_id=1)).status_code == 200
            wait_for(lambda: len(pending(server)["events"]) == 1)
            forwarder.stall()
            started = time.perf_counter()
            assert post(server, event(object_id=2)).status_code == 200
            assert post(server, event(object_id=3)).status_code == 200
            assert time.perf_counter() - started < 2.0
            assert len(server.receiver.spool) >= 2
            forwarder.down()  # the hung connections are cut, as a restart would
            forwarder.up()
            wait_for(lambda: len(server.receiver.spool) == 0, timeout=60, what="drained")
            objects = [item["event"]["object_id"] for item in pending(server)["events"]]
            assert objects == [1, 2, 3]
    finally:
        forwarder.down()
        drop_schema(postgres_url, settings.postgres_schema)


def test_a_spool_left_by_a_crash_is_drained_at_start(tmp_path):
    settings = settings_for(tmp_path)
    spool = Spool(settings.spool_dir, 100)
    parsed = validate_event(event(object_id=77))[0]
    spool.append(StoredEvent(parsed, time.time()))
    (settings.spool_dir / "00000000000000000001-garbage.event.json").write_text("{broken")
    with Served(settings) as server:
        wait_for(lambda: len(server.receiver.spool) == 0, what="drained")
        assert [item["event"]["object_id"] for item in pending(server)["events"]] == [77]
    assert (settings.spool_dir / "rejected" / "00000000000000000001-garbage.event.json").exists()


# -- settings -------------------------------------------------------------------------------


def test_missing_or_weak_settings_are_one_clear_line(tmp_path):
    with pytest.raises(SettingsError, match="STRAVA_EVENTS_VERIFY_TOKEN is not set"):
        load_settings({})
    weak = {
        "STRAVA_EVENTS_VERIFY_TOKEN": "short",
    }
    with pytest.raises(SettingsError, match="at least 16 characters") as caught:
        load_settings(weak)
    assert "short" not in str(caught.value)
    with pytest.raises(SettingsError, match="ATHLETE_IDS must be a comma list"):
        settings_for(tmp_path, athlete_ids="12,abc")
    with pytest.raises(SettingsError, match="Neither STRAVA_EVENTS_ATHLETE_IDS"):
        settings_for(tmp_path, athlete_ids="")
    # A setting of the budget per sender, which refused Strava's bursts, is not ignored.
    with pytest.raises(SettingsError, match=r"CLIENT_BURST is no longer read.*FAILURE_BURST"):
        settings_for(tmp_path, client_burst="400")
    with pytest.raises(SettingsError, match="TAP_PORT must differ"):
        settings_for(tmp_path, port="9000", tap_port="9000")


def test_the_athletes_of_the_tap_token_store_are_accepted(tmp_path):
    from tap_strava.token_store import StoredTokens, TokenStore

    store_path = tmp_path / "tokens" / "tokens.json"
    store = TokenStore(store_path, client_id="1", configured_refresh_token="r")
    store.save(StoredTokens(refresh_token="r2", athlete_id=4242))
    settings = settings_for(tmp_path, athlete_ids="", token_store=str(store_path))
    with Served(settings) as server:
        assert post(server, event(owner_id=4242)).status_code == 200
        assert post(server, event(owner_id=ATHLETE)).status_code == 200  # not in the store
        assert [item["event"]["owner_id"] for item in pending(server)["events"]] == [4242]


def test_the_athletes_of_the_shared_store_are_accepted_without_its_keys(
    tmp_path, shared_database_url, token_keys, monkeypatch
):
    """A club's receiver: whose events to queue comes from the shared PostgreSQL store.

    Athletes who connected on another machine's Connect page (or with tap-strava-auth) are
    there and nowhere else; the receiver reads their ids without the token keys, and one who
    connects later is accepted at the next read of the store.
    """
    from strava_events import athletes
    from tap_strava.shared_database import SharedDatabase
    from tap_strava.token_store import StoredTokens
    from tap_strava.token_store_postgres import PostgresTokenStore

    def connect(athlete_id: int) -> None:
        store = PostgresTokenStore(
            SharedDatabase(shared_database_url),
            client_id="1",
            configured_refresh_token=f"rt-{athlete_id}",
        )
        with store.locked():
            store.save(StoredTokens(refresh_token=f"rt2-{athlete_id}", athlete_id=athlete_id))

    connect(4242)
    monkeypatch.delenv("TAP_STRAVA_TOKEN_KEYS")  # the receiver never holds the keys
    values = {
        "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
        "STRAVA_EVENTS_CALLBACK_PATH": CALLBACK_PATH,
        "STRAVA_EVENTS_TAP_TOKEN": TAP_TOKEN,
        "STRAVA_EVENTS_SUBSCRIPTION_ID": str(SUBSCRIPTION_ID),
        "STRAVA_EVENTS_SQLITE_PATH": str(tmp_path / "events.sqlite3"),
        "STRAVA_EVENTS_SPOOL_DIR": str(tmp_path / "spool"),
        "STRAVA_EVENTS_STATE_DIR": str(tmp_path / "state"),
        "TAP_STRAVA_SHARED_DATABASE_URL": shared_database_url,
    }
    settings = load_settings(values)
    monkeypatch.setattr(athletes, "REFRESH_SECONDS", 0.0)
    with Served(settings) as server:
        assert post(server, event(owner_id=4242)).status_code == 200
        assert post(server, event(owner_id=4343)).status_code == 200
        monkeypatch.setenv("TAP_STRAVA_TOKEN_KEYS", token_keys)
        connect(4343)
        monkeypatch.delenv("TAP_STRAVA_TOKEN_KEYS")
        later = event(owner_id=4343, object_id=77)
        assert post(server, later).status_code == 200
        queued = [
            (item["event"]["owner_id"], item["event"]["object_id"])
            for item in pending(server)["events"]
        ]
    assert queued == [(4242, 1360128428), (4343, 77)], "the store's athletes, no one else"


def test_a_shared_database_url_that_is_not_postgresql_is_one_line(tmp_path):
    with pytest.raises(SettingsError, match="shared_database_url must be a PostgreSQL URL"):
        load_settings(
            {
                "STRAVA_EVENTS_VERIFY_TOKEN": "v" * 20,
                "STRAVA_EVENTS_CALLBACK_PATH": "c" * 20,
                "STRAVA_EVENTS_TAP_TOKEN": "t" * 20,
                "STRAVA_EVENTS_STATE_DIR": str(tmp_path),
                "TAP_STRAVA_SHARED_DATABASE_URL": "mysql://root@127.0.0.1/club",
            }
        )


def test_a_body_that_never_arrives_is_cut_off(sqlite_served):
    request = (
        f"POST /{CALLBACK_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
    ).encode()
    with socket.create_connection(("127.0.0.1", sqlite_served.port), timeout=15) as sock:
        sock.sendall(request)  # ...and the other 199 bytes never come
        answer = sock.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 408")


def test_status_says_what_the_receiver_checks_against(sqlite_served):
    status = httpx.get(f"{sqlite_served.tap_url}/tap/status", headers=AUTH).json()
    assert status["subscription_id"] == SUBSCRIPTION_ID
    assert status["known_athletes"] == 1
    assert status["store"].startswith("SQLite ")
