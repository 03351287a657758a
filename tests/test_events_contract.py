"""The receiver and the tap's client of it (`tap_strava.event_inbox`) agree on the wire.

Both sides were written at the same time against docs/events.md; this runs the tap's real
client against the real receiver, so a drift in paths or JSON shapes fails here.
"""

from __future__ import annotations

import httpx
import pytest

from tap_strava.errors import StravaConfigError
from tap_strava.event_inbox import EventInbox, parse_event
from tests.test_events_support import ATHLETE, CALLBACK_PATH, TAP_TOKEN, Served, event, settings_for


@pytest.fixture
def served(tmp_path):
    with Served(settings_for(tmp_path)) as server:
        yield server


def test_the_tap_reads_and_acknowledges_through_its_own_client(served):
    deauth = event(object_type="athlete", object_id=ATHLETE, updates={"authorized": "false"})
    for body in (event(object_id=1, aspect_type="create", updates={}), event(object_id=2), deauth):
        assert httpx.post(f"{served.url}/{CALLBACK_PATH}", json=body).status_code == 200

    inbox = EventInbox(f"{served.tap_url}/tap", TAP_TOKEN)
    entries = inbox.pending()
    parsed = [parse_event(entry) for entry in entries]
    assert [(e.aspect_type, e.object_id) for e in parsed] == [
        ("create", 1),
        ("update", 2),
        ("update", ATHLETE),
    ]
    assert parsed[1].updates == {"title": "Messy"}
    assert parsed[2].is_revocation
    assert all(e.received_at and e.received_at.endswith("Z") for e in parsed)

    inbox.acknowledge([parsed[0].key, parsed[1].key])
    inbox.acknowledge([parsed[0].key])  # the next run acknowledging again: harmless
    assert [parse_event(entry).key for entry in inbox.pending()] == [parsed[2].key]


def test_a_wrong_token_is_the_tap_s_one_line(served):
    inbox = EventInbox(f"{served.tap_url}/tap", "wrong-token-0123456789")
    with pytest.raises(StravaConfigError, match="refused the token"):
        inbox.pending()
