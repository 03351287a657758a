"""Streams that cost one request per activity: details, laps, zones, time-series; gear.

They are top-level streams with their own sorted bookmark (the activity's start date,
partitioned by athlete), not SDK child streams of ``activities``: a child stream runs
inline with its parent and keeps one bookmark per parent record, so a quota stop would
stall ``activities`` and leave older activities without details. Each reads the activity
list from its own bookmark (cheap: 200 summaries per request) and spends at most its
per-run request budget (``<stream>_per_run``, 0 = off) on the per-activity calls, oldest
first; the next run goes on where the budget or the quota ended.
"""

from __future__ import annotations

import typing as t

from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.helpers.types import Context
from typing_extensions import override

from tap_strava.client import StravaNotFound, StravaStream
from tap_strava.conform import conform_to_schema
from tap_strava.schemas.details import (
    ACTIVITY_DETAIL_SCHEMA,
    ACTIVITY_STREAMS_SCHEMA,
    GEAR_SCHEMA,
    LAP_SCHEMA,
    STREAM_KEYS,
    ZONE_SCHEMA,
)
from tap_strava.streams import RESUME_KEY, ActivityListStream, _epoch

if t.TYPE_CHECKING:
    from collections.abc import Iterable

# Ids already done whose start equals the bookmark (equal start times across a stop).
DONE_AT_BOOKMARK_KEY = "done_at_bookmark"


class PerActivityStream(ActivityListStream):
    """One request per activity, within a per-run budget, resumable across runs."""

    replication_key = "activity_start_date"
    budget_setting: t.ClassVar[str]
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # every record is conformed here
    path_suffix: t.ClassVar[str] = ""  # after /activities/{id}

    def detail_path(self, activity: dict[str, t.Any]) -> str:
        """The per-activity API path."""
        return f"/activities/{activity['id']}{self.path_suffix}"

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

    def _details_within(self, context: Context | None, budget: int) -> Iterable[dict[str, t.Any]]:
        state = self.get_context_state(context)
        bookmark = state.get("replication_key_value")
        done = set(state.get(DONE_AT_BOOKMARK_KEY) or [])
        start_date = self.config.get("start_date")
        start = max(
            int(state.get(RESUME_KEY) or 0),
            _epoch(bookmark) if bookmark else 0,
            _epoch(start_date) if start_date else 0,
        )
        for batch in self.sorted_windows(context, start):
            for activity in batch:
                started = str(activity["start_date"])
                if started == bookmark and int(activity["id"]) in done:
                    continue
                if self._spent >= budget:
                    self.logger.info(
                        "%s: %s's share of the per-run budget (%d requests) is spent; the "
                        "next run goes on from %s",
                        self.name,
                        self.account.label,
                        budget,
                        bookmark,
                    )
                    return
                self._spent += 1
                try:
                    body = self.account.get_json(self.detail_path(activity))
                except StravaNotFound:
                    self.logger.warning("Activity %s vanished; skipped", activity["id"])
                    body = None
                for record in self.detail_records(activity, body) if body is not None else ():
                    record["activity_id"] = int(activity["id"])
                    record["activity_start_date"] = started
                    yield conform_to_schema(
                        record,
                        self.schema,
                        logger=self.logger,
                        label=f"{self.name} {activity['id']}",
                    )
                # The activity is done even if it gave no record: move the bookmark.
                if started != bookmark:
                    bookmark, done = started, set()
                done.add(int(activity["id"]))
                state["replication_key"] = self.replication_key
                state["replication_key_value"] = bookmark
                state[DONE_AT_BOOKMARK_KEY] = sorted(done)
                self.state_manager.is_flushed = False


class ActivityDetailsStream(PerActivityStream):
    """``GET /activities/{id}``: description, calories, gear, splits, best efforts, polyline."""

    name = "activity_details"
    primary_keys = ("id",)
    schema = ACTIVITY_DETAIL_SCHEMA
    budget_setting = "activity_details_per_run"


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

    @override
    def detail_path(self, activity: dict[str, t.Any]) -> str:
        keys = ",".join(["latlng", *STREAM_KEYS])
        return f"/activities/{activity['id']}/streams?keys={keys}&key_by_type=true"

    @override
    def detail_records(self, activity: dict[str, t.Any], body: t.Any) -> Iterable[dict]:
        if not isinstance(body, dict):
            return
        record: dict[str, t.Any] = {}
        for key, series in body.items():
            if isinstance(series, dict) and key in self.schema["properties"]:
                record[key] = series.get("data")
                for meta in ("original_size", "resolution", "series_type"):
                    record.setdefault(meta, series.get(meta))
        yield record


class GearStream(StravaStream):
    """``GET /gear/{id}``: bikes and shoes, once per run per gear.

    The ids are the athlete's bikes and shoes plus every gear id the ``activities``
    stream saw in this run (retired gear may only appear there).
    """

    name = "gear"
    primary_keys = ("id",)
    replication_key = None
    schema = GEAR_SCHEMA
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # every record is conformed here

    @override
    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        profile = self.account.profile
        ids = {str(g["id"]) for kind in ("bikes", "shoes") for g in profile.get(kind) or []}
        ids |= self.strava_tap.gear_ids_seen.get(self.account.athlete_id, set())
        for gear_id in sorted(ids):
            try:
                body = self.account.get_json(f"/gear/{gear_id}")
            except StravaNotFound:
                self.logger.warning("Gear %s is not readable; skipped", gear_id)
                continue
            if isinstance(body, dict):
                yield conform_to_schema(
                    dict(body), self.schema, logger=self.logger, label=f"gear {gear_id}"
                )
