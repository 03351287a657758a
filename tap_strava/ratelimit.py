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
import email.utils
import typing as t

if t.TYPE_CHECKING:
    import requests

DEFAULT_WINDOW_SECONDS = 900
DEFAULT_DAY_SECONDS = 86400


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
    """Remembers the quota seen during a run, for pacing and for the run's log."""

    def __init__(
        self,
        *,
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
        day_seconds: int = DEFAULT_DAY_SECONDS,
    ) -> None:
        self.window_seconds = window_seconds
        self.day_seconds = day_seconds
        self.first: RateLimitSnapshot | None = None
        self.last: RateLimitSnapshot | None = None
        self.requests_seen = 0

    def observe(self, response: requests.Response) -> None:
        """Record the quota headers of an API answer (token calls carry none)."""
        snapshot = RateLimitSnapshot.from_response(response)
        if snapshot is None:
            return
        self.requests_seen += 1
        if self.first is None:
            self.first = snapshot
        self.last = snapshot

    def seconds_until_window_reset(self) -> float | None:
        """Seconds from the last answer's server time to the next 15-minute boundary."""
        if self.last is None or self.last.server_time is None:
            return None
        return self.window_seconds - (self.last.server_time % self.window_seconds)

    def seconds_until_day_reset(self) -> float | None:
        """Seconds from the last answer's server time to the next day boundary (UTC)."""
        if self.last is None or self.last.server_time is None:
            return None
        return self.day_seconds - (self.last.server_time % self.day_seconds)

    def summary(self) -> str:
        """One line for the run's log: quota used in both windows, and headroom."""
        if self.last is None or self.last.effective() is None:
            return "Strava quota: no rate-limit headers seen"
        usage, limit = t.cast("tuple[WindowPair, WindowPair]", self.last.effective())
        return (
            f"Strava read quota after {self.requests_seen} requests this run: "
            f"15-minute window {usage.short}/{limit.short}, "
            f"day {usage.daily}/{limit.daily} "
            f"({max(0, limit.daily - usage.daily)} reads left today)"
        )


def _parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
