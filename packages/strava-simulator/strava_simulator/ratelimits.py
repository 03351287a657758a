"""Strava's per-application rate limits: 15-minute and daily windows, overall and read.

Every API request counts toward the overall limits, every GET also toward the read limits,
including requests that are answered 429 (so hammering a spent quota keeps the daily usage
growing). Windows are aligned to the clock, like Strava's :00/:15/:30/:45 and midnight UTC;
both lengths are injectable so tests can use windows of a few seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Configured limits (15-minute, daily) for reads and for all requests."""

    read_15min: int = 100
    read_daily: int = 1000
    overall_15min: int = 200
    overall_daily: int = 2000
    window_seconds: float = 900.0
    day_seconds: float = 86_400.0


@dataclass(frozen=True)
class Decision:
    """Outcome of counting one request: whether it is over a limit, and its headers."""

    limited: bool
    headers: tuple[tuple[str, str], ...]


class RateLimiter:
    """Counts requests in aligned windows and decides when to answer 429."""

    def __init__(self, limits: Limits) -> None:
        if limits.window_seconds <= 0 or limits.day_seconds <= 0:
            msg = "window_seconds and day_seconds must be positive"
            raise ValueError(msg)
        self.limits = limits
        self._lock = threading.Lock()
        self._window = -1
        self._day = -1
        self._overall_15 = 0
        self._read_15 = 0
        self._overall_day = 0
        self._read_day = 0

    def _roll(self, now: float) -> None:
        """Reset the counters whose window ended (called with the lock held)."""
        window = int(now // self.limits.window_seconds)
        day = int(now // self.limits.day_seconds)
        if window != self._window:
            self._window = window
            self._overall_15 = 0
            self._read_15 = 0
        if day != self._day:
            self._day = day
            self._overall_day = 0
            self._read_day = 0

    def _headers(self) -> tuple[tuple[str, str], ...]:
        lim = self.limits
        return (
            ("X-RateLimit-Limit", f"{lim.overall_15min},{lim.overall_daily}"),
            ("X-RateLimit-Usage", f"{self._overall_15},{self._overall_day}"),
            ("X-ReadRateLimit-Limit", f"{lim.read_15min},{lim.read_daily}"),
            ("X-ReadRateLimit-Usage", f"{self._read_15},{self._read_day}"),
        )

    def count(self, now: float, *, is_read: bool) -> Decision:
        """Count one request and decide; the request itself is included in the usage."""
        lim = self.limits
        with self._lock:
            self._roll(now)
            self._overall_15 += 1
            self._overall_day += 1
            if is_read:
                self._read_15 += 1
                self._read_day += 1
            limited = self._overall_15 > lim.overall_15min or self._overall_day > lim.overall_daily
            if is_read:
                limited = (
                    limited or self._read_15 > lim.read_15min or (self._read_day > lim.read_daily)
                )
            return Decision(limited, self._headers())

    def spend_by_others(self, now: float) -> None:
        """Use up the current 15-minute read quota as other users of the app would.

        Their GETs count toward the overall and daily usage too, as on Strava, where the
        quota is shared by every athlete of the application.
        """
        with self._lock:
            self._roll(now)
            missing = max(0, self.limits.read_15min - self._read_15)
            self._read_15 += missing
            self._read_day += missing
            self._overall_15 += missing
            self._overall_day += missing

    def usage(self, now: float) -> tuple[int, int, int, int]:
        """Return (read_15min, read_daily, overall_15min, overall_daily) at ``now``."""
        with self._lock:
            self._roll(now)
            return (self._read_15, self._read_day, self._overall_15, self._overall_day)

    def reset(self) -> None:
        """Forget all usage (a test or demo convenience, not a Strava behaviour)."""
        with self._lock:
            self._window = -1
            self._day = -1
            self._overall_15 = self._read_15 = self._overall_day = self._read_day = 0
