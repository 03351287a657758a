"""The shared database of several workers: tokens encrypted, facts, the quota ledger.

Real PostgreSQL (a database of its own per test), the simulator over real HTTP. The
multi-process runs (rotation races, several workers under one quota) are in
tests/test_shared_workers.py (extras).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg
import pytest

from strava_simulator import StravaSimulator
from tap_strava import backends
from tap_strava.errors import StravaConfigError
from tap_strava.quota_ledger import BACKFILL, DAILY, EVENTS, FAIR_WAIT_SECONDS, QuotaLedger, caps
from tap_strava.ratelimit import RateLimitSnapshot, WindowPair
from tap_strava.shared_database import SharedDatabase
from tap_strava.shared_facts import PROFILE
from tap_strava.shared_facts_postgres import PostgresSharedFacts
from tap_strava.token_keys import KEYS_ENV, new_key
from tap_strava.token_store import StoredTokens
from tap_strava.token_store_postgres import PostgresTokenStore, rotate_keys, stored_athlete_ids
from tests.conftest import tap_config_for
from tests.support import quota_stops, run_tap
from tests.test_auth_helper import Browser, auth_env, run_helper  # noqa: F401 - a fixture


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def _store(url: str, token: str = "configured-refresh") -> PostgresTokenStore:
    return PostgresTokenStore(
        SharedDatabase(url), client_id="12345", configured_refresh_token=token
    )


def test_tokens_are_encrypted_at_rest_and_the_athlete_id_is_clear(shared_database_url, token_keys):
    store = _store(shared_database_url)
    assert store.load() is None, "a fresh chain has nothing stored"
    with store.locked():
        store.save(
            StoredTokens(
                refresh_token="rt-secret-1",
                access_token="at-secret-1",
                expires_at=2_000_000_000,
                athlete_id=4242,
                updated_at=1_700_000_000,
                scope="read,activity:read_all",
            )
        )
    loaded = _store(shared_database_url).load()
    assert loaded is not None
    assert (loaded.refresh_token, loaded.access_token) == ("rt-secret-1", "at-secret-1")
    assert (loaded.athlete_id, loaded.scope, loaded.expires_at) == (
        4242,
        "read,activity:read_all",
        2_000_000_000,
    )
    ((refresh, access, athlete_id),) = _rows(
        shared_database_url,
        "SELECT refresh_token, access_token, athlete_id FROM strava_shared.tokens",
    )
    assert athlete_id == 4242, "the receiver reads athlete ids in clear"
    assert "rt-secret" not in refresh
    assert "at-secret" not in access
    assert refresh.startswith("gAAAAA"), "a Fernet token"
    assert store.athlete_ids() == {4242}
    assert stored_athlete_ids(SharedDatabase(shared_database_url)) == {4242}, "without keys"


def test_a_wrong_or_missing_key_is_one_line_without_the_secret(
    shared_database_url, monkeypatch, token_keys
):
    store = _store(shared_database_url)
    with store.locked():
        store.save(StoredTokens(refresh_token="rt-secret-2"))
    monkeypatch.setenv(KEYS_ENV, new_key())
    with pytest.raises(StravaConfigError) as wrong:
        _store(shared_database_url).load()
    assert "cannot be decrypted with any key of TAP_STRAVA_TOKEN_KEYS" in str(wrong.value)
    assert "rt-secret" not in str(wrong.value)
    assert token_keys not in str(wrong.value)
    monkeypatch.delenv(KEYS_ENV)
    with pytest.raises(StravaConfigError, match="TAP_STRAVA_TOKEN_KEYS is not"):
        _store(shared_database_url)
    monkeypatch.setenv(KEYS_ENV, "not-a-key")
    with pytest.raises(StravaConfigError, match="Key 1 of TAP_STRAVA_TOKEN_KEYS is not a Fernet"):
        _store(shared_database_url)


def test_rotate_keys_reencrypts_every_row_before_the_old_key_goes(
    shared_database_url, monkeypatch, token_keys
):
    old = token_keys
    for index in range(3):
        store = _store(shared_database_url, f"configured-{index}")
        with store.locked():
            store.save(StoredTokens(refresh_token=f"rt-{index}", access_token=f"at-{index}"))
    fresh = new_key()
    monkeypatch.setenv(KEYS_ENV, f"{fresh},{old}")
    assert rotate_keys(SharedDatabase(shared_database_url)) == 3
    monkeypatch.setenv(KEYS_ENV, fresh)  # the old key dropped
    for index in range(3):
        loaded = _store(shared_database_url, f"configured-{index}").load()
        assert loaded is not None
        assert (loaded.refresh_token, loaded.access_token) == (f"rt-{index}", f"at-{index}")


def test_the_admin_command_rotates_and_says_a_missing_key_in_one_line(
    shared_database_url, token_keys
):
    env = {"TAP_STRAVA_SHARED_DATABASE_URL": shared_database_url, "PATH": ""}
    command = [sys.executable, "-m", "tap_strava.shared_admin"]
    done = subprocess.run(
        [*command, "rotate-keys"],
        env={**env, KEYS_ENV: token_keys},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Re-encrypted 0 token row(s)" in done.stdout
    missing = subprocess.run(
        [*command, "rotate-keys"], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0, "one line"
    assert "TAP_STRAVA_TOKEN_KEYS is not" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_an_unreachable_database_is_one_line_without_the_password(token_keys):
    url = "postgresql://someone:hunter2secret@127.0.0.1:1/nowhere"
    with pytest.raises(StravaConfigError) as failed:
        _store(url).load()
    message = str(failed.value)
    assert message.startswith("Cannot connect to the shared database 127.0.0.1:1/nowhere")
    assert "hunter2secret" not in message


def test_the_facts_cache_and_quota_reading_live_in_the_database(shared_database_url):
    facts = PostgresSharedFacts(SharedDatabase(shared_database_url))
    now = int(time.time())
    facts.cache(7, PROFILE, {"id": 7, "firstname": "Ann"}, now)
    facts.cache_gear(7, "b1", {"id": "b1"}, now)
    facts.cache(8, PROFILE, {"id": 8}, now - 8 * 86400)  # older than Strava's 7 days
    facts.add_archive_track_ids(7, {3, 1})
    facts.save_quota({"server_time": now, "read_usage": [3, 30]})
    other = PostgresSharedFacts(SharedDatabase(shared_database_url))  # another worker
    cached = other.cached(7, PROFILE)
    assert cached is not None
    assert cached.body["firstname"] == "Ann"
    assert set(other.cached_gear(7)) == {"b1"}
    assert other.cached(8, PROFILE) is None, "never served past 7 days"
    assert other.archive_track_ids(7) == {1, 3}
    assert other.quota()["read_usage"] == [3, 30]
    assert other.forget_athlete(7)
    assert other.athlete(7) == {}


def test_concurrent_reservations_never_exceed_a_window(shared_database_url):
    """Eight threads, each with its own connection, race for a window of 30."""
    database = SharedDatabase(shared_database_url)
    seed = QuotaLedger(database, window_seconds=3600, reserve_percent=0)
    seed.correct(_snapshot(used=0, limit=30))
    granted: list[int] = []

    def worker() -> None:
        ledger = QuotaLedger(database, window_seconds=3600, reserve_percent=0)
        granted.append(sum(ledger.reserve(EVENTS) is None for _ in range(20)))
        ledger.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 8
    assert sum(granted) == 30, granted
    (short,) = [w for w in seed.windows() if w["kind"] == "short"]
    assert short["used"] == short["reserved"] == 30


def test_priorities_keep_a_reserve_for_events_and_headers_correct_the_ledger(
    shared_database_url,
):
    ledger = QuotaLedger(SharedDatabase(shared_database_url), window_seconds=3600)
    assert ledger.reserve(BACKFILL) is None, "limits unknown: one request probes them"
    probe_refusal = ledger.reserve(DAILY)
    assert probe_refusal is not None
    assert probe_refusal.limit is None
    ledger.correct(_snapshot(used=1, limit=20))
    assert caps(20, EVENTS, 10) == 20
    assert caps(20, DAILY, 10) == 18
    assert caps(20, BACKFILL, 10) == 16
    taken = 1
    while ledger.reserve(BACKFILL) is None:
        taken += 1
    assert taken == 16, "backfills stop short of twice the reserve"
    assert ledger.reserve(DAILY) is None
    assert ledger.reserve(DAILY) is None
    assert ledger.reserve(DAILY) is not None, "daily polls stop short of the reserve"
    assert ledger.reserve(EVENTS) is None
    assert ledger.reserve(EVENTS) is None
    refusal = ledger.reserve(EVENTS)
    assert refusal is not None
    assert refusal.window == "short"
    assert refusal.used == 20
    assert 0 < refusal.seconds_left <= 3600
    # Another app user's requests, seen in a header: the larger count wins.
    other = QuotaLedger(SharedDatabase(shared_database_url), window_seconds=3600)
    other.correct(_snapshot(used=5, limit=20))
    (short,) = [w for w in other.windows() if w["kind"] == "short"]
    assert short["used"] == 20, "a smaller header never lowers the ledger"
    other.correct(_snapshot(used=25, limit=20), rate_limited=True)
    (short,) = [w for w in other.windows() if w["kind"] == "short"]
    assert (short["used"], short["rate_limited"]) == (25, 1)


def test_a_tap_run_keeps_its_tokens_facts_and_quota_in_the_shared_database(
    tmp_path, shared_database_url, token_keys
):
    with StravaSimulator(seed=4, activity_count=30) as sim:
        config = tap_config_for(sim, tmp_path, shared_database_url=shared_database_url)
        result = run_tap(config, streams=["athlete", "activities", "activity_details"])
        assert result.records("athlete"), result.lines[-3:]
        api = [r for r in sim.requests if r["path"].startswith("/api/v3")]
    assert not (tmp_path / "tokens").exists(), "no file beside token_store_path"
    ((athlete_id, refresh),) = _rows(
        shared_database_url, "SELECT athlete_id, refresh_token FROM strava_shared.tokens"
    )
    assert athlete_id == sim.athlete_id
    assert sim.refresh_token not in refresh
    facts = backends.shared_facts(config)
    assert facts.cached(sim.athlete_id, PROFILE) is not None
    assert facts.quota().get("read_usage"), "the quota reading is kept for the next run"
    reserved = sum(
        w["reserved"]
        for w in QuotaLedger(SharedDatabase(shared_database_url)).windows()
        if w["kind"] == "short"
    )
    assert reserved == len(api), "every API request took its place in the ledger first"


def _snapshot(*, used: int, limit: int, at: float | None = None) -> RateLimitSnapshot:
    return RateLimitSnapshot(
        limit=WindowPair(limit * 2, limit * 100),
        usage=WindowPair(used, used),
        read_limit=WindowPair(limit, limit * 50),
        read_usage=WindowPair(used, used),
        server_time=time.time() if at is None else at,
    )


@pytest.mark.usefixtures("auth_env")
def test_tap_strava_auth_seeds_the_shared_store_and_forgets_an_athlete_there(
    simulator, tmp_path, shared_database_url, token_keys, monkeypatch, capsys
):
    monkeypatch.setenv("TAP_STRAVA_SHARED_DATABASE_URL", shared_database_url)
    code, out, err = run_helper(monkeypatch, capsys, Browser())
    assert code == 0, err
    assert "Seeded the token store the shared database" in out
    assert not (tmp_path / "store" / "tokens.json").exists(), "not the file"
    store_keyed = PostgresTokenStore(
        SharedDatabase(shared_database_url),
        client_id=simulator.client_id,
        configured_refresh_token=simulator.refresh_token,
    )
    seeded = store_keyed.load()
    assert seeded is not None
    assert seeded.athlete_id == simulator.athlete_id
    assert "activity:read_all" in (seeded.scope or ""), "the reconcile's scope check reads it"
    code, out, err = run_helper(
        monkeypatch, capsys, Browser(act=False), "--forget-athlete", str(simulator.athlete_id)
    )
    assert code == 0, err
    assert "Removed 1 token chain(s)" in out
    assert store_keyed.load() is None


def test_strava_forget_athlete_finds_and_removes_the_athlete_in_the_shared_database(
    shared_database_url, token_keys, tmp_path
):
    from strava_data import forget, places

    for chain, athlete in (("mine", 11), ("other", 12)):
        store = _store(shared_database_url, chain)
        with store.locked():
            store.save(StoredTokens(refresh_token=f"rt-{chain}", athlete_id=athlete))
    PostgresSharedFacts(SharedDatabase(shared_database_url)).cache(
        11, PROFILE, {"id": 11}, int(time.time())
    )
    where = forget.Places(
        postgres={},
        output=tmp_path,
        duckdb=None,
        spools=[],
        logs=tmp_path,
        receiver_sqlite=tmp_path / "none.sqlite3",
        receiver_spool=tmp_path,
        token_store=None,
        shared_database=shared_database_url,
    )
    assert forget.stored_tokens(where, 11) == ["rt-mine"], "decrypted, to revoke at Strava"
    listed = places.shared_database_entries(shared_database_url, 11, apply=False)
    assert [(f.place, f.rows) for f in listed] == [
        ("strava_shared.athlete_facts", 1),
        ("strava_shared.tokens", 1),
    ]
    places.shared_database_entries(shared_database_url, 11, apply=True)
    assert places.shared_database_entries(shared_database_url, 11, apply=False) == []
    assert _rows(shared_database_url, "SELECT athlete_id FROM strava_shared.tokens") == [(12,)]


def test_a_club_of_token_stores_holds_no_connection_between_uses(shared_database_url, token_keys):
    """The events mode builds a store per athlete: idle stores keep no connection open.

    With a connection per store, a club of several hundred athletes would hold as many of
    PostgreSQL's ``max_connections`` (100 by default) for a whole run.
    """
    stores = [_store(shared_database_url, f"rt-{index}") for index in range(40)]
    for index, store in enumerate(stores):
        with store.locked():
            store.save(StoredTokens(refresh_token=f"rt-{index}-b", athlete_id=1000 + index))
        assert store.load() is not None
        store.remember_athlete(1000 + index)
        store.forget_access_token()
    assert stores[0].athlete_ids() == {1000 + index for index in range(40)}
    others = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert _rows(shared_database_url, others) == [(0,)], "forty idle stores, no connection"
    with stores[3].locked():  # the row lock's transaction keeps its connection
        assert _rows(shared_database_url, others) == [(1,)]
    assert _rows(shared_database_url, others) == [(0,)]


def test_a_window_another_worker_spent_stops_cleanly_before_any_request(
    tmp_path, shared_database_url, token_keys
):
    """The ledger says the app's 15-minute window is spent: no request, a clean stop."""
    with StravaSimulator(seed=4, activity_count=30) as sim:
        config = tap_config_for(sim, tmp_path, shared_database_url=shared_database_url)
        other_worker = QuotaLedger(SharedDatabase(shared_database_url))
        other_worker.correct(_snapshot(used=100, limit=100))
        result = run_tap(config, streams=["activities"])
        api = [r for r in sim.requests if r["path"].startswith("/api/v3")]
    assert result.error is None, "a spent quota is a clean stop, not a failure"
    assert api == [], "not one request sent into a spent window"
    (stop,) = set(quota_stops(result.final_state))
    assert "the app's 15-minute quota is spent for daily requests in the shared ledger" in stop


def test_a_window_that_opens_soon_is_waited_for(tmp_path, shared_database_url, token_keys, waits):
    with StravaSimulator(seed=4, activity_count=30, window_seconds=1) as sim:
        config = tap_config_for(
            sim,
            tmp_path,
            shared_database_url=shared_database_url,
            rate_limit_window_seconds=1,
            max_rate_limit_wait_seconds=15,
        )
        ledger = QuotaLedger(SharedDatabase(shared_database_url), window_seconds=1)
        # Another worker keeps spending each window until the tap has waited once, however
        # long a loaded machine takes to start the tap (a fixed number of windows spent
        # ahead ran out on one loaded run); then it stops and the next window is free.
        stop = threading.Event()

        def other_worker() -> None:
            deadline = time.monotonic() + 60
            while not waits and not stop.is_set() and time.monotonic() < deadline:
                for ahead in range(2):
                    ledger.correct(_snapshot(used=100, limit=100, at=time.time() + ahead))
                stop.wait(0.05)  # not time.sleep: the fixture records those as the tap's

        spender = threading.Thread(target=other_worker, daemon=True)
        spender.start()
        try:
            result = run_tap(config, streams=["activities"])
        finally:
            stop.set()
            spender.join(timeout=10)
        statuses = {r["status"] for r in sim.requests if r["path"].startswith("/api/v3")}
        assert set(result.ids()) == {a["id"] for a in sim.activities}
    assert waits, "the tap waited for the next window"
    assert all(w <= 2.1 for w in waits), waits
    assert statuses == {200}


def test_an_athlete_keeps_to_its_fair_share_while_another_is_active(shared_database_url):
    ledger = QuotaLedger(
        SharedDatabase(shared_database_url), window_seconds=3600, reserve_percent=0
    )
    ledger.correct(_snapshot(used=0, limit=20))
    alice, bob = 101, 202
    assert all(ledger.reserve(DAILY, alice) is None for _ in range(10)), "alone: all of it"
    assert ledger.reserve(DAILY, bob) is None
    refusal = ledger.reserve(DAILY, alice)
    assert refusal is not None, "Bob's unused half stays his"
    assert (refusal.window, refusal.used, refusal.cap) == ("fair", 10, 10)
    assert refusal.describe(DAILY).endswith(
        "their unused fair shares stay theirs (this athlete used 10 of its share of 10; the "
        "window holds 11 of 20)"
    ), "the line says what the window holds, not the athlete's share alone"
    assert 0 < refusal.seconds_left <= FAIR_WAIT_SECONDS
    assert ledger.reserve(EVENTS, alice) is None, "events take no notice of shares"
    assert all(ledger.reserve(BACKFILL, bob) is None for _ in range(8))
    spent = ledger.reserve(DAILY, bob)
    assert spent is not None
    assert (spent.window, spent.used) == ("short", 20)


def test_an_athlete_whose_poll_ended_stops_counting_for_the_share_in_a_short_window(
    shared_database_url,
):
    """Active means reserved within a fifteenth of the window (a minute of Strava's 15).

    With a shortened window (the simulator's) a fixed minute would keep an athlete whose
    poll ended long ago, in the window's terms, holding half of every window.
    """
    ledger = QuotaLedger(SharedDatabase(shared_database_url), window_seconds=45, reserve_percent=0)
    ledger.correct(_snapshot(used=0, limit=1000))
    for _ in range(50):  # stay clear of a window's turn (the share is per window)
        if 45 - time.time() % 45 > 12:
            break
        time.sleep(0.5)
    alice, bob = 101, 202
    assert ledger.reserve(DAILY, bob) is None  # bob's poll, then nothing
    time.sleep(3.3)  # past 45 / 15 = 3 s: bob is no longer active
    assert all(ledger.reserve(DAILY, alice) is None for _ in range(600)), (
        "alone in the window again: more than half of it"
    )


def test_a_run_for_one_athlete_of_a_large_club_holds_few_connections(
    tmp_path, shared_database_url, token_keys
):
    """A club's configuration lists every athlete: a run for one must not open a database
    connection per listed athlete (four such runs at once exhausted a server's 100)."""
    database = shared_database_url.split("?", 1)[0].rsplit("/", 1)[-1]
    count = (
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' "
        "AND pid <> pg_backend_pid()"
    )
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # the most connections the run holds at any moment
        with psycopg.connect(shared_database_url.replace("+psycopg", ""), autocommit=True) as c:
            while not done.is_set():
                seen.append(c.execute(count).fetchone()[0])

    with StravaSimulator(seed=6, activity_count=5) as sim:
        for seed in range(7, 31):
            sim.add_athlete(seed=seed, activity_count=1)
        config = tap_config_for(sim, tmp_path, shared_database_url=shared_database_url)
        del config["refresh_token"]
        config["athletes"] = [
            {"name": f"a{n}", "refresh_token": a.refresh_token} for n, a in enumerate(sim.athletes)
        ]
        for athlete in sim.athletes:  # what the Connect page or tap-strava-auth leaves
            store = backends.token_store(
                config, client_id=sim.client_id, configured_refresh_token=athlete.refresh_token
            )
            store.save(
                StoredTokens(refresh_token=athlete.refresh_token, athlete_id=athlete.athlete_id)
            )
            store.close()
        wanted = sim.athletes[3]
        config["athlete_ids"] = [wanted.athlete_id]
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            result = run_tap(config, streams=["activities"])
        finally:
            done.set()
            watcher.join()
    assert {r["athlete_id"] for r in result.records("activities")} == {wanted.athlete_id}
    assert len(seen) > 10, "the watcher looked while the run went on"
    # The chosen athlete's store, the facts cache, the ledger and one being opened at most:
    # not one per listed athlete (25 here).
    assert max(seen) <= 4, max(seen)


def test_a_club_without_tokens_in_its_configuration_syncs_the_stores_athletes(
    tmp_path, shared_database_url, token_keys
):
    """A club's configuration holds the app's credentials only: whoever connected (their
    chain in the shared store, as the Connect page leaves it) is synced, and athlete_ids
    picks one of them; an id the store does not hold is still one line."""
    with StravaSimulator(seed=8, activity_count=12) as sim:
        sim.add_athlete(seed=9, activity_count=7)
        ann, bob = sim.athletes
        config = tap_config_for(sim, tmp_path, shared_database_url=shared_database_url)
        del config["refresh_token"]
        for athlete in (ann, bob):  # what the Connect page stores: the chain, the id
            store = backends.token_store(
                config, client_id=sim.client_id, configured_refresh_token=athlete.refresh_token
            )
            store.save(
                StoredTokens(refresh_token=athlete.refresh_token, athlete_id=athlete.athlete_id)
            )
            store.close()

        one = run_tap({**config, "athlete_ids": [bob.athlete_id]}, streams=["activities"])
        assert {r["id"] for r in one.records("activities")} == {a["id"] for a in bob.activities}
        both = run_tap(config, streams=["activities"])
        by_owner: dict[int, set[int]] = {}
        for record in both.records("activities"):
            by_owner.setdefault(record["athlete_id"], set()).add(record["id"])
        assert by_owner == {
            a.athlete_id: {activity["id"] for activity in a.activities} for a in (ann, bob)
        }
        with pytest.raises(StravaConfigError, match="no configured token belongs to athlete 77"):
            run_tap({**config, "athlete_ids": [77]}, streams=["activities"])
