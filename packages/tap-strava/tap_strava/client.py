"""The base of every Strava stream: URL, auth, paging, partitions, one request path.

Every request, list page or single GET (:meth:`StravaStream.get_one`), goes through the
SDK's request machinery with the tap's quota pacing around it, and every answer through
:func:`tap_strava.responses.check_strava_response`.
"""

from __future__ import annotations

import re
import typing as t

import backoff
from singer_sdk import metrics
from singer_sdk.pagination import PageNumberPaginator
from singer_sdk.streams import RESTStream

from tap_strava.answer_size import DEFAULT_MAX_ANSWER_MIB, cap_answer_size
from tap_strava.ratelimit import QuotaExhausted
from tap_strava.responses import (
    ATHLETE_FAILURES,
    check_strava_response,
    json_body,
    with_rate_limit_waits,
)
from tap_strava.run import RunOwner, SyncRun
from tap_strava.sdk_adapter import (
    EndOfStreamHook,
    WholeRecordMessages,
    mark_state_changed,
    owning_tap,
)
from tap_strava.state_keys import QUOTA_STARVED_KEY, QUOTA_STOP_KEY

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    import requests
    from singer_sdk.helpers.types import Context

    from tap_strava.athletes import StravaAccount
    from tap_strava.auth import StravaAuthenticator


class StravaStream(WholeRecordMessages, EndOfStreamHook, RESTStream[int]):
    """Base of every Strava stream: URL, auth, error sorting, paging, partitions."""

    records_jsonpath = "$[*]"
    # Partition every stream by athlete, so that several athletes fit later.
    state_partitioning_keys: t.ClassVar[list[str] | None] = None

    @property
    def sync_run(self) -> SyncRun:
        """The sync under way: athletes, start, shared facts (owned by the tap)."""
        return t.cast("RunOwner", owning_tap(self)).sync_run

    _account: StravaAccount | None = None
    #: The class of this stream's requests in the app's shared quota ledger
    #: (:mod:`tap_strava.quota_ledger`): the daily poll unless a stream says otherwise.
    quota_class: t.ClassVar[str] = "daily"

    @property
    def quota_priority(self) -> str:
        """The ledger class of this stream's requests: every request of an events run is one."""
        return "events" if self.sync_run.events is not None else self.quota_class

    def generate_child_contexts(
        self, record: dict[str, t.Any], context: Context | None
    ) -> Iterable[Context | None]:
        """None: no Strava stream has child streams.

        The SDK's default hands every record down as a context, and for each one checks
        the stream maps' filter and copies the context for children there are none of.
        """
        del record, context
        return ()

    @property
    def account(self) -> StravaAccount:
        """The account of the partition being synced (its athlete's token)."""
        return self._account or self.sync_run.athletes.first

    @property
    def enabled(self) -> bool:
        """Whether this run should request anything for the stream (see per-run budgets)."""
        return True

    @property
    def url_base(self) -> str:
        """``api_url`` without a trailing slash (switchable for Strava's 2027 base)."""
        return str(self.config["api_url"]).rstrip("/")

    @property
    def authenticator(self) -> StravaAuthenticator:
        """Bearer token in the ``Authorization`` header, never in the query string."""
        return self.account.authenticator

    @property
    def requests_session(self) -> requests.Session:
        """The SDK's session, with every answer read under a size cap (:mod:`answer_size`)."""
        max_mib = int(self.config.get("max_answer_mib") or DEFAULT_MAX_ANSWER_MIB)
        return cap_answer_size(super().requests_session, max_mib)

    @property
    def timeout(self) -> int:
        """Seconds before a request is abandoned and retried."""
        return int(self.config.get("request_timeout", 60))

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per athlete whose profile could be read.

        The quota belongs to the app, so athletes share it: an athlete that a spent quota
        left without any request in the last run goes first in this one, then one it cut
        short, then the others.
        """
        try:
            athlete_ids = list(self.sync_run.athletes.resolved)
        except QuotaExhausted:
            return None  # get_records then stops at once; nothing is lost
        # 0: got nothing last run, 1: cut short, 2: served in full (stable within each).
        priority = {
            (partition.get("context") or {}).get("athlete_id"): (
                0 if partition.get(QUOTA_STARVED_KEY) else 1
            )
            for partition in (self.stream_state.get("partitions") or [])
            if partition.get(QUOTA_STOP_KEY)
        }
        athlete_ids.sort(key=lambda athlete_id: priority.get(athlete_id, 2))
        return [{"athlete_id": athlete_id} for athlete_id in athlete_ids]

    def request_decorator(self, func: t.Callable) -> t.Callable:
        """The SDK's retries for 5xx and network errors, paced by Strava's quota.

        Every try first waits for quota (:meth:`RateLimitTracker.before_request`); a 429
        escapes the SDK's short backoff and waits for the next window instead.
        """

        def paced(*args: t.Any, **kwargs: t.Any) -> t.Any:
            account = self.account
            account.rate_limits.before_request(self.quota_priority, account.known_athlete_id)
            return func(*args, **kwargs)

        return with_rate_limit_waits(super().request_decorator(paced), self.account.rate_limits)

    def validate_response(self, response: requests.Response) -> None:
        """Sort the answer (see :func:`check_strava_response`)."""
        check_strava_response(response, self.account)

    def backoff_wait_generator(self) -> Generator[float, None, None]:
        """1, 2, 4, 8 s between tries: short enough for a cron job, long enough for 5xx."""
        return backoff.expo(factor=1, max_value=60)  # type: ignore[no-any-return]

    def backoff_max_tries(self) -> int:
        """Five tries, then the error ends the run (its state stays at the last window)."""
        return 5

    def get_new_paginator(self) -> PageNumberPaginator | None:
        """Strava pages from 1 and has no total: stop at the first empty page.

        A single GET (:meth:`get_one`) has no paginator: ``PageNumberPaginator`` stops only
        on an empty page, so a single object would be asked for again and again.
        """
        if self._single is not None:
            return None
        return PageNumberPaginator(start_value=1)

    # The path and query of the single GET under way (see get_one), and its answer.
    _single: tuple[str, dict[str, t.Any]] | None = None
    _single_body: t.Any = None

    def get_one(
        self, path: str, account: StravaAccount, params: dict[str, t.Any] | None = None
    ) -> t.Any:
        """GET one API path for ``account`` and return its JSON body.

        It goes through the SDK's request machinery like every list page: the same
        retries and backoff, the tap's rate-limit pacing and 429 waits
        (:meth:`request_decorator`), the same answer sorting (:meth:`validate_response`)
        and the SDK's request metrics under this stream's name. A 404 raises
        :class:`~tap_strava.responses.StravaNotFound`.
        """
        saved = self._account, self._single, self._single_body
        self._account, self._single, self._single_body = account, (path, params or {}), None
        try:
            for _ in self.request_records(None):
                pass
            return self._single_body
        finally:
            self._account, self._single, self._single_body = saved

    def get_http_request_counter(self) -> metrics.Counter:
        """The SDK's request counter, tagged with the single GET's endpoint when there is one.

        The endpoint is a template (``/activities/{id}/laps``), as the SDK's own tag is
        (``self.path``), so that metrics group by endpoint, not by activity.
        """
        if self._single is not None:
            endpoint = re.sub(r"^/(activities|gear|athletes)/[^/]+", r"/\1/{id}", self._single[0])
            return metrics.http_request_counter(self.name, endpoint=endpoint)
        return super().get_http_request_counter()

    def get_url(self, context: Context | None) -> str:
        """The stream's URL, or that of the single GET under way."""
        if self._single is not None:
            return f"{self.url_base}{self._single[0]}"
        return super().get_url(context)

    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        """The single GET's query, else the stream's (see subclasses)."""
        if self._single is not None:
            return dict(self._single[1])
        return self.stream_url_params(context, next_page_token)

    def stream_url_params(
        self,
        context: Context | None,  # noqa: ARG002
        next_page_token: t.Any,  # noqa: ARG002
    ) -> dict[str, t.Any]:
        """Query parameters of the stream's own requests (none by default)."""
        return {}

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """A JSON list of records, or one object (``/athlete``, stats)."""
        body = json_body(response)
        if self._single is not None:
            self._single_body = body  # get_one returns the whole body
            return
        if isinstance(body, list):
            yield from (item for item in body if isinstance(item, dict))
        elif isinstance(body, dict):
            yield body

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Records of one partition; a spent quota ends the stream cleanly (resumable).

        "Cleanly" means: what was fetched is emitted, the state stays at the last finished
        window, the reason lands in the state (``quota_stop``) and the tap exits 0.
        """
        athletes = self.sync_run.athletes
        self._account = athletes.account_for(context)
        rate_limits = self.account.rate_limits
        stopped: str | None = None
        starved = False
        if not self.enabled or self.account.failure:
            return
        try:
            if rate_limits.exhausted:
                stopped, starved = rate_limits.exhausted, True
                self.logger.warning("Skipping %s: %s", self.name, stopped)
                return
            yield from self.get_partition_records(context)
        except QuotaExhausted as exc:
            stopped = str(exc)
            self.logger.warning(
                "Stopping %s early; the next run resumes from the state: %s", self.name, stopped
            )
        except ATHLETE_FAILURES as exc:
            if not athletes.several:
                raise
            # One athlete's failure must not cost the others their sync: what this
            # partition emitted stays, with its state; the athlete is skipped from here on.
            athletes.skip(self.account, exc)
        finally:
            self._mark_quota_stop(context, stopped, starved=starved)
            self.logger.info(rate_limits.summary())
            athletes.save_quota_reading()

    def after_stream(self) -> None:
        """After the stream: also record athletes skipped so far (see the tap)."""
        self.sync_run.report_skipped()

    def _mark_quota_stop(
        self, context: Context | None, reason: str | None, *, starved: bool = False
    ) -> None:
        """Record (or clear) a quota stop; ``starved``: the partition got no request at all."""
        state = self.get_context_state(context)
        before = (state.get(QUOTA_STOP_KEY), state.get(QUOTA_STARVED_KEY))
        if reason:
            state[QUOTA_STOP_KEY] = reason
        else:
            state.pop(QUOTA_STOP_KEY, None)
        if starved:
            state[QUOTA_STARVED_KEY] = True
        else:
            state.pop(QUOTA_STARVED_KEY, None)
        changed = (state.get(QUOTA_STOP_KEY), state.get(QUOTA_STARVED_KEY)) != before
        if context is not None:
            # A stop before any partition existed (the very first request got a 429, so no
            # athlete was known) was recorded at stream level. This partition got past
            # that point, so the stream-level marker is history: without this it would
            # make every later run "partial" forever (issue 13).
            stream_level = self.stream_state
            for key in (QUOTA_STOP_KEY, QUOTA_STARVED_KEY):
                if key in stream_level:
                    stream_level.pop(key)
                    changed = True
        if changed:
            mark_state_changed(self)  # make the SDK emit the changed state

    def get_partition_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Records of one partition (the SDK adds ``athlete_id`` from the context)."""
        yield from super().get_records(context)
