"""The receiver's pending events, as the club's events sensor sees them.

The events run itself is the tap's events mode (strava_club.sync.sync_events); the sensor
only asks the receiver's tap interface whether anything waits, with the same URL and
bearer token (``STRAVA_CLUB_EVENTS_CONFIG``'s file: ``events_url``, ``events_token``).
Nothing of the answer but its count is kept: events carry titles, and Dagster stores a
sensor's cursor and skip reasons in clear.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from strava_club.settings import ClubSettings, ClubSettingsError, read_json

#: How many pending events the sensor asks for: it only needs to know whether any wait.
PROBE_LIMIT = 1


class ReceiverUnreachable(Exception):
    """The receiver did not answer the pending query (one line naming the fix)."""


def events_endpoint(settings: ClubSettings) -> tuple[str, str]:
    """The receiver's tap interface and its bearer token, from the events config file."""
    if settings.events_config is None:
        msg = "STRAVA_CLUB_EVENTS_CONFIG is not set: the club has no events run"
        raise ClubSettingsError(msg)
    config = read_json(settings.events_config, "STRAVA_CLUB_EVENTS_CONFIG")
    url = str(config.get("events_url") or "").rstrip("/")
    token = str(config.get("events_token") or "")
    if not url.startswith(("http://", "https://")) or not token:
        msg = (
            f"STRAVA_CLUB_EVENTS_CONFIG: {settings.events_config} needs events_url (the "
            "receiver's tap interface, http://HOST:PORT/tap) and events_token"
        )
        raise ClubSettingsError(msg)
    return url, token


def pending_events(settings: ClubSettings, timeout: float = 10.0) -> int:
    """How many events wait in the receiver (at most :data:`PROBE_LIMIT`)."""
    url, token = events_endpoint(settings)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        f"{url}/events/pending?limit={PROBE_LIMIT}",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            body = json.loads(answer.read(1_000_000))
    except (OSError, ValueError) as exc:
        reason = exc.code if isinstance(exc, urllib.error.HTTPError) else type(exc).__name__
        msg = (
            f"the receiver's tap interface {url} did not answer the pending events ({reason}): "
            "check that strava-events serve runs and events_token is its STRAVA_EVENTS_TAP_TOKEN"
        )
        raise ReceiverUnreachable(msg) from None
    events = body.get("events") if isinstance(body, dict) else None
    return len(events) if isinstance(events, list) else 0
