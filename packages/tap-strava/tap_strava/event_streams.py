"""The events mode (``events_url``): what Strava's push events say changed, at one read each.

A run takes the receiver's pending events (:mod:`tap_strava.event_inbox`), handles each
configured athlete's once (:mod:`tap_strava.event_handling`) and emits the results:

- ``activities``: created or updated activities, the detailed answer projected onto the
  list's schema, so the row looks like a polled one;
- ``activity_details``: the same answer whole (no second request);
- ``activity_deletions``: deletions confirmed with the owner's token, keyed by
  ``(id, athlete_id)``. Never a tombstone in ``activities`` (target-postgres would blank
  every column) and never by id alone (a forged event naming athlete A and B's activity
  gets a 404 with A's token: the deletion it records matches no row of A);
- ``event_receipts``, last: one row per event handled (what it said, what the run did
  with it) and, in its state, the keys of every handled event. The next run acknowledges
  those keys to the receiver before it reads the queue: Meltano saves that state only
  after the target committed, so an event is acknowledged only once what it caused is
  loaded, and a crash replays it (harmlessly: every row is an upsert).

The streams share one :class:`~tap_strava.event_handling.EventRun` (on the
:class:`~tap_strava.run.SyncRun`): each athlete's events are handled once, by whichever
stream asks first, and every stream emits from the same results, also after a quota stop
part-way (what was not handled stays pending). Records carry the run's table version,
like a daily run's, so a reconcile pass under way never flags them.
"""

from __future__ import annotations

import typing as t

from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_strava.client import StravaStream
from tap_strava.conform import conform_to_schema
from tap_strava.dates import iso
from tap_strava.event_handling import (
    APPLIED,
    APPLIED_EVENTS_KEY,
    DELETED,
    RECEIPTS_STREAM,
    EventRun,
    Handled,
)
from tap_strava.ratelimit import QuotaExhausted
from tap_strava.responses import ATHLETE_FAILURES
from tap_strava.schemas import ACTIVITY_SCHEMA
from tap_strava.schemas.details import ACTIVITY_DETAIL_SCHEMA
from tap_strava.schemas.events import ACTIVITY_DELETION_SCHEMA, EVENT_RECEIPT_SCHEMA
from tap_strava.sdk_adapter import mark_state_changed, set_table_version

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from singer_sdk.helpers.types import Context

# Strava's resource_state of a detailed answer, and of the summary a list holds.
_DETAILED_STATE, _SUMMARY_STATE = 3, 2


def _project(value: t.Any, schema: t.Mapping[str, t.Any]) -> t.Any:
    """A detailed answer cut down to the list's schema, at every level, as a summary.

    What only the detail has (description, calories, ``map.polyline``...) goes to
    ``activity_details``; ``activities`` keeps what a polled row has, so the row an event
    writes equals the row the next poll writes (no churn, no ``_unknown_fields``).
    """
    properties = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(properties, dict):
        return value
    projected = {
        key: _project(item, properties[key])
        for key, item in value.items()
        if key in properties and key != "_unknown_fields"
    }
    if projected.get("resource_state") == _DETAILED_STATE:
        projected["resource_state"] = _SUMMARY_STATE
    return projected


class EventStream(StravaStream):
    """A stream of the events mode: no list requests, records from the run's events."""

    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # conformed here
    is_sorted = False
    # The only requests are single GETs (get_one); the SDK's duration log names this.
    path = "/activities/{id}"

    @property
    def event_run(self) -> EventRun:
        """The run's events, read from the receiver on first use."""
        run = self.sync_run
        if run.events is None:
            msg = "the events mode needs events_url (and events_token)"
            raise RuntimeError(msg)
        receipts = (self.tap_state.get("bookmarks") or {}).get(RECEIPTS_STREAM) or {}
        previous = [str(key) for key in receipts.get(APPLIED_EVENTS_KEY) or []]
        run.events.load(previous, run.athletes.resolved, self.logger)
        return run.events

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Handle the athlete's events (once per run), then emit this stream's part.

        Unlike the API streams, a spent quota or a failing athlete does not skip the
        emitting: what an earlier stream of this run handled must reach every stream,
        or the receipts would acknowledge an event whose rows are missing.
        """
        athletes = self.sync_run.athletes
        self._account = account = athletes.account_for(context)
        athlete_id = int((context or {})["athlete_id"])
        set_table_version(self, int(self.sync_run.started_at.timestamp()))
        events = self.event_run
        stopped: str | None = None
        try:
            if not account.failure and not account.rate_limits.exhausted:
                events.handle(self.get_one_path, account, athlete_id, self.logger)
        except QuotaExhausted as exc:
            stopped = str(exc)
            self.logger.warning("Push events: stopping early, the rest stay queued: %s", exc)
        except ATHLETE_FAILURES as exc:
            if not athletes.several:
                raise
            athletes.skip(account, exc)
        finally:
            self._mark_quota_stop(context, stopped)
            athletes.save_quota_reading()
        for handled in events.handled(athlete_id):
            yield from self.records_of(handled, athlete_id)

    def get_one_path(self, path: str, account: t.Any) -> t.Any:
        """One GET through this stream's SDK request machinery (see ``get_one``)."""
        return self.get_one(path, account)

    def records_of(self, handled: Handled, athlete_id: int) -> Iterable[dict[str, t.Any]]:
        """The records one handled event gives this stream (none by default)."""
        del handled, athlete_id
        return ()


class EventActivitiesStream(EventStream):
    """``activities`` from create and update events, projected onto the list's schema."""

    name = "activities"
    primary_keys = ("id",)
    replication_key = "start_date"
    schema = ACTIVITY_SCHEMA

    def records_of(self, handled: Handled, athlete_id: int) -> Iterable[dict[str, t.Any]]:
        """The detailed answer, cut down to what a listed activity has."""
        if handled.outcome != APPLIED or handled.activity is None:
            return
        summary = _project(handled.activity, self.schema)
        summary["athlete_id"] = athlete_id
        yield conform_to_schema(
            summary, self.schema, logger=self.logger, label=f"activity {summary.get('id')}"
        )


class EventDetailsStream(EventStream):
    """``activity_details`` from the same answer: no second request."""

    name = "activity_details"
    primary_keys = ("id",)
    replication_key = "activity_start_date"
    schema = ACTIVITY_DETAIL_SCHEMA

    def records_of(self, handled: Handled, athlete_id: int) -> Iterable[dict[str, t.Any]]:
        """The whole answer, as the per-activity stream emits it."""
        if handled.outcome != APPLIED or handled.activity is None:
            return
        record = dict(handled.activity)
        record.pop("embed_token", None)  # a capability: whoever holds it can embed it
        record["athlete_id"] = athlete_id
        record["activity_id"] = int(record["id"])
        record["activity_start_date"] = record.get("start_date")
        yield conform_to_schema(
            record, self.schema, logger=self.logger, label=f"activity_details {record['id']}"
        )


class ActivityDeletionsStream(EventStream):
    """``activity_deletions``: activities deleted on Strava, confirmed with the owner's token.

    Applied downstream by ``(id, athlete_id)`` (docs/events.md), never by id alone.
    """

    name = "activity_deletions"
    primary_keys = ("id", "athlete_id")
    replication_key = "confirmed_at"
    schema = ACTIVITY_DELETION_SCHEMA

    def records_of(self, handled: Handled, athlete_id: int) -> Iterable[dict[str, t.Any]]:
        """One row per confirmed deletion."""
        if handled.outcome != DELETED:
            return
        yield {
            "id": handled.event.object_id,
            "athlete_id": athlete_id,
            "deleted_at": iso(handled.event.event_time),
            "confirmed_at": iso(int(self.sync_run.started_at.timestamp())),
            "source": "push_event",
        }


class EventReceiptsStream(EventStream):
    """``event_receipts``, last: every handled event, and the keys the next run acknowledges."""

    name = RECEIPTS_STREAM
    primary_keys = ("event_key",)
    replication_key = "processed_at"
    schema = EVENT_RECEIPT_SCHEMA
    is_sorted = False

    @property
    def partitions(self) -> list[dict] | None:
        """One pass over every handled event, configured athletes' or not."""
        return None

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Handle the athletes no earlier stream asked for, then emit the receipts.

        The keys go into this stream's state only here, after every other stream of the
        events mode emitted what the events caused.
        """
        del context
        run = self.sync_run
        events = self.event_run
        for athlete_id, account in run.athletes.resolved.items():
            if not account.failure and not account.rate_limits.exhausted:
                try:
                    events.handle(self.get_one_path, account, athlete_id, self.logger)
                except QuotaExhausted as exc:
                    self.logger.warning("Push events: the rest stay queued: %s", exc)
        processed_at = iso(int(run.started_at.timestamp()))
        handled = events.all_handled()
        for item in handled:
            yield conform_to_schema(
                item.receipt(processed_at), self.schema, logger=self.logger, label="receipt"
            )
        state = self.stream_state
        state[APPLIED_EVENTS_KEY] = [item.event.key for item in handled] + events.carried
        mark_state_changed(self)
