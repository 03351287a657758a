"""Handling push events: what each one causes, decided with one read per activity.

For each configured athlete (see :mod:`tap_strava.event_streams` for the streams that
emit the results):

- a create or an update: ``GET /activities/{id}`` with the owner's token (one read per
  activity, however many events name it); the answer becomes the activity's rows;
- a delete: the same GET must answer 404 with the owner's token, else it is ignored;
- a revocation (``authorized: "false"``): confirmed only if the athlete's token no longer
  works; then the athlete's tokens leave the token store and the rest of its events are
  acknowledged without a request.

An event is never more than "look at activity X of athlete Y": events are not signed.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from tap_strava.backends import forget_athlete
from tap_strava.dates import iso
from tap_strava.errors import StravaAuthError
from tap_strava.event_inbox import EventInbox, InvalidEvent, PushEvent, parse_event
from tap_strava.responses import StravaNotFound

if t.TYPE_CHECKING:
    import logging

    from tap_strava.athletes import StravaAccount

# One GET of an API path for an account, through a stream's SDK request machinery
# (``StravaStream.get_one``); raises StravaNotFound on a 404.
Getter = t.Callable[[str, "StravaAccount"], t.Any]

# In ``event_receipts``' stream state: keys of the events this run handled, acknowledged
# by the next run (which starts from this state, so after the target committed).
APPLIED_EVENTS_KEY = "applied_events"
RECEIPTS_STREAM = "event_receipts"

# What a run did with an event (the ``outcome`` column of event_receipts).
APPLIED = "applied"
DELETED = "deleted"
REVOKED = "revoked"
IGNORED = "ignored"


@dataclasses.dataclass
class Handled:
    """One event and what this run did with it."""

    event: PushEvent
    outcome: str
    reason: str = ""
    activity: dict[str, t.Any] | None = None  # the answer of GET /activities/{id}

    def receipt(self, processed_at: str) -> dict[str, t.Any]:
        """The ``event_receipts`` row: the event as received, and the run's verdict."""
        event = self.event
        return {
            "event_key": event.key,
            "received_at": event.received_at,
            "processed_at": processed_at,
            "object_type": event.object_type,
            "object_id": event.object_id,
            "aspect_type": event.aspect_type,
            "owner_id": event.owner_id,
            "subscription_id": event.subscription_id,
            "event_time": iso(event.event_time),
            "updates": json.dumps(event.updates, sort_keys=True),
            "outcome": self.outcome,
            "reason": self.reason or None,
        }


class EventRun:
    """The push events of one run: read once, handled per athlete, emitted by four streams."""

    def __init__(self, inbox: EventInbox, config: t.Mapping[str, t.Any]) -> None:
        self.inbox = inbox
        self.config = config
        self._by_owner: dict[int, list[PushEvent]] | None = None
        # Athlete id to what was done with its events; present once handling began.
        self._handled: dict[int, list[Handled]] = {}
        self.unowned: list[Handled] = []  # events of no configured athlete, or malformed
        self.carried: list[str] = []

    def load(
        self, previous_keys: list[str], athletes: t.Iterable[int], logger: logging.Logger
    ) -> None:
        """Acknowledge what the last committed run handled, then read the queue once."""
        if self._by_owner is not None:
            return
        self.inbox.acknowledge(previous_keys)
        known = set(athletes)
        self._by_owner = {}
        skip = set(previous_keys)
        limit = int(self.config.get("events_per_run") or 500)
        for entry in self.inbox.pending(limit):
            try:
                event = parse_event(entry)
            except InvalidEvent as exc:
                key = entry.get("key") if isinstance(entry, dict) else None
                logger.warning("Ignoring a malformed event from the receiver: %s", exc)
                if isinstance(key, str) and key:
                    self.carried.append(key)  # it can never become valid: acknowledge it
                continue
            if event.key in skip:
                # Handled by the last committed run, but its acknowledgement did not stick:
                # not again, and acknowledged by the next run (it stays in the state).
                self.carried.append(event.key)
                continue
            if event.owner_id not in known:
                self.unowned.append(Handled(event, IGNORED, "athlete not configured"))
                continue
            self._by_owner.setdefault(event.owner_id, []).append(event)
        total = sum(len(events) for events in self._by_owner.values())
        logger.info(
            "Push events: %d pending for configured athletes, %d for others",
            total,
            len(self.unowned),
        )

    def handled(self, athlete_id: int) -> list[Handled]:
        """What was done so far with one athlete's events."""
        return self._handled.get(athlete_id, [])

    def all_handled(self) -> list[Handled]:
        """Every handled event of the run, configured athletes' and others'."""
        done = [item for items in self._handled.values() for item in items]
        return done + self.unowned

    def handle(
        self, get: Getter, account: StravaAccount, athlete_id: int, logger: logging.Logger
    ) -> None:
        """Handle one athlete's events, once per run (whichever stream asks first).

        A quota stop or a failure part-way leaves the rest pending in the receiver: they
        are not in the receipts, so not acknowledged, and the next run handles them.
        """
        if athlete_id in self._handled or self._by_owner is None:
            return
        events = self._by_owner.get(athlete_id, [])
        done = self._handled.setdefault(athlete_id, [])
        revocations = [event for event in events if event.is_revocation]
        if revocations and self._confirm_revocation(get, account, athlete_id, logger):
            done.extend(Handled(event, REVOKED) for event in revocations)
            done.extend(
                Handled(event, IGNORED, "the athlete revoked access")
                for event in events
                if not event.is_revocation
            )
            return
        done.extend(
            Handled(event, IGNORED, "the athlete's token still works") for event in revocations
        )
        answers: dict[int, dict[str, t.Any] | None] = {}
        for event in events:
            if event.is_revocation:
                continue
            if event.object_type != "activity":
                done.append(Handled(event, IGNORED, "an athlete event other than a revocation"))
                continue
            if event.object_id not in answers:
                answers[event.object_id] = self._fetch(get, account, event.object_id)
            done.append(self._verdict(event, answers[event.object_id], athlete_id))

    @staticmethod
    def _fetch(get: Getter, account: StravaAccount, activity_id: int) -> dict[str, t.Any] | None:
        """The activity as its owner sees it, or None if it answers 404 (one read)."""
        try:
            body = get(f"/activities/{activity_id}", account)
        except StravaNotFound:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _verdict(event: PushEvent, answer: dict[str, t.Any] | None, athlete_id: int) -> Handled:
        if event.aspect_type == "delete":
            if answer is None:
                return Handled(event, DELETED)
            return Handled(event, IGNORED, "the activity still exists for its owner")
        if answer is None:
            return Handled(event, IGNORED, "the owner's token gets 404 for this activity")
        owner = (answer.get("athlete") or {}).get("id")
        if owner is not None and owner != athlete_id:
            return Handled(event, IGNORED, "the activity belongs to another athlete")
        return Handled(event, APPLIED, activity=answer)

    def _confirm_revocation(
        self, get: Getter, account: StravaAccount, athlete_id: int, logger: logging.Logger
    ) -> bool:
        """Whether the athlete really revoked access: its token no longer works.

        Then its tokens leave the store (Strava's agreement: stop using them, delete
        the athlete's data; ``strava-forget-athlete`` removes the rows).
        """
        try:
            get("/athlete", account)
        except StravaAuthError:
            removed = forget_athlete(self.config, athlete_id)
            logger.warning(
                "Athlete %s revoked this app's access: %d token entr%s removed from the token "
                "store; remove its refresh token from the configuration and delete its data "
                "(strava-forget-athlete --athlete %s)",
                athlete_id,
                removed,
                "y" if removed == 1 else "ies",
                athlete_id,
            )
            return True
        return False
