"""The receiver's "Connect with Strava" page: a club's athletes authorize the app themselves.

A real receiver (Hypercorn on 127.0.0.1) and the simulator's consent page, walked by an
HTTP client that keeps cookies like a browser. What a club's organiser checks: an athlete
who clicks through is in the project's ``.env`` and token store (the tap then syncs them,
the receiver accepts their events at once), and every refusal (declined, a box unticked,
a reused code, a link from another browser, a stale one, a flood) is one line on the page
and stores nothing. No token ever shows on a page or in the log.
"""

from __future__ import annotations

import html
import json
import logging
import re
import typing as t
import urllib.parse

import httpx
import pytest

from strava_events import server
from strava_events.connect import PendingStates
from strava_events.settings import SettingsError, load_settings
from strava_simulator import StravaSimulator
from tap_strava.dotenv_file import read_env_file
from tap_strava.token_store import TokenStore
from tests.support import run_tap
from tests.test_events_support import (
    ATHLETE,
    CALLBACK_PATH,
    SUBSCRIPTION_ID,
    TAP_TOKEN,
    VERIFY_TOKEN,
    Served,
    event,
)

if t.TYPE_CHECKING:
    from pathlib import Path


def connect_env(sim: StravaSimulator, project: Path, public_url: str) -> dict[str, str]:
    """What a club's .env holds for the page (the receiver's usual settings, plus three)."""
    return {
        "MELTANO_PROJECT_ROOT": str(project),
        "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
        "STRAVA_EVENTS_CALLBACK_PATH": CALLBACK_PATH,
        "STRAVA_EVENTS_TAP_TOKEN": TAP_TOKEN,
        "STRAVA_EVENTS_SUBSCRIPTION_ID": str(SUBSCRIPTION_ID),
        "STRAVA_EVENTS_ATHLETE_IDS": str(ATHLETE),
        "STRAVA_EVENTS_TOKEN_STORE": str(project / "tokens" / "tokens.json"),
        "STRAVA_EVENTS_SQLITE_PATH": str(project / "events.sqlite3"),
        "STRAVA_EVENTS_SPOOL_DIR": str(project / "spool"),
        "STRAVA_EVENTS_STATE_DIR": str(project / "state"),
        "STRAVA_EVENTS_CONNECT_URL": public_url,
        "TAP_STRAVA_CLIENT_ID": sim.client_id,
        "TAP_STRAVA_CLIENT_SECRET": sim.client_secret,
        "TAP_STRAVA_TOKEN_URL": sim.token_url,
    }


def shared_store_env(
    sim: StravaSimulator, project: Path, public_url: str, shared_url: str
) -> dict[str, str]:
    """A club's receiver on the shared store: no athlete list, no token file."""
    env = connect_env(sim, project, public_url)
    del env["STRAVA_EVENTS_TOKEN_STORE"], env["STRAVA_EVENTS_ATHLETE_IDS"]
    env["TAP_STRAVA_SHARED_DATABASE_URL"] = shared_url
    return env


@pytest.fixture
def club(tmp_path):
    """The simulator with three athletes, and a receiver serving the page for its app."""
    with StravaSimulator(seed=41, activity_count=6) as sim:
        sim.add_athlete(seed=42, activity_count=4)
        sim.add_athlete(seed=43, activity_count=3)
        project = tmp_path / "project"
        project.mkdir()
        (project / ".env").write_text("# the club's project\nTAP_STRAVA_START_DATE=2000-01-01\n")
        public = server.listen("127.0.0.1", 0)
        url = f"http://127.0.0.1:{public.getsockname()[1]}"
        settings = load_settings(connect_env(sim, project, url))
        with Served(settings, public) as receiver:
            yield sim, receiver, project


def browser() -> httpx.Client:
    """A browser: keeps cookies, follows the receiver's and Strava's redirects."""
    return httpx.Client(follow_redirects=True, timeout=10)


def outcome(page: httpx.Response) -> str:
    """The page's one line."""
    match = re.search(r"<p id=outcome>(.*?)</p>", page.text)
    assert match, page.text
    return html.unescape(match.group(1))


def athletes_in_env(project: Path) -> list[dict[str, str]]:
    raw = read_env_file(project / ".env").get("TAP_STRAVA_ATHLETES")
    return json.loads(raw) if raw else []


def test_two_athletes_connect_and_are_synced_and_heard(club, tmp_path, caplog):
    sim, receiver, project = club
    _, bob, cy = sim.athletes
    caplog.set_level(logging.DEBUG)
    pages = []
    for athlete in (bob, cy):
        sim.set_consenting_athlete(athlete)
        with browser() as b:
            page = b.get(f"{receiver.url}/connect")
        assert page.status_code == 200, page.text
        assert outcome(page).startswith(f"Connected athlete {athlete.athlete_id}")
        pages.append(page.text)

    entries = athletes_in_env(project)
    assert [e["name"] for e in entries] == [f"athlete-{bob.athlete_id}", f"athlete-{cy.athlete_id}"]
    # The tokens stored are the ones Strava issued to each athlete (the newest chain).
    assert [e["refresh_token"] for e in entries] == [bob.refresh_token, cy.refresh_token]
    assert read_env_file(project / ".env")["TAP_STRAVA_START_DATE"] == "2000-01-01"
    assert (project / ".env").stat().st_mode & 0o777 == 0o600
    store = TokenStore(
        project / "tokens" / "tokens.json", client_id="", configured_refresh_token=""
    )
    assert store.athlete_ids() == {bob.athlete_id, cy.athlete_id}
    assert receiver.apps.connect is not None
    assert receiver.apps.connect.connected == [bob.athlete_id, cy.athlete_id]
    for secret in (bob.refresh_token, cy.refresh_token, sim.client_secret):
        assert secret not in "".join(pages) + caplog.text

    # The receiver accepts their events at once (no restart, no wait for the store).
    answer = httpx.post(
        f"{receiver.url}/{CALLBACK_PATH}", json=event(owner_id=cy.athlete_id), timeout=10
    )
    assert answer.status_code == 200
    waiting = httpx.get(
        f"{receiver.tap_url}/tap/events/pending",
        headers={"Authorization": f"Bearer {TAP_TOKEN}"},
        timeout=10,
    ).json()
    assert [e["event"]["owner_id"] for e in waiting["events"]] == [cy.athlete_id], waiting

    # The tap, configured from that .env, syncs both athletes with the seeded tokens.
    config = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "athletes": entries,
        "api_url": sim.api_url,
        "token_url": sim.token_url,
        "token_store_path": str(project / "tokens" / "tokens.json"),
        "max_rate_limit_wait_seconds": 5,
    }
    synced = run_tap(config, streams=["activities"])
    by_owner: dict[int, set[int]] = {}
    for record in synced.records("activities"):
        by_owner.setdefault(record["athlete_id"], set()).add(record["id"])
    assert by_owner == {
        bob.athlete_id: {a["id"] for a in bob.store.summaries()},
        cy.athlete_id: {a["id"] for a in cy.store.summaries()},
    }
    # No refresh was needed: the first run used the access tokens the page stored.
    assert sim.token_grants == []


def test_a_club_on_the_shared_store_connects_without_any_file(
    tmp_path, shared_database_url, token_keys, monkeypatch
):
    """With the shared database, the page stores into it alone, and any receiver hears them.

    No token goes to the project's .env or a token file (a second machine could not read
    them, and a copy would go stale at the first rotation); the tap, with no token
    configured, syncs every athlete stored; a receiver started afterwards, which never saw
    the page, accepts their events from the store.
    """
    monkeypatch.setenv("TAP_STRAVA_SHARED_DATABASE_URL", shared_database_url)
    with StravaSimulator(seed=41, activity_count=6) as sim:
        bob = sim.add_athlete(seed=42, activity_count=4)
        project = tmp_path / "project"
        project.mkdir()
        env_text = "# the club's project\nTAP_STRAVA_START_DATE=2000-01-01\n"
        (project / ".env").write_text(env_text)
        public = server.listen("127.0.0.1", 0)
        url = f"http://127.0.0.1:{public.getsockname()[1]}"
        env = shared_store_env(sim, project, url, shared_database_url)
        with Served(load_settings(env), public) as receiver:
            sim.set_consenting_athlete(bob)
            with browser() as b:
                page = b.get(f"{receiver.url}/connect")
            assert outcome(page).startswith(f"Connected athlete {bob.athlete_id}"), page.text
        assert (project / ".env").read_text() == env_text, "no token in one machine's .env"
        assert not (project / "tokens").exists(), "no token file"

        env["STRAVA_EVENTS_SQLITE_PATH"] = str(tmp_path / "other.sqlite3")
        with Served(load_settings(env)) as other_machine:
            answer = httpx.post(
                f"{other_machine.url}/{CALLBACK_PATH}",
                json=event(owner_id=bob.athlete_id),
                timeout=10,
            )
            assert answer.status_code == 200
            waiting = httpx.get(
                f"{other_machine.tap_url}/tap/events/pending",
                headers={"Authorization": f"Bearer {TAP_TOKEN}"},
                timeout=10,
            ).json()
        assert [e["event"]["owner_id"] for e in waiting["events"]] == [bob.athlete_id]

        config = {
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "api_url": sim.api_url,
            "token_url": sim.token_url,
            "shared_database_url": shared_database_url,
            "max_rate_limit_wait_seconds": 5,
        }
        synced = run_tap(config, streams=["activities"])
        owners = {record["athlete_id"] for record in synced.records("activities")}
        assert owners == {bob.athlete_id}, "the tap syncs the athlete the page stored"
        assert sim.token_grants == [], "with the access token the page stored"


def test_each_refusal_is_one_line_and_stores_nothing(club):
    sim, receiver, project = club
    _, bob, cy = sim.athletes
    before = (project / ".env").read_text()

    sim.set_consenting_athlete(bob)
    sim.set_authorization(approve=False, athlete=bob)
    with browser() as b:
        declined = b.get(f"{receiver.url}/connect")
    assert declined.status_code == 400
    assert "You declined on Strava's page (error=access_denied)" in outcome(declined)

    sim.set_authorization(scope="read,activity:read,profile:read_all", athlete=bob)
    with browser() as b:
        partial = b.get(f"{receiver.url}/connect")
    assert partial.status_code == 400
    assert "the club needs 'View data about your private activities'" in outcome(partial)
    assert "activity:read_all" in outcome(partial)
    assert (project / ".env").read_text() == before
    assert not (project / "tokens" / "tokens.json").exists()

    # A link opened in another browser (no cookie) is refused, and the state is spent.
    sim.set_consenting_athlete(cy)
    with browser() as starter:
        to_strava = starter.get(f"{receiver.url}/connect", follow_redirects=False)
        back = httpx.get(to_strava.headers["location"], follow_redirects=False, timeout=10)
        return_url = back.headers["location"]
        other = httpx.get(return_url, timeout=10)
        assert other.status_code == 400
        assert "opened in another browser" in outcome(other)
        spent = starter.get(return_url)
    assert spent.status_code == 400, "a state is used once, even by a failed return"
    assert (project / ".env").read_text() == before

    # A reused code: Strava refuses it at the exchange.
    with browser() as b:
        done = b.get(f"{receiver.url}/connect")
        assert done.status_code == 200
        old_code = urllib.parse.parse_qs(urllib.parse.urlsplit(str(done.url)).query)["code"][0]
        fresh = b.get(f"{receiver.url}/connect", follow_redirects=False)
        state = urllib.parse.parse_qs(urllib.parse.urlsplit(fresh.headers["location"]).query)
        replay = b.get(
            f"{receiver.url}/connect/return",
            params={
                "state": state["state"][0],
                "code": old_code,
                "scope": "read,activity:read_all",
            },
        )
    assert replay.status_code == 400
    assert "Strava refused the authorization code" in outcome(replay)
    assert "already used; start again at" in outcome(replay)
    assert [e["name"] for e in athletes_in_env(project)] == [f"athlete-{cy.athlete_id}"]


def test_a_flood_of_starts_is_refused_and_bounded(club):
    _, receiver, _ = club
    with httpx.Client(timeout=10) as flood:
        codes = [flood.get(f"{receiver.url}/connect").status_code for _ in range(80)]
    assert codes.count(302) <= receiver.settings.limits.failure_burst + 5
    assert 429 in codes
    assert receiver.apps.connect is not None
    assert len(receiver.apps.connect.states) <= receiver.settings.limits.failure_burst + 5


def test_states_expire_are_used_once_and_bounded():
    now = [1000.0]
    states = PendingStates(ttl=600, limit=3, clock=lambda: now[0])
    first = states.issue("browser-a")
    assert not states.take(first, "browser-b"), "another browser's cookie"
    assert not states.take(first, "browser-a"), "used up by the failed attempt"
    second = states.issue("browser-a")
    now[0] += 601
    assert not states.take(second, "browser-a"), "expired"
    issued = [states.issue(f"b{i}") for i in range(5)]
    assert len(states) == 3
    assert not states.take(issued[0], "b0"), "the oldest was dropped to stay bounded"
    assert states.take(issued[4], "b4")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://club.example.org", "must be the receiver's https address"),
        ("https://club.example.org/connect", "must be the receiver's https address"),
        ("javascript:alert(1)", "must be the receiver's https address"),
    ],
)
def test_a_bad_connect_url_is_one_clear_line(tmp_path, url, expected):
    with StravaSimulator(seed=44, activity_count=1) as sim:
        env = connect_env(sim, tmp_path, url)
    with pytest.raises(SettingsError, match=expected) as caught:
        load_settings(env)
    assert "\n" not in str(caught.value)
    assert sim.client_secret not in str(caught.value)
