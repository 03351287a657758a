"""The tap's side of push events: the receiver's queue, read over HTTP, and what it holds.

Strava POSTs an event to the receiver (``strava-events serve``) within seconds of an
activity created, updated or deleted and of an athlete revoking the app. The receiver
stores it; the tap's events mode (``events_url``) reads the pending ones through the
receiver's small authenticated HTTP interface, so the tap needs no database driver.

Events are not signed and the receiver only filtered them: every field is validated here
again, and an event is never more than "look at activity X of athlete Y" (the tap fetches
X with Y's token before it emits anything).

Acknowledgement: an event is acknowledged only by the run that *starts* from a state
listing it (``applied_events`` of ``event_receipts``): Meltano saves that state only once
the target committed what the event caused, so a crash replays the event, harmlessly.
"""

from __future__ import annotations

import dataclasses
import datetime
import typing as t

import requests

from tap_strava.answer_size import DEFAULT_MAX_ANSWER_MIB, cap_answer_size
from tap_strava.errors import StravaConfigError

# Bounds on what the receiver may hand over (it is a local service, but a bug or a
# compromised receiver must not make the tap allocate without limit).
MAX_PENDING = 1000
MAX_KEY_LENGTH = 128
MAX_UPDATES = 16
MAX_UPDATE_TEXT = 1000
OBJECT_TYPES = frozenset({"activity", "athlete"})
ASPECT_TYPES = frozenset({"create", "update", "delete"})


@dataclasses.dataclass(frozen=True)
class PushEvent:
    """One validated event: what it says happened, and the receiver's key for it."""

    key: str
    object_type: str
    object_id: int
    aspect_type: str
    owner_id: int
    subscription_id: int
    event_time: int
    updates: dict[str, str]
    received_at: str | None

    @property
    def is_revocation(self) -> bool:
        """An athlete withdrew the app's access (``updates: {"authorized": "false"}``)."""
        return (
            self.object_type == "athlete"
            and self.aspect_type == "update"
            and self.updates.get("authorized") == "false"
        )


class InvalidEvent(ValueError):
    """An entry of the receiver's answer that is not a well-formed Strava event."""


def _int(raw: t.Mapping[str, t.Any], name: str) -> int:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        msg = f"{name} must be a positive integer, got {str(value)[:40]!r}"
        raise InvalidEvent(msg)
    return value


def parse_event(entry: t.Any) -> PushEvent:
    """Validate one pending entry (``{"key", "received_at", "event": {...}}``).

    Raises :class:`InvalidEvent` naming the first problem; the caller skips the entry
    with a warning and acknowledges it, since it can never become valid.
    """
    if not isinstance(entry, dict):
        msg = "an entry is not an object"
        raise InvalidEvent(msg)
    key = entry.get("key")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        msg = "key must be a non-empty string of at most 128 characters"
        raise InvalidEvent(msg)
    event = entry.get("event")
    if not isinstance(event, dict):
        msg = f"event {key}: no event object"
        raise InvalidEvent(msg)
    object_type, aspect_type = event.get("object_type"), event.get("aspect_type")
    if object_type not in OBJECT_TYPES or aspect_type not in ASPECT_TYPES:
        msg = f"event {key}: unknown object_type/aspect_type {object_type!r}/{aspect_type!r}"
        raise InvalidEvent(msg)
    updates = event.get("updates") or {}
    if not isinstance(updates, dict) or len(updates) > MAX_UPDATES:
        msg = f"event {key}: updates must be a small object"
        raise InvalidEvent(msg)
    clean_updates: dict[str, str] = {}
    for name, value in updates.items():
        if not isinstance(name, str) or len(name) > 64:
            msg = f"event {key}: an updates key is not a short string"
            raise InvalidEvent(msg)
        text = value if isinstance(value, str) else str(value)
        clean_updates[name] = text[:MAX_UPDATE_TEXT]
    received_at = utc_instant(entry.get("received_at"))
    try:
        return PushEvent(
            key=key,
            object_type=str(object_type),
            object_id=_int(event, "object_id"),
            aspect_type=str(aspect_type),
            owner_id=_int(event, "owner_id"),
            subscription_id=_int(event, "subscription_id"),
            event_time=_int(event, "event_time"),
            updates=clean_updates,
            received_at=received_at,
        )
    except InvalidEvent as exc:
        msg = f"event {key}: {exc}"
        raise InvalidEvent(msg) from None


def utc_instant(value: t.Any) -> str | None:
    """The receiver's receive time as RFC 3339 in UTC (``...T22:09:00.123456Z``), or None.

    The receiver sends RFC 3339 with a ``Z``; epoch seconds (its own storage, an older or
    another receiver) are read too. Anything else is not a time: None, rather than text
    in a timestamp column (``event_receipts.received_at`` is a ``date-time`` since
    issue 25). A value without an offset is taken as UTC, the receiver's zone.
    """
    moment: datetime.datetime | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 0 <= value < 2**37:  # a finite epoch, within datetime's range
            moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
    if moment is None:
        return None
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventInbox:
    """The receiver's tap-facing interface: pending events and acknowledgements.

    Plain ``requests`` with a timeout and no retry loop of its own beyond one: the
    receiver is a local service, and a run that cannot reach it fails with one line (the
    events stay queued; nothing is lost).
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        # The receiver's answers are read under the API's size cap too (answer_size.py).
        self._session = cap_answer_size(requests.Session(), DEFAULT_MAX_ANSWER_MIB)

    def _call(self, method: str, path: str, **kwargs: t.Any) -> t.Any:
        url = f"{self.base_url}{path}"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            response = self._session.request(
                method, url, headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            msg = (
                f"cannot reach the event receiver at {url} ({type(exc).__name__}): is "
                "`strava-events serve` running, and is events_url right? The events stay "
                "queued there"
            )
            raise StravaConfigError(msg) from None
        if response.status_code in (401, 403):
            msg = (
                f"the event receiver at {url} refused the token (HTTP "
                f"{response.status_code}): events_token must equal the receiver's "
                "STRAVA_EVENTS_TAP_TOKEN"
            )
            raise StravaConfigError(msg)
        if response.status_code >= 400:
            msg = (
                f"the event receiver at {url} answered HTTP {response.status_code}: "
                f"{' '.join(response.text.split())[:200]}; see its log"
            )
            raise StravaConfigError(msg)
        try:
            return response.json()
        except ValueError:
            msg = f"the event receiver at {url} did not answer JSON: is events_url right?"
            raise StravaConfigError(msg) from None

    def pending(self, limit: int = MAX_PENDING) -> list[t.Any]:
        """The unacknowledged entries, oldest received first, at most ``limit``."""
        body = self._call("GET", "/events/pending", params={"limit": min(limit, MAX_PENDING)})
        entries = body.get("events") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            msg = "the event receiver's pending answer has no events list: versions differ?"
            raise StravaConfigError(msg)
        return entries[:MAX_PENDING]

    def acknowledge(self, keys: t.Iterable[str]) -> None:
        """Mark events done (idempotent: the receiver ignores keys it no longer has)."""
        keys = [key for key in keys if isinstance(key, str)]
        if keys:
            self._call("POST", "/events/ack", json={"keys": keys})
