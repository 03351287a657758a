"""Strava's two rate-limit windows, read from the headers of every API answer.

Strava counts requests per application in a 15-minute window (reset at :00, :15, :30,
:45) and a daily window (reset at midnight UTC), separately for all requests
(``X-RateLimit-*``) and for reads (``X-ReadRateLimit-*``). Each header is
``"<15-minute>,<daily>"``. There is no ``Retry-After``: the reset time follows from the
server's ``Date`` header and the window length, which is injectable because the
simulator's windows are short.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import logging
import time
import typing as t

if t.TYPE_CHECKING:
    import requests

#: The windows of a shared ledger's refusal (:mod:`tap_strava.quota_ledger`).
SHORT, DAY, FAIR = "short", "daily", "fair"


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a request has no place now, and when the refusing window ends."""

    window: str  # SHORT, DAY, or FAIR (the athlete's fair share of the 15-minute window)
    used: int  # of the window (FAIR: by the athlete)
    cap: int  # what this priority may use of the window (FAIR: the athlete's share)
    limit: int | None  # the app's limit (None: not known yet)
    seconds_left: float
    #: FAIR: what the whole 15-minute window holds (the athlete's share is not all: the
    #: other active athletes' unused shares stay theirs).
    window_used: int | None = None

    def describe(self, priority: str) -> str:
        """One line for the log and the state."""
        name = "15-minute" if self.window == SHORT else "daily"
        if self.limit is None:
            return "the app's limits are not known yet (another worker's request is probing)"
        if self.window == FAIR:
            held = "" if self.window_used is None else f"; the window holds {self.window_used}"
            return (
                f"no place left in the 15-minute window for this athlete's {priority} "
                "requests while other athletes are active: their unused fair shares stay "
                f"theirs (this athlete used {self.used} of its share of {self.cap}{held} "
                f"of {self.limit})"
            )
        return (
            f"the app's {name} quota is spent for {priority} requests in the shared ledger "
            f"({self.used}/{self.limit}, {priority} may use {self.cap})"
        )


class SharedLedger(t.Protocol):
    """The app's quota ledger shared by every worker (:mod:`tap_strava.quota_ledger`)."""

    def reserve(self, priority: str = ..., athlete_id: int | None = ...) -> Refusal | None:
        """Count one request in the current windows, or say why it has no place."""

    def correct(self, snapshot: RateLimitSnapshot, *, rate_limited: bool = ...) -> None:
        """Raise the windows to the figures of an answer's headers."""


DEFAULT_WINDOW_SECONDS = 900
DEFAULT_DAY_SECONDS = 86400
# A 429 caused by other users of the app: wait for the next window this many times.
MAX_RATE_LIMITED_RETRIES = 3
WINDOW_MARGIN_SECONDS = 1.0
# A wait is announced when it starts and then every this many seconds, so that a log
# (cron's, strava-job's per-run log) never goes quiet for long during a 15-minute wait.
WAIT_ANNOUNCE_SECONDS = 60.0
# Every wait line starts with this; strava-job relays such lines to its own log.
WAIT_MARKER = "Waiting for Strava's quota"

logger = logging.getLogger("tap-strava.ratelimit")


class QuotaExhausted(Exception):
    """Strava's quota is spent for longer than the run may wait: stop cleanly."""


class RateLimited(Exception):
    """Strava answered 429 (another user of the app spent the window)."""


@dataclasses.dataclass(frozen=True)
class WindowPair:
    """A ``"15-minute,daily"`` pair of numbers."""

    short: int
    daily: int

    @classmethod
    def parse(cls, value: str | None) -> WindowPair | None:
        """Parse ``"100,1000"``; None for a missing or malformed header."""
        if not value:
            return None
        parts = value.split(",")
        if len(parts) != 2:
            return None
        try:
            return cls(int(parts[0].strip()), int(parts[1].strip()))
        except ValueError:
            return None


@dataclasses.dataclass(frozen=True)
class RateLimitSnapshot:
    """The quota state of one API answer."""

    limit: WindowPair | None
    usage: WindowPair | None
    read_limit: WindowPair | None
    read_usage: WindowPair | None
    server_time: float | None  # epoch seconds from the Date header

    @classmethod
    def from_response(cls, response: requests.Response) -> RateLimitSnapshot | None:
        """Read the headers (case-insensitive); None when the answer carries none."""
        headers = response.headers
        snapshot = cls(
            limit=WindowPair.parse(headers.get("X-RateLimit-Limit")),
            usage=WindowPair.parse(headers.get("X-RateLimit-Usage")),
            read_limit=WindowPair.parse(headers.get("X-ReadRateLimit-Limit")),
            read_usage=WindowPair.parse(headers.get("X-ReadRateLimit-Usage")),
            server_time=_parse_http_date(headers.get("Date")),
        )
        if snapshot.read_usage is None and snapshot.usage is None:
            return None
        return snapshot

    def effective(self) -> tuple[WindowPair, WindowPair] | None:
        """(usage, limit) of the binding budget: reads if given, else overall."""
        if self.read_usage and self.read_limit:
            return self.read_usage, self.read_limit
        if self.usage and self.limit:
            return self.usage, self.limit
        return None


class RateLimitTracker:
    """Paces requests by the quota Strava reports, and reports the quota a run used.

    Before each request it looks at the last answer's usage: when the 15-minute window
    is spent it sleeps until the next window if that is within ``max_wait_seconds``,
    otherwise (and whenever the daily quota is spent) it raises
    :class:`QuotaExhausted`, which the streams turn into a clean, resumable stop.
    Window ends are computed from the server's ``Date`` header, not the local clock.
    """

    def __init__(
        self,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        day_seconds: int = DEFAULT_DAY_SECONDS,
        max_wait_seconds: float = DEFAULT_WINDOW_SECONDS,
        sleep: t.Callable[[float], None] | None = None,
        monotonic: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.day_seconds = day_seconds
        self.max_wait_seconds = max_wait_seconds
        self._sleep = sleep
        self._monotonic = monotonic
        self.first: RateLimitSnapshot | None = None
        self.last: RateLimitSnapshot | None = None
        self._last_seen_at: float | None = None  # monotonic time of the last answer
        self._window_spent = False
        self.requests_seen = 0
        self.waited_seconds = 0.0
        self.exhausted: str | None = None  # why the run stopped early, if it did
        # With a shared database: every request reserves its place there first.
        self.ledger: SharedLedger | None = None

    def observe(self, response: requests.Response) -> None:
        """Record the quota headers of an API answer (token calls carry none)."""
        snapshot = RateLimitSnapshot.from_response(response)
        if snapshot is None:
            return
        if self.ledger is not None:
            self.ledger.correct(snapshot, rate_limited=response.status_code == 429)
        self.requests_seen += 1
        if self.first is None:
            self.first = snapshot
        self.last = snapshot
        self._last_seen_at = self._monotonic()
        self._window_spent = False

    def reading(self) -> dict[str, t.Any] | None:
        """The last answer's quota, to be saved for the next run (see :meth:`restore`)."""
        last = self.last
        if last is None or last.server_time is None or self._last_seen_at is None:
            return None
        age = self._monotonic() - self._last_seen_at
        pairs = {
            name: [pair.short, pair.daily]
            for name, pair in (
                ("limit", last.limit),
                ("usage", last.usage),
                ("read_limit", last.read_limit),
                ("read_usage", last.read_usage),
            )
            if pair is not None
        }
        return {"server_time": last.server_time + age, "observed_at": time.time(), **pairs}

    def restore(self, reading: t.Mapping[str, t.Any], now: float | None = None) -> None:
        """Start from an earlier run's last quota reading, if it still tells anything.

        Usage of the same daily window carries over (of the same 15-minute window too), so a
        run that starts while the quota is known to be spent waits or stops before its first
        request instead of provoking a 429. Other users of the app may have spent more
        since: the reading is a lower bound, and the first answer replaces it.
        """
        now = time.time() if now is None else now
        try:
            server_then = float(reading["server_time"])
            elapsed = now - float(reading["observed_at"])
            pairs = {
                name: WindowPair(int(reading[name][0]), int(reading[name][1]))
                for name in ("limit", "usage", "read_limit", "read_usage")
                if name in reading
            }
        except (KeyError, TypeError, ValueError, IndexError):
            return
        if elapsed < 0 or self.last is not None:
            return
        server_now = server_then + elapsed
        if server_now // self.day_seconds != server_then // self.day_seconds:
            return  # a new day: the whole quota is back
        same_window = server_now // self.window_seconds == server_then // self.window_seconds

        def carried(pair: WindowPair | None) -> WindowPair | None:
            if pair is None:
                return None
            return pair if same_window else WindowPair(0, pair.daily)

        self.last = RateLimitSnapshot(
            limit=pairs.get("limit"),
            usage=carried(pairs.get("usage")),
            read_limit=pairs.get("read_limit"),
            read_usage=carried(pairs.get("read_usage")),
            server_time=server_now,
        )
        self._last_seen_at = self._monotonic()

    def before_request(self, priority: str = "daily", athlete_id: int | None = None) -> None:
        """Wait for quota, or raise :class:`QuotaExhausted`; never provoke a 429 ourselves.

        ``priority`` (events, daily, backfill) and ``athlete_id`` (the fair share) matter
        only with a shared ledger.
        """
        if self.exhausted:
            raise QuotaExhausted(self.exhausted)
        budget = self._tightest()
        if budget is not None:
            usage, limit = budget
            if usage.daily >= limit.daily:
                self._stop(f"the daily quota is spent ({usage.daily}/{limit.daily})", daily=True)
            if usage.short >= limit.short and not self._window_spent:
                self._wait_for_next_window(
                    f"the 15-minute quota is spent ({usage.short}/{limit.short})"
                )
        if self.ledger is not None:
            self._reserve(self.ledger, priority, athlete_id)

    def _reserve(self, ledger: SharedLedger, priority: str, athlete_id: int | None) -> None:
        """Take a place in the shared ledger: wait for it, or stop (daily, or too long)."""
        waited = 0.0
        while (refusal := ledger.reserve(priority, athlete_id)) is not None:
            reason = refusal.describe(priority)
            if refusal.window == DAY:
                self._stop(reason, daily=True)
            window_end = refusal.window == SHORT and refusal.limit is not None
            wait = refusal.seconds_left + (WINDOW_MARGIN_SECONDS if window_end else 0.0)
            if waited + wait > self.max_wait_seconds:
                self._stop(
                    f"{reason}; the next window opens in {wait:.0f} s, more than "
                    f"max_rate_limit_wait_seconds={self.max_wait_seconds:.0f}"
                )
            if window_end:
                logger.warning(
                    "%s: %s: %.0f s (the next 15-minute window)", WAIT_MARKER, reason, wait
                )
            self._sleep_announcing(wait)
            waited += wait
            self._window_spent = True  # a new window: the last usage figures are stale

    def after_rate_limited(self, attempt: int) -> None:
        """A 429 from other users' traffic: wait for the next window, a bounded number of times."""
        if attempt > MAX_RATE_LIMITED_RETRIES:
            self._stop(f"Strava kept answering 429 after {MAX_RATE_LIMITED_RETRIES} windows")
        budget = self._tightest()
        if budget is not None and budget[0].daily >= budget[1].daily:
            self._stop(
                f"the daily quota is spent ({budget[0].daily}/{budget[1].daily})", daily=True
            )
        self._wait_for_next_window(
            "Strava answered 429 Rate Limit Exceeded (quota shared by the app)"
        )

    def reads_left(self) -> int | None:
        """Requests this run may still make before the quota stops it (None: not known yet).

        The daily quota if the next 15-minute window is worth waiting for
        (``max_wait_seconds``), else what is left of the current window too.
        """
        budget = self._tightest()
        if budget is None:
            return None
        usage, limit = budget
        daily = max(0, limit.daily - usage.daily)
        reset = self.seconds_until_window_reset()
        wait = (reset if reset is not None else self.window_seconds) + WINDOW_MARGIN_SECONDS
        if wait <= self.max_wait_seconds:
            return daily
        return min(daily, max(0, limit.short - usage.short))

    def seconds_until_window_reset(self) -> float | None:
        """Seconds from now to the next 15-minute boundary of the server's clock."""
        return self._seconds_until(self.window_seconds)

    def seconds_until_day_reset(self) -> float | None:
        """Seconds from now to the next day boundary (midnight UTC) of the server's clock."""
        return self._seconds_until(self.day_seconds)

    def summary(self) -> str:
        """One line for the run's log: quota used in both windows, and headroom."""
        budget = self._tightest()
        if budget is None:
            return "Strava quota: no rate-limit headers seen"
        usage, limit = budget
        return (
            f"Strava read quota after {self.requests_seen} requests this run: "
            f"15-minute window {usage.short}/{limit.short}, "
            f"day {usage.daily}/{limit.daily} "
            f"({max(0, limit.daily - usage.daily)} reads left today)"
        )

    def _tightest(self) -> tuple[WindowPair, WindowPair] | None:
        if self.last is None:
            return None
        pairs = [
            (u, lim)
            for u, lim in (
                (self.last.read_usage, self.last.read_limit),
                (self.last.usage, self.last.limit),
            )
            if u is not None and lim is not None
        ]
        if not pairs:
            return None
        return max(
            pairs, key=lambda p: (p[0].daily / max(p[1].daily, 1), p[0].short / max(p[1].short, 1))
        )

    def _seconds_until(self, length: int) -> float | None:
        if self.last is None or self.last.server_time is None or self._last_seen_at is None:
            return None
        at_answer = length - (self.last.server_time % length)
        return max(0.0, at_answer - (self._monotonic() - self._last_seen_at))

    def _wait_for_next_window(self, reason: str) -> None:
        remaining = self.seconds_until_window_reset()
        wait = (remaining if remaining is not None else self.window_seconds) + WINDOW_MARGIN_SECONDS
        if wait > self.max_wait_seconds:
            self._stop(
                f"{reason}; the next window opens in {wait:.0f} s, more than "
                f"max_rate_limit_wait_seconds={self.max_wait_seconds:.0f}"
            )
        ends = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=wait)
        logger.warning(
            "%s: %s: %.0f s, until %s UTC (the next 15-minute window)",
            WAIT_MARKER,
            reason,
            wait,
            f"{ends:%H:%M:%S}",
        )
        self._sleep_announcing(wait)

    def _sleep_announcing(self, wait: float) -> None:
        """Sleep ``wait`` seconds, saying every minute how long is left (logs never go quiet)."""
        ends = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=wait)
        left = wait
        while left > 0:
            chunk = min(left, WAIT_ANNOUNCE_SECONDS)
            (self._sleep or time.sleep)(chunk)
            left -= chunk
            if left > 0:
                logger.warning(
                    "%s: still waiting, %.0f s left (until %s UTC)",
                    WAIT_MARKER,
                    left,
                    f"{ends:%H:%M:%S}",
                )
        self.waited_seconds += wait
        self._window_spent = True  # a new window: the last usage figures are stale

    def _stop(self, reason: str, *, daily: bool = False) -> t.NoReturn:
        remaining = self.seconds_until_day_reset() if daily else self.seconds_until_window_reset()
        when = ""
        if remaining is not None:
            resume = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
                seconds=remaining
            )
            when = f"; Strava's quota allows going on after {resume:%Y-%m-%d %H:%M:%S} UTC"
        self.exhausted = f"{reason}{when}"
        raise QuotaExhausted(self.exhausted)


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
