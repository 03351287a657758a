"""One push event: its strict validation, its canonical form and its dedupe key.

Strava's events are not signed, so the body is untrusted input: it is parsed only when
small, and accepted only in the documented shape (seven fields of the documented types,
known object and aspect types, ``updates`` a small flat object of strings). An event is
no more than a trigger ("look at activity X of athlete Y"); nothing in it is applied as
data.

The dedupe key is a hash of the whole canonical event, ``updates`` included: Strava
delivers an event up to three times (the same key, stored once), and one save can produce
several events that differ only in ``updates`` (distinct keys, all stored).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing as t

OBJECT_TYPES = frozenset({"activity", "athlete"})
ASPECT_TYPES = frozenset({"create", "update", "delete"})
FIELDS = (
    "aspect_type",
    "event_time",
    "object_id",
    "object_type",
    "owner_id",
    "subscription_id",
    "updates",
)
MAX_ID = 2**63 - 1
#: 2001-09-09 .. 2106-02-07: an event time outside is no Unix time Strava sends.
MIN_EVENT_TIME = 1_000_000_000
MAX_EVENT_TIME = 2**32 - 1
MAX_UPDATE_KEYS = 16
MAX_UPDATE_KEY_LENGTH = 64
#: A title is at most a few hundred characters; a description does not travel in events.
MAX_UPDATE_VALUE_LENGTH = 1000
#: Keys of a later Strava version are tolerated (and dropped) up to this many.
MAX_UNKNOWN_FIELDS = 8
_UPDATE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class EventError(ValueError):
    """The body is not a Strava push event; the message says which rule it broke."""


@dataclasses.dataclass(frozen=True)
class Event:
    """A validated push event."""

    object_type: str
    object_id: int
    aspect_type: str
    owner_id: int
    subscription_id: int
    event_time: int
    updates: dict[str, str]

    def as_dict(self) -> dict[str, t.Any]:
        """The event's fields, as Strava sent them (the documented ones only)."""
        return {
            "aspect_type": self.aspect_type,
            "event_time": self.event_time,
            "object_id": self.object_id,
            "object_type": self.object_type,
            "owner_id": self.owner_id,
            "subscription_id": self.subscription_id,
            "updates": dict(sorted(self.updates.items())),
        }

    def canonical(self) -> str:
        """One JSON text per event: sorted keys, no spaces (what the key hashes)."""
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """The dedupe key: SHA-256 of the canonical event, 64 hex digits."""
        return hashlib.sha256(self.canonical().encode("utf-8")).hexdigest()


def _id(document: dict[str, t.Any], name: str) -> int:
    value = document[name]
    # bool is an int in Python; JSON true is no id.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_ID:
        msg = f"{name} must be a positive integer"
        raise EventError(msg)
    return value


def _updates(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        msg = "updates must be an object"
        raise EventError(msg)
    if len(value) > MAX_UPDATE_KEYS:
        msg = f"updates has more than {MAX_UPDATE_KEYS} keys"
        raise EventError(msg)
    updates: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > MAX_UPDATE_KEY_LENGTH or not _UPDATE_KEY_RE.match(key):
            msg = "an updates key is not a short identifier"
            raise EventError(msg)
        if not isinstance(item, str) or len(item) > MAX_UPDATE_VALUE_LENGTH:
            msg = f"updates values must be strings of at most {MAX_UPDATE_VALUE_LENGTH} characters"
            raise EventError(msg)
        updates[key] = item
    return updates


def parse_event(body: bytes) -> tuple[Event, list[str]]:
    """The event in a POST body, and the names of unknown top-level keys it dropped.

    Raises :class:`EventError` for anything else than the documented shape.
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        msg = "the body is not JSON"
        raise EventError(msg) from exc
    return validate_event(document)


def _no_constant(name: str) -> t.NoReturn:
    msg = f"{name} is not JSON"
    raise EventError(msg)


def validate_event(document: object) -> tuple[Event, list[str]]:
    """Check a decoded body against the documented event shape."""
    if not isinstance(document, dict):
        msg = "the body is not a JSON object"
        raise EventError(msg)
    missing = [name for name in FIELDS if name not in document]
    if missing:
        msg = f"missing field {missing[0]}"
        raise EventError(msg)
    unknown = sorted(str(name) for name in document if name not in FIELDS)
    if len(unknown) > MAX_UNKNOWN_FIELDS:
        msg = "too many unknown fields"
        raise EventError(msg)
    object_type = document["object_type"]
    if object_type not in OBJECT_TYPES:
        msg = "object_type must be activity or athlete"
        raise EventError(msg)
    aspect_type = document["aspect_type"]
    if aspect_type not in ASPECT_TYPES:
        msg = "aspect_type must be create, update or delete"
        raise EventError(msg)
    event_time = document["event_time"]
    if (
        not isinstance(event_time, int)
        or isinstance(event_time, bool)
        or not MIN_EVENT_TIME <= event_time <= MAX_EVENT_TIME
    ):
        msg = "event_time must be Unix seconds"
        raise EventError(msg)
    event = Event(
        object_type=object_type,
        object_id=_id(document, "object_id"),
        aspect_type=aspect_type,
        owner_id=_id(document, "owner_id"),
        subscription_id=_id(document, "subscription_id"),
        event_time=event_time,
        updates=_updates(document["updates"]),
    )
    if event.object_type == "athlete" and event.object_id != event.owner_id:
        msg = "an athlete event must name its owner as object_id"
        raise EventError(msg)
    return event, [name[:40] for name in unknown]


def event_from_dict(document: dict[str, t.Any]) -> Event:
    """An event read back from the store or the spool (written by this package)."""
    event, _unknown = validate_event(document)
    return event
