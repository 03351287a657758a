"""Streams that cost one request per activity: details, laps, zones, time-series; gear.

They are top-level streams with their own sorted bookmark (the activity's start date,
partitioned by athlete), not SDK child streams of ``activities``: a child stream runs
inline with its parent and keeps one bookmark per parent record, so a quota stop would
stall ``activities`` and leave older activities without details. Each reads the activity
list itself (cheap: 200 summaries per request) and spends at most its per-run request
budget (``<stream>_per_run``, 0 = off) on the per-activity calls, oldest first; the next
run goes on where the budget or the quota ended.

Like ``activities`` they re-read the list's look-back window (``lookback_days`` before
the bookmark), and every ``details_full_pass_days`` the whole list: an activity is
fetched again when a digest of its listed fields that matter (name, sport type, start,
distance, times, gear) differs from the one recorded when it was fetched, so late uploads
and edits of any age get their details, and a kudo costs nothing.
"""

from __future__ import annotations

import time
import typing as t

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_strava.client import StravaStream
from tap_strava.conform import conform_to_schema
from tap_strava.dates import clamp_to, epoch, iso
from tap_strava.digest import record_digest
from tap_strava.responses import StravaNotFound
from tap_strava.schemas.details import (
    ACTIVITY_DETAIL_SCHEMA,
    ACTIVITY_STREAMS_SCHEMA,
    GEAR_SCHEMA,
    LAP_SCHEMA,
    STREAM_KEYS,
    ZONE_SCHEMA,
)
from tap_strava.sdk_adapter import mark_state_changed
from tap_strava.shared_facts import CACHE_MAX_AGE, PROFILE, Cached
from tap_strava.streams import DELIVERED_KEY, RESUME_KEY, ActivityListStream
from tap_strava.windows import DAY

if t.TYPE_CHECKING:
    from collections.abc import Iterable

# Earlier versions: ids already done whose start equals the bookmark (read on upgrade).
DONE_AT_BOOKMARK_KEY = "done_at_bookmark"
# {activity id: digest of the listed fields that matter} of every activity fetched: an
# activity is fetched again when the digest changes (an edit, a re-upload), never for a
# counter like kudos_count.
FETCHED_KEY = "fetched"
# Epoch second of the last completed pass over the whole list; where a pass under way got.
FULL_PASS_AT_KEY = "full_pass_at"  # noqa: S105 - a state key
FULL_PASS_KEY = "full_pass"  # noqa: S105 - a state key
# What an edit can change that the per-activity answers depend on.
DIGEST_FIELDS = (
    "name",
    "sport_type",
    "start_date",
    "distance",
    "moving_time",
    "elapsed_time",
    "gear_id",
)


def summary_digest(activity: dict[str, t.Any]) -> str:
    """Short digest of a listed activity's fields that matter (8 hex digits: small state)."""
    return record_digest(activity, DIGEST_FIELDS)[:8]


class PerActivityStream(ActivityListStream):
    """One request per activity, within a per-run budget, resumable across runs."""

    # Details, laps, zones and streams: backfill, after the events and the daily polls.
    quota_class: t.ClassVar[str] = "backfill"

    replication_key = "activity_start_date"
    budget_setting: t.ClassVar[str]
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # every record is conformed here
    path_suffix: t.ClassVar[str] = ""  # after /activities/{id}

    def detail_path(self, activity: dict[str, t.Any]) -> str:
        """The per-activity API path."""
        return f"/activities/{activity['id']}{self.path_suffix}"

    def detail_params(self) -> dict[str, t.Any]:
        """The per-activity request's query (none but for the time-series)."""
        return {}

    def covered_elsewhere(self) -> set[str]:
        """Ids of the partition's activities this stream need not fetch (none by default)."""
        return set()

    def detail_records(
        self,
        activity: dict[str, t.Any],  # noqa: ARG002
        body: t.Any,
    ) -> Iterable[dict[str, t.Any]]:
        """Records made of one per-activity answer: one object, or a list of them."""
        items = body if isinstance(body, list) else [body]
        yield from (dict(item) for item in items if isinstance(item, dict))

    @property
    @override
    def enabled(self) -> bool:
        """Off unless its per-run budget is set: Meltano selects every stream anyway."""
        if int(self.config.get(self.budget_setting) or 0) > 0:
            return True
        self.logger.info("%s is off (set %s to enable it)", self.name, self.budget_setting)
        return False

    _budget_left: int | None = None
    _athletes_left = 0

    def partition_budget(self) -> int:
        """The current athlete's share of the run's budget: what is left over those not served.

        The budget belongs to the run (one app, one quota): an athlete with less to fetch
        leaves the rest of its share to the athletes after it.
        """
        if self._budget_left is None:
            self._budget_left = int(self.config.get(self.budget_setting) or 0)
            self._athletes_left = len(self.partitions or [{}])
        share = -(-self._budget_left // max(1, self._athletes_left))
        self._athletes_left -= 1
        return share

    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Oldest activities first, from this stream's own bookmark, within the budget."""
        budget = self.partition_budget()
        self._spent = 0
        try:
            yield from self._details_within(context, budget)
        finally:
            self._budget_left = max(0, (self._budget_left or 0) - self._spent)

    _spent = 0  # requests spent on the current partition

    def _start_of_run(self, state: dict[str, t.Any], bookmark: str | None) -> tuple[int, bool]:
        """Where this partition's list reading starts, and whether it is a full pass.

        A full pass under way goes on where it got to (``full_pass``, the start of the
        last activity it handled). Otherwise a pass over the whole list is due on the
        first sync and every ``details_full_pass_days``, so old edits are seen; and any
        other run reads from ``lookback_days`` before the bookmark, as ``activities``
        does, so late uploads and recent edits are.
        """
        start_date = self.config.get("start_date")
        floor = epoch(start_date) if start_date else 0
        if state.get(FULL_PASS_KEY) is not None:
            return max(int(state[FULL_PASS_KEY]), floor), True
        every = int(self.config.get("details_full_pass_days", 7)) * DAY
        last_pass = int(state.get(FULL_PASS_AT_KEY) or 0)
        now = int(self.sync_run.started_at.timestamp())
        if not bookmark or (every and now - last_pass >= every):
            return floor, True
        lookback = int(self.config.get("lookback_days", 7)) * DAY
        return max(epoch(bookmark) - lookback, floor), False

    def _details_within(self, context: Context | None, budget: int) -> Iterable[dict[str, t.Any]]:
        state = self.get_context_state(context)
        run_start = self.sync_run.started_at
        bookmark = state.get("replication_key_value")
        if bookmark:
            bookmark = clamp_to(bookmark, run_start)
        fetched: dict[str, str] = dict(state.get(FETCHED_KEY) or {})
        # A state of an earlier version: what it fetched is everything up to its bookmark.
        legacy = FETCHED_KEY not in state and bookmark is not None
        legacy_done = {str(i) for i in state.get(DONE_AT_BOOKMARK_KEY) or []}
        start, full_pass = self._start_of_run(state, bookmark)
        if full_pass:
            state[FULL_PASS_KEY] = start
        lookback = not full_pass and bookmark is not None
        for batch in self.sorted_windows(context, start, lookback=lookback):
            for activity in batch:
                started = str(activity["start_date"])
                key = str(activity["id"])
                digest = summary_digest(activity)
                if legacy and bookmark and (epoch(started) < epoch(bookmark) or key in legacy_done):
                    fetched[key] = digest
                elif fetched.get(key) != digest and key not in self.covered_elsewhere():
                    if self._spent >= budget:
                        self.logger.info(
                            "%s: %s's share of the per-run budget (%d requests) is spent; "
                            "the next run goes on from %s",
                            self.name,
                            self.account.label,
                            budget,
                            bookmark,
                        )
                        self._save(state, bookmark, fetched)
                        return
                    self._spent += 1
                    yield from self._fetch(activity, started)
                    fetched[key] = digest
                # Every activity up to here is done: the bookmark follows, but never past
                # the run's start (a future-dated activity must not stop later runs).
                if self.is_future(activity):
                    started = clamp_to(started, run_start)
                if not bookmark or epoch(started) > epoch(bookmark):
                    bookmark = started
                if full_pass:
                    state[FULL_PASS_KEY] = epoch(started)
                self._save(state, bookmark, fetched)
        if full_pass:
            state[FULL_PASS_AT_KEY] = int(run_start.timestamp())
        state.pop(FULL_PASS_KEY, None)
        state.pop(RESUME_KEY, None)
        self._save(state, bookmark, fetched)

    def _save(self, state: dict[str, t.Any], bookmark: str | None, fetched: dict[str, str]) -> None:
        """Record progress in the partition state (written at the next checkpoint)."""
        if bookmark:
            state["replication_key"] = self.replication_key
            state["replication_key_value"] = bookmark
        state[FETCHED_KEY] = fetched
        state.pop(DONE_AT_BOOKMARK_KEY, None)
        mark_state_changed(self)

    def _fetch(self, activity: dict[str, t.Any], started: str) -> Iterable[dict[str, t.Any]]:
        """The records of one per-activity request (none if the activity vanished)."""
        try:
            body = self.get_one(self.detail_path(activity), self.account, self.detail_params())
        except StravaNotFound:
            self.logger.warning("Activity %s vanished; skipped", activity["id"])
            return
        for record in self.detail_records(activity, body):
            record["activity_id"] = int(activity["id"])
            record["activity_start_date"] = started
            yield conform_to_schema(
                record, self.schema, logger=self.logger, label=f"{self.name} {activity['id']}"
            )


class ActivityDetailsStream(PerActivityStream):
    """``GET /activities/{id}``: description, calories, gear, splits, best efforts, polyline."""

    name = "activity_details"
    primary_keys = ("id",)
    schema = ACTIVITY_DETAIL_SCHEMA
    budget_setting = "activity_details_per_run"

    @override
    def detail_records(self, activity: dict[str, t.Any], body: t.Any) -> Iterable[dict]:
        for record in super().detail_records(activity, body):
            # A capability: whoever holds it can embed the activity, private or not.
            record.pop("embed_token", None)
            yield record


class LapsStream(PerActivityStream):
    """``GET /activities/{id}/laps``: one row per lap."""

    name = "laps"
    primary_keys = ("id",)
    schema = LAP_SCHEMA
    budget_setting = "laps_per_run"
    path_suffix = "/laps"


class ZonesStream(PerActivityStream):
    """``GET /activities/{id}/zones``: time in heart-rate, power and pace zones."""

    name = "activity_zones"
    primary_keys = ("activity_id", "type")
    schema = ZONE_SCHEMA
    budget_setting = "zones_per_run"
    path_suffix = "/zones"


class ActivityStreamsStream(PerActivityStream):
    """``GET /activities/{id}/streams``: the time-series (one row per activity, arrays)."""

    name = "activity_streams"
    primary_keys = ("activity_id",)
    schema = ACTIVITY_STREAMS_SCHEMA
    budget_setting = "streams_per_run"

    path_suffix = "/streams"

    @override
    def detail_params(self) -> dict[str, t.Any]:
        return {"keys": ",".join(["latlng", *STREAM_KEYS]), "key_by_type": "true"}

    _covered: tuple[int, set[str]] | None = None

    @override
    def covered_elsewhere(self) -> set[str]:
        """Activities whose track an export archive import loaded (``export_tracks``).

        Only where this pipeline's target holds them (``archive_tracks_in_target``, set for
        the project's details block, which loads where ``strava-archive`` loads): the
        per-run budget then goes to what the archive lacks (activities uploaded since).
        Any other pipeline gets every track: the facts file says what an archive import
        delivered to *its* targets, not to this one's. Read once per athlete and run.
        """
        if not self.config.get("archive_tracks_in_target"):
            return set()
        athlete_id = self.account.athlete_id
        if self._covered is None or self._covered[0] != athlete_id:
            ids = self.sync_run.shared_facts.archive_track_ids(athlete_id)
            self._covered = (athlete_id, {str(i) for i in ids})
        return self._covered[1]

    @override
    def detail_records(self, activity: dict[str, t.Any], body: t.Any) -> Iterable[dict]:
        if not isinstance(body, dict):
            return
        record: dict[str, t.Any] = {}
        for key, series in body.items():
            if not isinstance(series, dict):
                continue
            if key not in self.schema["properties"]:
                record[key] = series  # a series type Strava added: kept in _unknown_fields
                continue
            record[key] = series.get("data")
            for meta in ("original_size", "resolution", "series_type"):
                record.setdefault(meta, series.get(meta))
        yield record


class GearStream(StravaStream):
    """``GET /gear/{id}``: bikes and shoes, each only when it may have changed.

    The ids are the athlete's bikes and shoes (from today's profile, or the cached one)
    plus every gear id the ``activities`` stream saw in this run (retired gear may only
    appear there). An item is fetched when the shared cache (:mod:`tap_strava.shared_facts`)
    has no answer for it younger than ``gear_max_age_days`` (default 7, and never more
    than Strava's 7-day caching rule): its distance grows with every activity, but a
    week-old figure costs nothing while a daily one costs a read per item per day.

    What this pipeline delivered is in its own state (``delivered``: the ``fetched_at`` of
    each item's answer it emitted), written after the record: a pipeline that has not
    delivered the cached answer yet emits it from the cache, without a request.
    """

    name = "gear"
    path = "/gear/{id}"  # one GET per item (get_one); the template names the endpoint
    primary_keys = ("id",)
    replication_key = None
    schema = GEAR_SCHEMA
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # every record is conformed here

    @override
    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        run, account = self.sync_run, self.account
        athlete_id = account.athlete_id
        facts = run.shared_facts
        cached = facts.cached_gear(athlete_id)
        ids = set(cached)
        profile = account.profile if account.profile_fetched else None
        if profile is None:
            answer = facts.cached(athlete_id, PROFILE)
            profile = answer.body if answer else {}
        ids |= {str(g["id"]) for kind in ("bikes", "shoes") for g in profile.get(kind) or []}
        ids |= run.gear_ids_seen.get(athlete_id, set())
        state = self.get_context_state(context)
        delivered = state.get(DELIVERED_KEY)
        delivered = dict(delivered) if isinstance(delivered, dict) else {}
        now = int(time.time())
        max_age = min(int(self.config.get("gear_max_age_days", 7)) * DAY, CACHE_MAX_AGE)
        for gear_id in sorted(ids):
            answer = cached.get(gear_id)
            if answer is None or now - answer.fetched_at >= max_age:
                try:
                    body = self.get_one(f"/gear/{gear_id}", account)
                except StravaNotFound:
                    self.logger.warning("Gear %s is not readable; skipped", gear_id)
                    continue
                if not isinstance(body, dict):
                    continue
                answer = Cached(body, int(time.time()))
                facts.cache_gear(athlete_id, gear_id, body, answer.fetched_at)
            elif delivered.get(gear_id) == answer.fetched_at:
                continue  # this pipeline has delivered this answer already
            row = dict(answer.body)
            row["fetched_at"] = iso(answer.fetched_at)
            yield conform_to_schema(row, self.schema, logger=self.logger, label=f"gear {gear_id}")
            delivered[gear_id] = answer.fetched_at
            state[DELIVERED_KEY] = delivered
            mark_state_changed(self)
