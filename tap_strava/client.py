"""Talking to Strava's REST API: the base stream, the per-athlete account, error sorting.

Every answer goes through :func:`check_strava_response`, which sorts it:

* 2xx with a JSON body: fine (its rate-limit headers are recorded);
* 5xx, HTML from a proxy, malformed or truncated JSON: retriable with backoff;
* 429: wait for Strava's next quota window (see :mod:`tap_strava.ratelimit`);
* 401 with a bad access token: refresh once, then a one-line :class:`StravaAuthError`;
* 401 for a missing scope, 403: one-line errors that name the fix;
* other 4xx: fatal, with Strava's own message.
"""

from __future__ import annotations

import typing as t
from functools import cached_property
from http import HTTPStatus
from urllib.parse import urlparse

import backoff
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.pagination import PageNumberPaginator
from singer_sdk.streams import RESTStream

from tap_strava.auth import StravaAuthenticator
from tap_strava.errors import (
    StravaAuthError,
    StravaScopeError,
    strava_error_fields,
    strava_error_summary,
)
from tap_strava.ratelimit import QuotaExhausted, RateLimited, RateLimitTracker
from tap_strava.sdk_adapter import EndOfStreamHook, mark_state_changed, owning_tap

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable

    from singer_sdk.helpers.types import Context

    from tap_strava.tap import TapStrava

MAX_PAGE_SIZE = 200
UNAUTHORIZED_RETRIES = 1
# Set in a stream's (partition) state when a spent quota ended it early; removed when a
# later run completes it. Downstream (the run-tally mapper) reports such a run as partial.
QUOTA_STOP_KEY = "quota_stop"
# Set in the ``activities`` stream state when some athletes were skipped (several athletes):
# label -> reason. The run-tally mapper reports such a run as partial too.
SKIPPED_ATHLETES_KEY = "skipped_athletes"
# With a quota stop: the partition got no request at all in that run (it goes first next).
QUOTA_STARVED_KEY = "quota_starved"


# What Strava answers about one athlete (revoked or rejected token, missing scope, a 403,
# 5xx that outlasted every retry): with several athletes only these skip the athlete.
# Anything else (a bug, a spent quota, the network, the token store) concerns the run.
ATHLETE_FAILURES: tuple[type[BaseException], ...] = (
    StravaAuthError,
    StravaScopeError,
    RetriableAPIError,
)


class StravaNotFound(FatalAPIError):
    """404: the record is gone (e.g. an activity deleted between listing and fetching)."""


_BODY_ATTRIBUTE = "_strava_json_body"


def _json_body(response: requests.Response) -> t.Any:
    """The decoded JSON of an answer (None if it is not JSON), decoded once per answer.

    Both the error sorting and the record parsing need it; decoding a 200-activity page
    twice was a tenth of the tap's time.
    """
    if _BODY_ATTRIBUTE in response.__dict__:
        return response.__dict__[_BODY_ATTRIBUTE]
    try:
        body = response.json()
    except ValueError:
        body = None
    response.__dict__[_BODY_ATTRIBUTE] = body
    return body


def check_strava_response(response: requests.Response, account: StravaAccount) -> None:
    """Raise the right exception for a Strava answer; return for a usable one."""
    account.rate_limits.observe(response)
    status = response.status_code
    body = _json_body(response)
    summary = strava_error_summary(status, body, response.text)
    path = urlparse(response.url).path

    if status == HTTPStatus.TOO_MANY_REQUESTS:
        raise RateLimited(f"Strava rate limit reached on {path} ({summary})")
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        raise RetriableAPIError(f"Strava server error on {path}: {summary}", response)
    if status == HTTPStatus.UNAUTHORIZED:
        fields = {field for _, field, _ in strava_error_fields(body)}
        if any(field.endswith("_permission") for field in fields):
            msg = (
                f"The Strava token lacks a required scope ({summary}): authorize the app "
                "again granting read,activity:read_all,profile:read_all with "
                "`tap-strava-auth` (it sets the new refresh token in .env)"
            )
            raise StravaScopeError(msg)
        if account.unauthorized_retries < UNAUTHORIZED_RETRIES:
            account.unauthorized_retries += 1
            account.authenticator.invalidate_access_token()
            msg = f"Strava rejected the access token on {path}; refreshing it once"
            raise RetriableAPIError(msg, response)
        hint = account.authenticator.reauthorize_hint
        msg = f"Strava rejects this athlete's tokens ({summary}): {hint}"
        raise StravaAuthError(msg)
    if status == HTTPStatus.FORBIDDEN:
        if "inactive" in response.text.lower():
            msg = (
                "Strava answered 403 Application Status Inactive: the Strava API app needs an "
                "active developer subscription (https://www.strava.com/settings/api)"
            )
            raise StravaAuthError(msg)
        msg = f"Strava refused access to {path} ({summary}): the token's athlete may not read it"
        raise StravaAuthError(msg)
    if status == HTTPStatus.NOT_FOUND:
        raise StravaNotFound(f"Strava has no {path}: {summary}")
    if status >= HTTPStatus.BAD_REQUEST:
        raise FatalAPIError(f"Strava refused {path}: {summary}")
    if body is None:
        # A 200 whose body is not JSON: a truncated answer or a proxy page. Retry.
        msg = f"Strava answered {path} with a body that is not valid JSON ({summary})"
        raise RetriableAPIError(msg, response)
    account.unauthorized_retries = 0


_F = t.TypeVar("_F", bound=t.Callable[..., t.Any])


def with_rate_limit_waits(func: _F, rate_limits: RateLimitTracker) -> _F:
    """Call ``func``; after a 429, wait for the next quota window and call it again."""

    def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
        attempt = 0
        while True:
            try:
                return func(*args, **kwargs)
            except RateLimited:
                attempt += 1
                rate_limits.after_rate_limited(attempt)

    return t.cast("_F", call)


class StravaAccount:
    """One authorized athlete: its authenticator, quota view and cached profile.

    The tap has one account per configured refresh token; streams are partitioned by
    ``athlete_id`` and each partition uses its athlete's account. Accounts share the
    app's :class:`RateLimitTracker`.
    """

    def __init__(
        self,
        *,
        label: str = "refresh_token",
        authenticator: StravaAuthenticator,
        api_url: str,
        rate_limits: RateLimitTracker,
        session: requests.Session,
        timeout: float,
    ) -> None:
        self.label = label
        self.authenticator = authenticator
        # Why this athlete is skipped for the rest of the run (several athletes), if it is.
        self.failure: str | None = None
        self.api_url = api_url.rstrip("/")
        self.rate_limits = rate_limits
        self.unauthorized_retries = 0
        self._session = session
        self._timeout = timeout

    @cached_property
    def profile(self) -> dict[str, t.Any]:
        """``GET /athlete``, fetched once per run and shared by every stream.

        The athlete's id goes into the token store: a reconcile needs to know every
        athlete that ever loaded rows (see ``TapStrava.check_reconcile_coverage``).
        """
        profile = t.cast("dict[str, t.Any]", self.get_json("/athlete"))
        if isinstance(profile.get("id"), int):
            self.authenticator.token_store.remember_athlete(int(profile["id"]))
        return profile

    @cached_property
    def athlete_id(self) -> int:
        """The authorized athlete's id: from the token store if known, else the profile's.

        The token store records whose chain it is once a profile said so, so that a run
        that does not need the profile today (it is loaded once a day) does not fetch it
        just to learn the id.
        """
        stored = self.authenticator.token_store.load()
        if stored is not None and isinstance(stored.athlete_id, int):
            return stored.athlete_id
        return int(self.profile["id"])

    @property
    def profile_fetched(self) -> bool:
        """Whether this run has fetched the profile already (no request to ask)."""
        return "profile" in self.__dict__

    def get_json(self, path: str) -> t.Any:
        """GET one API path with the account's token, retrying transient failures."""

        @backoff.on_exception(
            backoff.expo,
            (RetriableAPIError, requests.exceptions.ConnectionError, requests.exceptions.Timeout),
            max_tries=5,
            factor=1,
        )
        def _get() -> t.Any:
            self.rate_limits.before_request()
            request = requests.Request("GET", f"{self.api_url}{path}").prepare()
            response = self._session.send(self.authenticator(request), timeout=self._timeout)
            check_strava_response(response, self)
            return _json_body(response)

        return with_rate_limit_waits(_get, self.rate_limits)()


class StravaStream(EndOfStreamHook, RESTStream[int]):
    """Base of every Strava stream: URL, auth, error sorting, paging, partitions."""

    records_jsonpath = "$[*]"
    # Partition every stream by athlete, so that several athletes fit later.
    state_partitioning_keys: t.ClassVar[list[str] | None] = None

    @property
    def strava_tap(self) -> TapStrava:
        """The tap that owns this stream (typed)."""
        return t.cast("TapStrava", owning_tap(self))

    _account: StravaAccount | None = None

    @property
    def account(self) -> StravaAccount:
        """The account of the partition being synced (its athlete's token)."""
        return self._account or self.strava_tap.account

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
            athlete_ids = list(self.strava_tap.athlete_accounts)
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
            self.account.rate_limits.before_request()
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

    def get_new_paginator(self) -> PageNumberPaginator:
        """Strava pages from 1 and has no total: stop at the first empty page."""
        return PageNumberPaginator(start_value=1)

    def parse_response(self, response: requests.Response) -> Iterable[dict]:
        """A JSON list of records, or one object (``/athlete``, stats)."""
        body = _json_body(response)
        if isinstance(body, list):
            yield from (item for item in body if isinstance(item, dict))
        elif isinstance(body, dict):
            yield body

    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        """Records of one partition; a spent quota ends the stream cleanly (resumable).

        "Cleanly" means: what was fetched is emitted, the state stays at the last finished
        window, the reason lands in the state (``quota_stop``) and the tap exits 0.
        """
        tap = self.strava_tap
        self._account = tap.account_for(context)
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
            if not tap.several_athletes:
                raise
            # One athlete's failure must not cost the others their sync: what this
            # partition emitted stays, with its state; the athlete is skipped from here on.
            tap.skip_athlete(self.account, exc)
        finally:
            self._mark_quota_stop(context, stopped, starved=starved)
            self.logger.info(rate_limits.summary())
            tap.save_quota_reading()

    def after_stream(self) -> None:
        """After the stream: also record athletes skipped so far (see the tap)."""
        self.strava_tap.report_skipped_athletes()

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
