"""Stream definitions for tap-strava."""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import datetime
import time
import typing as t

from singer_sdk.exceptions import FatalAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.pagination import PageNumberPaginator

from tap_strava.client import StravaStream
from tap_strava.conform import conform_to_schema
from tap_strava.dates import clamp_to, epoch, iso
from tap_strava.digest import DIGESTS_KEY, record_digest
from tap_strava.schemas import ACTIVITY_SCHEMA, ATHLETE_SCHEMA, ATHLETE_STATS_SCHEMA
from tap_strava.sdk_adapter import (
    mark_state_changed,
    set_table_version,
    write_activate_version,
    write_state_now,
)
from tap_strava.shared_facts import PROFILE, STATS, Cached
from tap_strava.storable_text import answer_is_storable, make_record_storable
from tap_strava.windows import (
    DAY,
    MAX_PAGE_SIZE,
    TimeWindow,
    WindowPlanner,
    page_cap,
    pages_for,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import requests
    from singer_sdk.helpers.types import Context

    from tap_strava.run import SyncRun


# Epoch second where an interrupted or quota-stopped run goes on (state, per partition).
RESUME_KEY = "resume_from"
# A reconcile pass: its table version (stream state) and the athletes it has finished.
RECONCILE_VERSION_KEY = "reconcile_version"
# A newest-first backfill under way (see Cursor); authoritative while present.
BACKFILL_KEY = "backfill"
RECONCILE_DONE_KEY = "reconcile_done"


def _activity_key(summary: dict[str, t.Any]) -> int:
    """The id of a listed activity; one without id or start time stops the run, clearly.

    Such a summary cannot be keyed nor bookmarked: the run stops before emitting its
    window, so nothing is lost (the next run reads the window again).
    """
    for key in ("id", "start_date"):
        if summary.get(key) in (None, ""):
            msg = (
                f"Strava sent an activity without {key} ({str(summary)[:200]}): it cannot "
                "be keyed or bookmarked; report it, the run stops here to lose nothing"
            )
            raise FatalAPIError(msg)
    try:
        epoch(summary["start_date"])
        return int(summary["id"])
    except (TypeError, ValueError):
        msg = (
            "Strava sent an activity whose id or start_date cannot be read "
            f"({str(summary)[:200]}): report it, the run stops here to lose nothing"
        )
        raise FatalAPIError(msg) from None


@dataclasses.dataclass
class Cursor:
    """Where a newest-first backfill of the list stands (``backfill`` in the state).

    ``before`` is the next request's exclusive upper bound (None: now and beyond),
    ``seen`` the ids already emitted at second ``before - 1`` (equal start times across a
    page boundary), ``page`` the page number at that bound (above 1 only when more than a
    page of activities share one second), ``newest`` the newest start emitted (the
    bookmark once the backfill completes) and ``sure_of_end``: the last page was short, so
    the next empty answer ends the list.
    """

    before: int | None = None
    seen: list[int] = dataclasses.field(default_factory=list)
    page: int = 1
    newest: str | None = None

    @classmethod
    def load(cls, value: t.Any) -> Cursor:
        """From the state (anything unreadable starts over: the upsert makes that harmless)."""
        if not isinstance(value, dict):
            return cls()
        before = value.get("before")
        return cls(
            before=int(before) if isinstance(before, int) else None,
            seen=[int(i) for i in value.get("seen") or [] if isinstance(i, int)],
            page=max(1, int(value.get("page") or 1)),
            newest=str(value["newest"]) if value.get("newest") else None,
        )


def _next_page(
    cursor: Cursor,
    page: dict[int, dict[str, t.Any]],
    start_of: dict[int, int],
    fresh: list[tuple[int, dict[str, t.Any]]],
) -> Cursor:
    """Where the newest-first backfill reads after this (non-empty) page.

    It depends on the page alone (never on what was emitted), so the next read can start
    before this page's records are emitted.
    """
    oldest = min(start_of.values())
    if not fresh and len(page) >= MAX_PAGE_SIZE:
        # A full page of one second: page on at that bound.
        return Cursor(before=cursor.before, seen=cursor.seen, page=cursor.page + 1)
    if not fresh:
        # Only equal start times seen already: ask strictly older, to the end.
        return Cursor(before=oldest)
    at_oldest = [activity_id for activity_id, start in start_of.items() if start == oldest]
    if len(page) >= MAX_PAGE_SIZE:
        # A full page may cut a group of equal start times: ask that second again.
        seen = cursor.seen if cursor.before == oldest + 1 else []
        return Cursor(before=oldest + 1, seen=sorted({*seen, *at_oldest}))
    # A short page holds every activity of its oldest second: ask strictly older.
    return Cursor(before=oldest)


class ActivityListStream(StravaStream):
    """Reads ``GET /athlete/activities`` in bounded time windows (see tap_strava.windows).

    Each window is read whole, deduplicated by id and handed over sorted by
    ``(start_date, id)``; before the next window the state is checkpointed with
    ``resume_from`` (the first unread second), so that any stop resumes at a window
    boundary and even a run of empty windows is progress. Subclasses decide what to emit.
    """

    path = "/athlete/activities"
    # Sorted per finished window: the SDK may advance the bookmark per record and resume
    # after an interruption. A re-read below the old bookmark (the activities look-back)
    # is legitimate, which check_sorted would reject.
    is_sorted = True
    check_sorted = False
    # The tap writes STATE itself after every finished window, with a bookmark clamped to
    # the run's start (see future_activity); the SDK's own STATE every 10,000 records
    # would be written between a record and its clamp.
    STATE_MSG_FREQUENCY = 2**62

    _window: TimeWindow | None = None

    def is_future(self, activity: dict[str, t.Any], *, warn: bool = True) -> bool:
        """Whether an activity starts after this run started: a device clock set wrong.

        Such an activity is loaded like any other, but must never become the bookmark: a
        bookmark in 2031 would make every later run start in 2031 and find nothing, with
        every notification saying "no new activities".
        """
        if epoch(activity["start_date"]) <= self._run_started_epoch():
            return False
        if not warn:
            return True
        started_at = self._run_started_epoch()
        self.logger.warning(
            "%s: activity %s starts at %s, after this run started (%s): a device clock set "
            "wrong? It is loaded, but the bookmark stays before the run's start",
            self.name,
            activity["id"],
            activity["start_date"],
            iso(started_at),
        )
        return True

    _started: tuple[datetime.datetime, int] | None = None

    def _run_started_epoch(self) -> int:
        """The run's start in epoch seconds (asked for every listed activity)."""
        started_at = self.sync_run.started_at
        if self._started is None or self._started[0] is not started_at:
            self._started = (started_at, int(started_at.timestamp()))
        return self._started[1]

    # The newest-first backfill (see ActivitiesStream): one request per call, no ``after``.
    _cursor: Cursor | None = None

    def get_new_paginator(self) -> PageNumberPaginator | None:  # type: ignore[override]
        """Windows page until an empty page; the backfill asks one page at a time."""
        if self._cursor is not None:
            return None
        return super().get_new_paginator()

    def stream_url_params(
        self,
        context: Context | None,  # noqa: ARG002
        next_page_token: t.Any,
    ) -> dict[str, t.Any]:
        """Page through the current window, 200 per page (Strava's maximum)."""
        if self._cursor is not None:
            cursor_params: dict[str, t.Any] = {"per_page": MAX_PAGE_SIZE, "page": self._cursor.page}
            if self._cursor.before is not None:
                cursor_params["before"] = self._cursor.before
            return cursor_params
        window = self._window
        params: dict[str, t.Any] = {"per_page": MAX_PAGE_SIZE, "page": next_page_token or 1}
        if window is not None:
            params["after"] = window.after
            if window.before is not None:
                params["before"] = window.before
        return params

    def sorted_windows(
        self, context: Context | None, start: int, *, lookback: bool = False
    ) -> Iterator[list[dict[str, t.Any]]]:
        """Activity summaries from ``start`` on, one sorted list per finished window.

        ``lookback``: ``start`` is the look-back before a bookmark, so the range to now
        holds the look-back's activities and the new ones only: it is read as one open
        window (no ``before``), whatever the bookmark's age. Windows of ``window_days``
        would cost a closing empty page each (a bookmark 60 days old: three reads for
        nothing new instead of two).
        """
        end_date = self.config.get("end_date")
        planner = WindowPlanner(
            start=start,
            now=int(datetime.datetime.now(datetime.timezone.utc).timestamp()),
            initial_span=int(self.config.get("window_days", 30)) * DAY,
            end=epoch(end_date) if end_date else None,
            open_from_start=lookback,
        )
        self.logger.info("%s: reading activities that started after %s", self.name, iso(start - 1))
        partition_state = self.get_context_state(context)
        for index, window in enumerate(planner):
            if index:
                partition_state[RESUME_KEY] = window.first
                write_state_now(self)
            self._window = window
            reads_left = self.account.rate_limits.reads_left()
            planner.pages = pages_for(reads_left)
            most = MAX_PAGE_SIZE * page_cap(reads_left)
            by_id: dict[int, dict[str, t.Any]] = {}
            crowded = False
            for record in self.request_records(context):
                by_id[_activity_key(record)] = record
                if len(by_id) >= most and planner.can_split(window):
                    crowded = True
                    break
            if crowded:
                # More than its allowance: read it as smaller windows, each finished alone.
                planner.split(window)
                continue
            planner.report(len(by_id))
            yield sorted(by_id.values(), key=lambda r: (epoch(r["start_date"]), int(r["id"])))
        self._window = None
        partition_state.pop(RESUME_KEY, None)  # complete: no unread second left


class ActivitiesStream(ActivityListStream):
    """``GET /athlete/activities``: the athlete's activities, incremental on ``start_date``.

    Each run starts ``lookback_days`` before the bookmark (minus one second, because
    ``after`` is exclusive and activities may share a start time), so late uploads and
    recent edits arrive; the targets' upsert on ``id`` makes the overlap harmless.

    Every record carries a table version (Singer's ``version``): the second the run
    started. With ``reconcile`` the stream instead re-reads the whole history under one
    version for the whole pass, and only when every athlete's pass is complete sends
    ``ACTIVATE_VERSION``: the target then flags (or hard-deletes) the rows of an older
    version, that is the activities no longer on Strava. Daily runs between the start and
    the end of a pass stamp newer versions, so what they loaded is never flagged.
    """

    name = "activities"
    primary_keys = ("id",)
    replication_key = "start_date"
    schema = ACTIVITY_SCHEMA
    # post_process conforms every record (tap_strava.conform); the SDK's recursive pass
    # on top of it cost a third of the tap's time (docs/benchmarks.md).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    @property
    def reconciling(self) -> bool:
        """Whether this run is (part of) a full-history reconcile pass."""
        return bool(self.config.get("reconcile"))

    def table_version(self) -> int:
        """The version stamped on every record of this run (kept for a whole reconcile pass)."""
        started = int(self.sync_run.started_at.timestamp())
        if not self.reconciling:
            return started
        stream_state = self.stream_state
        if not stream_state.get(RECONCILE_VERSION_KEY):
            stream_state[RECONCILE_VERSION_KEY] = started
        return int(stream_state[RECONCILE_VERSION_KEY])

    def starting_epoch(self, context: Context | None) -> int:
        """Lower bound of this run, never before ``start_date``.

        An unfinished run left ``resume_from`` (the first unread second): go on from there.
        Otherwise start ``lookback_days`` before the bookmark (a reconcile: at the start;
        a date-range backfill whose range ends before the bookmark: at its start).
        """
        state = self.get_context_state(context)
        bookmark = state.get("replication_key_value")
        start_date = self.config.get("start_date")
        end_date = self.config.get("end_date")
        floor = epoch(start_date) if start_date else 0
        if state.get(RESUME_KEY):
            return max(int(state[RESUME_KEY]), floor)
        if bookmark and end_date and epoch(bookmark) > epoch(end_date):
            return floor
        if bookmark and not self.reconciling:
            lookback = int(self.config.get("lookback_days", 7)) * DAY
            return max(epoch(bookmark) - lookback, floor)
        return floor

    def _sane_bookmark(self, bookmark: str, state: dict[str, t.Any]) -> str:
        """The bookmark, or if it is after this run's start, the last real one.

        Earlier versions let a future-dated activity become the bookmark, after which no
        new activity ever arrived. Such a state heals here: the newest start before the
        run's start among the remembered digests, or (none known) the whole history again
        (the targets' upsert makes that harmless).
        """
        started_at = int(self.sync_run.started_at.timestamp())
        if epoch(bookmark) <= started_at:
            return bookmark
        real = [
            entry[0]
            for entry in (state.get(DIGESTS_KEY) or {}).values()
            if epoch(entry[0]) <= started_at
        ]
        healed = max(real, key=epoch) if real else iso(0)
        self.logger.warning(
            "%s: the bookmark %s is after this run's start (a future-dated activity moved it "
            "there); reading again from %s",
            self.name,
            bookmark,
            healed,
        )
        return healed

    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Emit each finished window; keep digests of what the targets received."""
        set_table_version(self, self.table_version())
        partition_state = self.get_context_state(context)
        if self.reconciling and partition_state.get(RECONCILE_DONE_KEY):
            self.logger.info("%s: this reconcile pass is done for this athlete", self.name)
            return
        yield from self._activities(context)
        if self.reconciling:
            partition_state[RECONCILE_DONE_KEY] = True

    def after_stream(self) -> None:
        """After the stream: a reconcile pass complete for every athlete is activated."""
        super().after_stream()
        if self.reconciling:
            self._activate_complete_pass()

    def _activate_complete_pass(self) -> None:
        stream_state = self.stream_state
        version = stream_state.get(RECONCILE_VERSION_KEY)
        partitions = stream_state.get("partitions") or []
        done = {
            (p.get("context") or {}).get("athlete_id")
            for p in partitions
            if p.get(RECONCILE_DONE_KEY)
        }
        athletes = self.sync_run.athletes
        wanted = set(athletes.resolved)
        skipped = [account.label for account in athletes.accounts if account.failure]
        if not version or skipped or not wanted or not wanted <= done:
            self.logger.warning(
                "Reconcile pass not complete (%d of %d athletes done%s): deletions are applied "
                "when a later run completes it",
                len(wanted & done),
                len(athletes.accounts),
                f"; skipped: {', '.join(skipped)}" if skipped else "",
            )
            return
        self.logger.info(
            "Reconcile pass complete: activating version %s (the target flags or deletes "
            "activities that are no longer on Strava)",
            version,
        )
        write_activate_version(self, int(version))
        stream_state.pop(RECONCILE_VERSION_KEY, None)
        for partition in partitions:
            partition.pop(RECONCILE_DONE_KEY, None)
        write_state_now(self)

    def _activities(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        partition_state = self.get_context_state(context)
        self._emitted: set[int] = set()
        self._digests: dict[str, list[str]] = dict(partition_state.get(DIGESTS_KEY) or {})
        self._properties = list(self.schema["properties"])  # what a digest covers
        if partition_state.get("replication_key_value"):
            partition_state["replication_key_value"] = self._sane_bookmark(
                str(partition_state["replication_key_value"]), partition_state
            )
        if self._backfill_due(partition_state):
            yield from self._backfill(context, partition_state)
            return
        high_water = (
            partition_state.get("replication_key_value") if self.config.get("end_date") else None
        )
        lookback = bool(partition_state.get("replication_key_value")) and not (
            partition_state.get(RESUME_KEY) or self.config.get("end_date") or self.reconciling
        )
        for batch in self.sorted_windows(context, self.starting_epoch(context), lookback=lookback):
            for record in batch:
                yield from self._emit(record, context, partition_state, high_water)
            # Pruned per window: the state written after each window stays small, however
            # long the history of a first sync.
            self._digests = self._digests_to_keep(self._digests, partition_state)
            partition_state[DIGESTS_KEY] = self._digests
        partition_state[DIGESTS_KEY] = self._digests_to_keep(self._digests, partition_state)

    def _backfill_due(self, partition_state: dict[str, t.Any]) -> bool:
        """Whether this partition reads its history newest first (see :meth:`_backfill`).

        A history with no bookmark yet, and every reconcile pass; a window reading of an
        earlier version that was interrupted (``resume_from``) finishes as it began.
        """
        if partition_state.get(BACKFILL_KEY) is not None:
            return True
        if partition_state.get(RESUME_KEY):
            return False
        return self.reconciling or not partition_state.get("replication_key_value")

    def _backfill(
        self, context: Context | None, partition_state: dict[str, t.Any]
    ) -> Iterable[dict[str, t.Any]]:
        """Read the whole history newest first, one page per request, checkpointing each.

        Without ``after`` Strava's list is newest first (its documented default), so a
        ``before`` cursor walks the history in exactly its pages plus one closing empty
        answer, never reads an empty stretch of years, and every page is progress however
        little quota a run has. The records come newest first, which the SDK's bookmark
        cannot follow: the cursor in the state is authoritative while it is there, and
        ``replication_key_value`` (the newest start, never after the run's start) is set
        only when the backfill completes. Activities uploaded meanwhile arrive with the
        next incremental run, which starts ``lookback_days`` before that bookmark.
        """
        start_date = self.config.get("start_date")
        floor = epoch(start_date) if start_date else None
        end_date = self.config.get("end_date")
        cursor = Cursor.load(partition_state.get(BACKFILL_KEY))
        if partition_state.get(BACKFILL_KEY) is None and end_date:
            cursor.before = epoch(end_date) + 1
        high_water = partition_state.get("replication_key_value")
        self.logger.info(
            "%s: reading the history newest first, before %s",
            self.name,
            iso(cursor.before) if cursor.before is not None else "now",
        )
        reading: concurrent.futures.Future[list[dict[str, t.Any]]] | None = None
        try:
            while True:
                partition_state[BACKFILL_KEY] = dataclasses.asdict(cursor)
                write_state_now(self)
                if reading is None:
                    items = self._read_backfill_page(context, cursor)
                else:
                    items, reading = reading.result(), None
                page = {_activity_key(item): item for item in items}
                # Each start parsed once per page (sorting, the cursor and the range use it).
                start_of = {key: epoch(item["start_date"]) for key, item in page.items()}
                fresh = [
                    (activity_id, item)
                    for activity_id, item in page.items()
                    if not (
                        cursor.before is not None
                        and start_of[activity_id] == cursor.before - 1
                        and activity_id in cursor.seen
                    )
                ]
                in_range = [pair for pair in fresh if floor is None or start_of[pair[0]] >= floor]
                in_range.sort(key=lambda pair: (start_of[pair[0]], pair[0]), reverse=True)
                # An empty answer (or the start_date passed): the history is read.
                finished = not page or (floor is not None and len(in_range) < len(fresh))
                following = None
                if not finished:
                    # The next page depends on this one only: read it while this one is
                    # emitted (a page Strava serves meanwhile costs no time). It is a page
                    # the loop reads next in any case, so no read is added.
                    following = _next_page(cursor, page, start_of, fresh)
                    reading = self._read_ahead(context, following)
                newest_start = epoch(cursor.newest) if cursor.newest else None
                for activity_id, record in in_range:
                    newer = newest_start is None or start_of[activity_id] > newest_start
                    if newer and not self.is_future(record, warn=False):
                        cursor.newest = str(record["start_date"])
                        newest_start = start_of[activity_id]
                    kept_from = self._backfill_digest_floor(cursor)
                    yield from self._emit(record, context, partition_state, None, kept_from)
                    # The SDK moved the bookmark to this (older) record: not while backfilling.
                    if high_water:
                        partition_state["replication_key_value"] = high_water
                    else:
                        partition_state.pop("replication_key_value", None)
                self._prune_backfill_digests(cursor, partition_state)
                if following is None:
                    break
                cursor.before, cursor.seen, cursor.page = (
                    following.before,
                    following.seen,
                    following.page,
                )
        finally:
            if self._reader is not None:
                # Stopped while a page was on its way (the target failed, the run ends)?
                # The read finishes first, so that no request outlives the backfill.
                self._reader.shutdown(wait=True)
                self._reader = None
        partition_state.pop(BACKFILL_KEY, None)
        run_start = self.sync_run.started_at
        newest = [v for v in (cursor.newest, high_water) if v]
        partition_state["replication_key"] = self.replication_key
        partition_state["replication_key_value"] = clamp_to(
            max(newest, key=epoch) if newest else None, run_start
        )
        partition_state[DIGESTS_KEY] = self._digests_to_keep(self._digests, partition_state)
        mark_state_changed(self)

    def _read_backfill_page(
        self, context: Context | None, cursor: Cursor
    ) -> list[dict[str, t.Any]]:
        """One page of the newest-first backfill at ``cursor`` (one request)."""
        self._cursor = cursor
        try:
            return list(self.request_records(context))
        finally:
            self._cursor = None

    def _read_ahead(
        self, context: Context | None, cursor: Cursor
    ) -> concurrent.futures.Future[list[dict[str, t.Any]]]:
        """Read the page at ``cursor`` in the background (one read, as the loop would).

        Only this thread makes requests meanwhile: the loop emits the current page's
        records, which asks Strava nothing, and waits for this read before the next one.
        """
        if self._reader is None:
            self._reader = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="strava-read-ahead"
            )
        return self._reader.submit(self._read_backfill_page, context, cursor)

    def _backfill_digest_floor(self, cursor: Cursor) -> int | None:
        """The oldest start whose digest a backfill keeps (None: all, nothing read yet).

        ``cursor.newest`` only grows during a backfill, so an activity older than this
        floor is dropped by :meth:`_prune_backfill_digests` at the end of its page at the
        latest: its digest is not worth computing (in a first sync, all but a week's).
        """
        if not cursor.newest:
            return None
        return epoch(cursor.newest) - int(self.config.get("lookback_days", 7)) * DAY - 1

    def _prune_backfill_digests(self, cursor: Cursor, partition_state: dict[str, t.Any]) -> None:
        """During a backfill only the newest look-back window's digests are worth keeping."""
        floor = self._backfill_digest_floor(cursor)
        if floor is not None and cursor.newest:
            self._digests = {
                key: value
                for key, value in self._digests.items()
                if epoch(value[0]) >= floor or epoch(value[0]) > epoch(cursor.newest)
            }
        partition_state[DIGESTS_KEY] = self._digests

    def _emit(
        self,
        record: dict[str, t.Any],
        context: Context | None,
        partition_state: dict[str, t.Any],
        high_water: str | None,
        digest_floor: int | None = None,
    ) -> Iterable[dict[str, t.Any]]:
        """Emit one listed activity (at most once per run); keep its digest and gear id.

        ``digest_floor``: an activity that started before it gets no digest (a backfill
        would drop it at the end of the page; see :meth:`_backfill_digest_floor`).
        """
        activity_id = int(record["id"])
        if activity_id in self._emitted:
            return
        self._emitted.add(activity_id)
        properties = self._properties
        future = self.is_future(record)
        if future and not self.reconciling:
            # Listed again by every run (the last window is open-ended): emit it only when
            # it changed. A reconcile emits it, or it would be flagged as deleted.
            known = self._digests.get(str(activity_id))
            conformed = self.post_process(copy.deepcopy(record), context)
            if known and conformed and known[1] == record_digest(conformed, properties):
                return
        bookmark = partition_state.get("replication_key_value")
        self._listed = record  # storable already: its page was checked as it was parsed
        yield record
        self._listed = None
        if future:
            partition_state["replication_key_value"] = clamp_to(bookmark, self.sync_run.started_at)
        elif high_water and epoch(record["start_date"]) < epoch(high_water):
            # A date-range backfill never moves a later bookmark back.
            partition_state["replication_key_value"] = high_water
        # `record` is now conformed and emitted: remember what the target got.
        if digest_floor is None or future or epoch(record["start_date"]) >= digest_floor:
            self._digests[str(activity_id)] = [
                record["start_date"],
                record_digest(record, properties),
            ]
        else:
            self._digests.pop(str(activity_id), None)  # as the pruning would have
        if record.get("gear_id"):
            gear_ids = self.sync_run.gear_ids_seen.setdefault(self.account.athlete_id, set())
            gear_ids.add(str(record["gear_id"]))

    def _digests_to_keep(
        self, digests: dict[str, list[str]], partition_state: dict[str, t.Any]
    ) -> dict[str, list[str]]:
        """Only the next run's look-back window needs digests; older ones are dropped."""
        bookmark = partition_state.get("replication_key_value")
        if not bookmark:
            return digests
        floor = epoch(bookmark) - int(self.config.get("lookback_days", 7)) * DAY - 1
        return {key: value for key, value in digests.items() if epoch(value[0]) >= floor}

    # The listed record being emitted (see post_process).
    _listed: dict[str, t.Any] | None = None
    # The backfill's read-ahead thread, while a backfill runs (see _read_ahead).
    _reader: concurrent.futures.ThreadPoolExecutor | None = None

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, t.Any]]:
        """A page of summaries, its strings storable (:mod:`tap_strava.storable_text`).

        The page's bytes are searched once for anything that could decode to NUL or a lone
        surrogate; only a page where something could is walked record by record (with the
        usual warning per record). Nearly every page is clean and costs that one search.
        """
        records = super().parse_response(response)
        if answer_is_storable(response.content):
            yield from records
            return
        for record in records:
            make_record_storable(record, logger=self.logger, stream=self.name)
            yield record

    def post_process(
        self,
        row: dict[str, t.Any],
        context: Context | None = None,  # noqa: ARG002
    ) -> dict[str, t.Any] | None:
        """Tolerant types (see :mod:`tap_strava.conform`); keys were checked when listed.

        The record being emitted (``_listed``, the very object) came from a page that
        :meth:`parse_response` made storable whole: the per-record walk over its strings
        is skipped (it was a tenth of the tap's time). Any other row gets the walk.
        """
        return conform_to_schema(
            row,
            self.schema,
            logger=self.logger,
            label=f"activity {row['id']}",
            storable=row is self._listed,
        )


class AthleteStream(StravaStream):
    """``GET /athlete``: the authorized athlete's profile (one row per athlete).

    Read at most once per UTC day for every pipeline of the token store: Strava's answer
    is shared (:mod:`tap_strava.shared_facts`), while this pipeline's own state (its
    partition's ``delivered``: the ``fetched_at`` of the answer it emitted, written after
    the record, so saved only once the target committed it) says whether it delivered
    today's. A pipeline that has not emits the answer another pipeline fetched today,
    without a request, with the time Strava gave it (``fetched_at``). Without today's
    answer in the cache (the first run of the day, or a lost file) it reads Strava.
    """

    name = "athlete"
    path = "/athlete"
    primary_keys = ("athlete_id",)
    replication_key = None
    schema = ATHLETE_SCHEMA
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # conformed here, unknown keys kept

    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Today's profile, unless this pipeline delivered it already today."""
        run, account = self.sync_run, self.account
        state = self.get_context_state(context)
        answer = todays_answer(run, account.athlete_id, PROFILE, run.started_at.date())
        if answer is not None and state.get(DELIVERED_KEY) == answer.fetched_at:
            self.logger.info("athlete: %s's profile was delivered today already", account.label)
            return
        if answer is None:
            profile = account.profile
            answer = Cached(copy.deepcopy(profile), account.profile_fetched_at)
            run.shared_facts.cache(account.athlete_id, PROFILE, answer.body, answer.fetched_at)
        else:
            self.logger.info("athlete: today's profile from the shared cache (no request)")
        row = copy.deepcopy(answer.body)
        row["fetched_at"] = iso(answer.fetched_at)
        yield conform_to_schema(row, self.schema, logger=self.logger, label="athlete")
        mark_delivered(self, state, answer.fetched_at)


class AthleteStatsStream(StravaStream):
    """``GET /athletes/{id}/stats``: totals, one snapshot row per athlete and UTC day.

    The key ``(athlete_id, snapshot_date)`` keeps a daily history in the target; a
    pipeline delivers one snapshot a day, the one any pipeline of the token store fetched
    first that day (shared cache, see :class:`AthleteStream`).
    """

    name = "athlete_stats"
    path = "/athletes/{athlete_id}/stats"
    primary_keys = ("athlete_id", "snapshot_date")
    replication_key = None
    schema = ATHLETE_STATS_SCHEMA
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE  # post_process conforms

    def get_new_paginator(self) -> None:  # type: ignore[override]
        """One object, one request: no paging."""
        return

    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Today's snapshot, unless this pipeline delivered it already today."""
        run, account = self.sync_run, self.account
        state = self.get_context_state(context)
        answer = todays_answer(run, account.athlete_id, STATS, run.started_at.date())
        if answer is not None and state.get(DELIVERED_KEY) == answer.fetched_at:
            self.logger.info("athlete_stats: today's snapshot was delivered already")
            return
        if answer is None:
            body = self.get_one(f"/athletes/{account.athlete_id}/stats", account)
            if not isinstance(body, dict):
                return
            answer = Cached(body, int(time.time()))
            run.shared_facts.cache(account.athlete_id, STATS, body, answer.fetched_at)
        else:
            self.logger.info("athlete_stats: today's snapshot from the shared cache (no request)")
        row = self.conform_snapshot(copy.deepcopy(answer.body), answer.fetched_at)
        if row is not None:
            yield row
        mark_delivered(self, state, answer.fetched_at)

    def conform_snapshot(self, row: dict[str, t.Any], fetched_at: int) -> dict[str, t.Any] | None:
        """Stamp the snapshot with the UTC date and time Strava gave it."""
        row["snapshot_date"] = (
            datetime.datetime.fromtimestamp(fetched_at, datetime.timezone.utc).date().isoformat()
        )
        row["fetched_at"] = iso(fetched_at)
        return conform_to_schema(row, self.schema, logger=self.logger, label="athlete stats")


#: The partition state key of the athlete and stats streams: the ``fetched_at`` of the
#: answer this pipeline delivered last (written after its record: Meltano saves it only
#: once the target committed that record).
DELIVERED_KEY = "delivered"


def todays_answer(run: SyncRun, athlete_id: int, kind: str, today: datetime.date) -> Cached | None:
    """The shared cache's answer of ``kind`` if Strava gave it on ``today`` (UTC)."""
    answer = run.shared_facts.cached(athlete_id, kind)
    if answer is None:
        return None
    day = datetime.datetime.fromtimestamp(answer.fetched_at, datetime.timezone.utc).date()
    return answer if day == today else None


def mark_delivered(stream: StravaStream, state: dict[str, t.Any], fetched_at: int) -> None:
    """Record in the pipeline's own state which answer it delivered (after its record)."""
    state[DELIVERED_KEY] = int(fetched_at)
    mark_state_changed(stream)
