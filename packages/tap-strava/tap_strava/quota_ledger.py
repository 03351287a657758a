"""One quota ledger for the app: every request of every worker reserves its place first.

Strava's quota belongs to the application, not to a process: with several workers, each
one's view of the last answer's headers (:class:`tap_strava.ratelimit.RateLimitTracker`)
is out of date as soon as another worker sends a request, and together they would
overshoot the window and get 429s. With a shared database the tracker asks this ledger
before each request:

* **reservation**: one transaction locks the current 15-minute and daily rows of
  ``quota_windows`` (windows on the *database's* clock, aligned like Strava's: :00/:15/
  :30/:45 and midnight UTC) and counts the request in both, or refuses it, telling how
  long until the refusing window ends. Nothing is sent without a place.
* **correction**: every answer's headers raise a window's count to Strava's figure when it
  is larger (other apps' users, a worker that crashed before its answer): the larger of
  ledger and header wins; a 429 marks the window spent and is counted in ``rate_limited``.
* **priorities**: events first, then the daily polls, then backfills (details, laps,
  zones, streams). A reserve (``quota_reserve_percent`` of each window, Heatflask keeps
  50 requests) is kept for events: daily polls stop short of it, backfills stop short of
  twice it, so a backfill never starves the events of the day.
* **unknown limits**: until any answer has told the app's limits (a fresh database), one
  request per window probes them; the others wait a moment for its headers.

Limits are read from the headers, never assumed (the Extended tier's are set per app).
"""

from __future__ import annotations

import math
import typing as t

from tap_strava.errors import StravaConfigError
from tap_strava.ratelimit import DAY, SHORT, Refusal
from tap_strava.shared_database import SCHEMA, SharedDatabase, db_error, describe

if t.TYPE_CHECKING:
    import psycopg

    from tap_strava.ratelimit import RateLimitSnapshot

#: The request classes, most important first.
EVENTS, DAILY, BACKFILL = "events", "daily", "backfill"
PRIORITIES = (EVENTS, DAILY, BACKFILL)
DEFAULT_RESERVE_PERCENT = 10
#: While the limits are unknown, how long a refused request waits for the probe's answer.
PROBE_WAIT_SECONDS = 0.25
_LIMITS = "read"
_START = "floor(extract(epoch FROM now()) / %({length})s)::bigint * %({length})s"
_CREATE_WINDOWS = (
    f"INSERT INTO {SCHEMA}.quota_windows (kind, window_start, window_seconds) "  # noqa: S608
    f"VALUES ('{DAY}', {_START.format(length='day')}, %(day)s), "
    f"('{SHORT}', {_START.format(length='window')}, %(window)s) ON CONFLICT DO NOTHING"
)
#: What a priority may use of a window: the limit less ``steps`` reserves; unknown
#: limits: one probe per 15-minute window, no daily bound.
_CAP = (
    "COALESCE((SELECT {column} - %(steps)s * ceil({column} * %(percent)s / 100.0) "  # noqa: S608
    f"FROM {SCHEMA}.quota_limits WHERE name = %(name)s), {{unknown}})"
)
_RAISE_PARTS = {
    DAY: {
        "start": _START.format(length="day"),
        "length": "%(day)s",
        "cap": _CAP.format(column="daily_limit", unknown=2**31 - 1),
    },
    SHORT: {
        "start": _START.format(length="window"),
        "length": "%(window)s",
        "cap": _CAP.format(column="short_limit", unknown=1),
    },
}
_RAISE = (
    f"UPDATE {SCHEMA}.quota_windows SET used = used + 1, reserved = reserved + 1, "  # noqa: S608
    "updated_at = now() WHERE kind = '{kind}' AND window_start = {start} "
    "AND window_seconds = {length} AND used + 1 <= {cap} RETURNING used"
)
_REFUSAL = (
    "SELECT extract(epoch FROM now())::float8, "  # noqa: S608
    f"(SELECT short_limit FROM {SCHEMA}.quota_limits WHERE name = %(name)s), "
    f"(SELECT daily_limit FROM {SCHEMA}.quota_limits WHERE name = %(name)s), "
    f"(SELECT used FROM {SCHEMA}.quota_windows WHERE kind = '{SHORT}' "
    f"AND window_start = {_START.format(length='window')} AND window_seconds = %(window)s), "
    f"(SELECT used FROM {SCHEMA}.quota_windows WHERE kind = '{DAY}' "
    f"AND window_start = {_START.format(length='day')} AND window_seconds = %(day)s)"
)


def caps(limit: int, priority: str, reserve_percent: int) -> int:
    """What one priority may use of a window of ``limit`` requests."""
    reserve = math.ceil(limit * reserve_percent / 100) if reserve_percent > 0 else 0
    steps = PRIORITIES.index(priority) if priority in PRIORITIES else PRIORITIES.index(DAILY)
    return max(0, limit - steps * reserve)


class QuotaLedger:
    """The app's shared count of requests per window (see the module docstring)."""

    def __init__(
        self,
        database: SharedDatabase,
        *,
        window_seconds: int = 900,
        day_seconds: int = 86400,
        reserve_percent: int = DEFAULT_RESERVE_PERCENT,
    ) -> None:
        self.database = database
        self.window_seconds = int(window_seconds)
        self.day_seconds = int(day_seconds)
        self.reserve_percent = int(reserve_percent)
        self._connection: psycopg.Connection[t.Any] | None = None
        self._known_limits: tuple[int, int] | None = None

    @property
    def connection(self) -> psycopg.Connection[t.Any]:
        """The ledger's own connection (opened on first use).

        Its commits do not wait for the disk (``synchronous_commit = off``): a server
        crash may forget the last few milliseconds of reservations, which the next
        answer's headers put back; a reservation costs a millisecond, not an fsync.
        """
        if self._connection is None or self._connection.closed:
            connection = self.database.connect()
            connection.execute("SET synchronous_commit = off")
            connection.commit()
            self._connection = connection
        return self._connection

    def close(self) -> None:
        """Close the connection (a new one opens on the next use)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def reserve(self, priority: str = DAILY) -> Refusal | None:
        """Count one request in the current windows, or say why not (nothing counted).

        One round trip in the common case (psycopg's pipeline): create the two window rows
        if missing, then raise each by one only while it stays within this priority's cap
        (``UPDATE ... WHERE used + 1 <= cap``: PostgreSQL re-checks the condition on the
        newest row after waiting for another worker's lock), daily window first in every
        worker. Both raised: commit; otherwise roll back and say which window refused.
        The windows are those of the transaction's start on the database's clock.
        """
        import psycopg

        steps = PRIORITIES.index(priority) if priority in PRIORITIES else PRIORITIES.index(DAILY)
        connection = self.connection
        params = {
            "day": self.day_seconds,
            "window": self.window_seconds,
            "steps": steps,
            "percent": self.reserve_percent,
            "name": _LIMITS,
        }
        try:
            with connection.pipeline():
                connection.execute(_CREATE_WINDOWS, params)
                daily = connection.execute(_RAISE.format(kind=DAY, **_RAISE_PARTS[DAY]), params)
                short = connection.execute(_RAISE.format(kind=SHORT, **_RAISE_PARTS[SHORT]), params)
            granted = daily.fetchone() is not None and short.fetchone() is not None
            if granted:
                connection.commit()
                return None
            connection.rollback()
            return self._refusal(priority)
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc

    def _refusal(self, priority: str) -> Refusal:
        """Which window refused a request, how full it is, and when it ends."""
        row = self.connection.execute(
            _REFUSAL, {"day": self.day_seconds, "window": self.window_seconds, "name": _LIMITS}
        ).fetchone()
        self.connection.rollback()
        assert row is not None
        now, short_limit, daily_limit, short_used, daily_used = row
        now = float(now)
        for kind, limit, used, length in (
            (DAY, daily_limit, daily_used, self.day_seconds),
            (SHORT, short_limit, short_used, self.window_seconds),
        ):
            if limit is None:
                cap = 1 if kind == SHORT else 2**31 - 1  # the probe of unknown limits
            else:
                cap = caps(int(limit), priority, self.reserve_percent)
            if int(used or 0) + 1 > cap:
                left = length - now % length
                if limit is None:
                    left = min(left, PROBE_WAIT_SECONDS)
                return Refusal(kind, int(used or 0), cap, limit, max(0.0, left))
        # The window turned over between the refusal and this look: try again at once.
        return Refusal(SHORT, int(short_used or 0), 0, short_limit, 0.0)

    def correct(self, snapshot: RateLimitSnapshot, *, rate_limited: bool = False) -> None:
        """Raise the windows of this answer to Strava's figures (the larger count wins)."""
        import psycopg

        figures = _equivalent_read_usage(snapshot)
        if figures is None:
            return
        (short_used, daily_used), (short_limit, daily_limit) = figures
        connection = self.connection
        try:
            if self._known_limits != (short_limit, daily_limit):
                connection.execute(
                    f"INSERT INTO {SCHEMA}.quota_limits (name, short_limit, daily_limit) "  # noqa: S608
                    "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                    "short_limit = EXCLUDED.short_limit, daily_limit = EXCLUDED.daily_limit, "
                    "updated_at = now()",
                    (_LIMITS, short_limit, daily_limit),
                )
            if snapshot.server_time is not None:
                at = float(snapshot.server_time)
            else:
                found = connection.execute(
                    "SELECT extract(epoch FROM clock_timestamp())::float8"
                ).fetchone()
                at = float(found[0]) if found else 0.0
            for kind, length, used, limit in (
                (DAY, self.day_seconds, daily_used, daily_limit),
                (SHORT, self.window_seconds, short_used, short_limit),
            ):
                spent = max(used, limit) if rate_limited else used
                connection.execute(
                    f"INSERT INTO {SCHEMA}.quota_windows AS w (kind, window_start, "  # noqa: S608
                    "window_seconds, used, rate_limited) VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (kind, window_start, window_seconds) DO UPDATE SET "
                    "used = GREATEST(w.used, EXCLUDED.used), "
                    "rate_limited = w.rate_limited + EXCLUDED.rate_limited, updated_at = now()",
                    (kind, int(at // length) * length, length, spent, int(rate_limited)),
                )
            connection.commit()
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc
        self._known_limits = (short_limit, daily_limit)

    def windows(self) -> list[dict[str, t.Any]]:
        """Every window of the ledger, newest first (reports, benchmarks, tests)."""
        rows = self.connection.execute(
            "SELECT kind, window_start, window_seconds, reserved, used, rate_limited "  # noqa: S608
            f"FROM {SCHEMA}.quota_windows ORDER BY window_start DESC, kind"
        ).fetchall()
        self.connection.commit()
        names = ("kind", "window_start", "window_seconds", "reserved", "used", "rate_limited")
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _failure(self, exc: Exception) -> StravaConfigError:
        return StravaConfigError(
            f"The shared quota ledger in {describe(self.database.url)} failed "
            f"({db_error(exc)}): check the database and run again"
        )


def _equivalent_read_usage(
    snapshot: RateLimitSnapshot,
) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(usage, limit) as reads, the overall budget folded in when it is the tighter one.

    Every request of the tap is a GET, counted in both budgets: what is left is the smaller
    of the two remainders, expressed against the read limit.
    """
    read_usage, read_limit = snapshot.read_usage, snapshot.read_limit
    usage, limit = snapshot.usage, snapshot.limit
    if read_usage is None or read_limit is None:
        if usage is None or limit is None:
            return None
        return (usage.short, usage.daily), (limit.short, limit.daily)
    short, daily = read_usage.short, read_usage.daily
    if usage is not None and limit is not None:
        short = max(short, read_limit.short - (limit.short - usage.short))
        daily = max(daily, read_limit.daily - (limit.daily - usage.daily))
    return (short, daily), (read_limit.short, read_limit.daily)
