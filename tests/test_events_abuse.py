"""The receiver under abuse (issue 24): the real ``strava-events serve`` process, clients
connecting to it directly from this machine, one address.

What a user checks: strangers holding connections open, trickling headers, guessing the
tap's token or a burst of genuine deliveries never cost a valid event its 200 within 2 s,
nor the tap its answer; each event is stored once; the queue's files are private. The
full-size figures (2,000 idle connections, 500 events at once, ...) are the bench's
(``make bench-events``, docs/benchmarks.md); these are the same cases, small.
"""

from __future__ import annotations

import asyncio
import socket
import stat
import time
import uuid

import pytest

from devtools import receiver_abuse as abuse
from devtools.receiver_abuse import ReceiverProcess
from strava_events.settings import to_libpq
from tests.test_events_support import Forwarder, drop_schema, wait_for


@pytest.fixture
def receiver(tmp_path):
    with ReceiverProcess(tmp_path, header_timeout_seconds="1") as rx:
        yield rx


def test_idle_connections_cost_a_valid_event_nothing(receiver):
    outcome = asyncio.run(
        abuse.idle_case(receiver, connections=300, events=20, first_id=1, deadline=1.0, grace=4.0)
    )
    assert outcome.extra["opened"] == 300
    # Closed by the receiver (its deadline is 1 s; a loaded machine takes them late).
    assert outcome.extra["closed"] == 300
    assert outcome.extra["first_closed"] >= 1.0
    assert outcome.statuses == [200] * 20
    assert max(outcome.latencies) < 2.0
    assert outcome.tap_status == 200
    assert sorted(receiver.pending_object_ids()) == list(range(1, 21))


def test_a_low_open_files_limit_is_raised_so_idle_connections_cannot_refuse_events(tmp_path):
    # Started as with a soft limit of 256, far below the 300 idle connections.
    with ReceiverProcess(tmp_path, soft_open_files=256) as receiver:
        soft, hard = receiver.open_files_limit()
        assert soft == hard > 256
        outcome = asyncio.run(
            abuse.idle_case(
                receiver, connections=300, events=5, first_id=1, deadline=0.0, grace=0.1
            )
        )
        assert outcome.statuses == [200] * 5
        assert max(outcome.latencies) < 2.0  # not after the idle ones were cut (5 s)
        assert outcome.tap_status == 200


def test_a_connection_without_complete_headers_is_closed_within_the_deadline(receiver):
    # Headers sent one byte every 0.25 s would take 40 s; the deadline is 1 s.
    outcome = asyncio.run(
        abuse.slow_header_case(receiver, connections=20, events=5, first_id=1, limit=8.0)
    )
    assert outcome.extra["never_cut"] == 0
    assert outcome.extra["cut_max"] < 3.0
    assert outcome.statuses == [200] * 5
    # A connection that sends nothing at all is closed too.
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
        assert sock.recv(1) == b""
    assert time.monotonic() - started < 3.0
    # The trickled request never arrived: only the five valid events are stored.
    assert sorted(receiver.pending_object_ids()) == [1, 2, 3, 4, 5]


def test_wrong_tokens_do_not_starve_the_taps_request(receiver):
    outcome = asyncio.run(
        abuse.wrong_token_case(receiver, requests=300, concurrency=20, events=5, first_id=1)
    )
    assert outcome.tap_status == 200
    assert outcome.statuses == [200] * 5
    strangers = outcome.extra["strangers"]
    assert set(strangers) == {401, 429}  # their own budget, spent
    assert sum(strangers.values()) == 300
    # The public listener does not serve the tap's interface at all.
    status, _latency = asyncio.run(
        abuse.exchange(receiver.port, abuse.tap_get("/tap/status", abuse.TAP_TOKEN))
    )
    assert status == 404


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_burst_from_one_address_is_answered_in_time_and_stored_once(tmp_path, request, store):
    env = {}
    if store == "postgres":
        env = {
            "postgres_dsn": to_libpq(request.getfixturevalue("postgres_url")),
            "postgres_schema": "strava_events_" + uuid.uuid4().hex[:10],
        }
    try:
        with ReceiverProcess(tmp_path, **env) as receiver:  # the default header deadline
            burst_twice(receiver)
    finally:
        if env:
            drop_schema(env["postgres_dsn"], env["postgres_schema"])


def burst_twice(receiver: ReceiverProcess) -> None:
    first = asyncio.run(abuse.burst_case(receiver, events=150, first_id=1))
    assert first.statuses == [200] * 150
    assert max(first.latencies) < 2.0
    # All went straight into the store (group commit kept up), none to the spool.
    counters = receiver.tap("/tap/status")[1]["counters"]
    assert (counters["stored"], counters["spooled"]) == (150, 0)
    assert counters["store_commits"] < 100  # grouped (2 were typical here), not one each
    again = asyncio.run(abuse.burst_case(receiver, events=150, first_id=1))  # redelivered
    assert again.statuses == [200] * 150
    ids = receiver.pending_object_ids()
    assert sorted(ids) == list(range(1, 151))


def test_the_queue_files_are_private(tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)  # a folder an earlier version left open
    (state / "events.sqlite3").touch(mode=0o644)
    with ReceiverProcess(tmp_path) as rx:
        asyncio.run(abuse.burst_case(rx, events=3, first_id=1))
        files = ["events.sqlite3", "events.sqlite3-wal", "events.sqlite3-shm"]
        modes = {name: stat.S_IMODE((state / name).stat().st_mode) for name in files}
        assert modes == dict.fromkeys(files, 0o600)
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "spool").stat().st_mode) == 0o700


def test_a_burst_while_postgres_is_down_is_spooled_then_stored_once(postgres_url, tmp_path):
    forwarder = Forwarder(postgres_url).up()
    schema = "strava_events_" + uuid.uuid4().hex[:10]
    try:
        with ReceiverProcess(
            tmp_path, postgres_dsn=forwarder.dsn, postgres_schema=schema
        ) as receiver:
            forwarder.down()
            outcome = asyncio.run(abuse.burst_case(receiver, events=150, first_id=1))
            assert outcome.statuses == [200] * 150
            assert max(outcome.latencies) < 2.0
            status, _body = receiver.tap("/tap/status")
            assert status == 503  # the store is down: the tap is told to come back later
            forwarder.up()
            wait_for(lambda: receiver.tap("/tap/status")[1].get("spooled") == 0, what="drained")
            assert sorted(receiver.pending_object_ids()) == list(range(1, 151))
    finally:
        forwarder.down()
        drop_schema(postgres_url, schema)
