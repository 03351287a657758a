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
from tap_strava.ratelimit import DAY, FAIR, SHORT, Refusal
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
#: An athlete counts for the fair share while it reserved within this many seconds: a
#: fifteenth of the window (a minute of Strava's 15), so that a shortened window (a
#: simulator's, a test's) keeps the same proportion instead of counting an athlete
#: whose poll ended long ago in its terms.
FAIR_ACTIVE_SECONDS = 60
FAIR_ACTIVE_FRACTION = 15
#: How long an athlete past its fair share waits before asking again.
FAIR_WAIT_SECONDS = 5.0
_LIMITS = "read"


def fair_active_seconds(window_seconds: int) -> float:
    """How recently an athlete reserved to count as active in a window of this length."""
    return min(float(FAIR_ACTIVE_SECONDS), window_seconds / FAIR_ACTIVE_FRACTION)


def _start(length: str) -> str:
    """The start of the window of ``length`` (a parameter) that holds the database's now."""
    return f"floor(extract(epoch FROM now()) / %({length})s)::bigint * %({length})s"


def _cap(column: str, unknown: int) -> str:
    """What a priority may use of a window: the limit less ``steps`` reserves.

    Unknown limits (a fresh database): ``unknown``, one probe per 15-minute window.
    """
    return (
        f"COALESCE((SELECT {column} - %(steps)s * ceil({column} * %(percent)s / 100.0) "  # noqa: S608
        f"FROM {SCHEMA}.quota_limits WHERE name = %(name)s), {unknown})"
    )


def _others(alias: str) -> str:
    """The other athletes active in the 15-minute window (reserved within a fifteenth)."""
    return (
        f"{SCHEMA}.quota_athlete_windows AS {alias} WHERE {alias}.window_start = "
        f"{_start('window')} AND {alias}.window_seconds = %(window)s "
        f"AND {alias}.athlete_id <> %(fair_athlete)s "
        f"AND {alias}.updated_at > now() - make_interval(secs => %(active)s)"
    )


_SHORT_CAP = _cap("short_limit", 1)
_DAY_CAP = _cap("daily_limit", 2**31 - 1)
#: The fair share: the places the other active athletes have not used of their share
#: (the class's cap over the active athletes, this one included) stay theirs.
_OWED = (
    "(SELECT COALESCE(sum(GREATEST(0, share.places - a.used)), 0) "  # noqa: S608
    f"FROM (SELECT ceil(({_SHORT_CAP})::numeric / (1 + count(*))) AS places "
    f"FROM {_others('o')}) AS share, {_others('a')})"
)
_CREATE_WINDOWS = (
    f"INSERT INTO {SCHEMA}.quota_windows (kind, window_start, window_seconds) "  # noqa: S608
    f"VALUES ('{DAY}', {_start('day')}, %(day)s), "
    f"('{SHORT}', {_start('window')}, %(window)s) ON CONFLICT DO NOTHING"
)
_RAISE_DAY = (
    f"UPDATE {SCHEMA}.quota_windows SET used = used + 1, reserved = reserved + 1, "  # noqa: S608
    f"updated_at = now() WHERE kind = '{DAY}' AND window_start = {_start('day')} "
    f"AND window_seconds = %(day)s AND used + 1 <= {_DAY_CAP} RETURNING used"
)
_RAISE_SHORT = (
    f"UPDATE {SCHEMA}.quota_windows SET used = used + 1, reserved = reserved + 1, "  # noqa: S608
    f"updated_at = now() WHERE kind = '{SHORT}' AND window_start = {_start('window')} "
    f"AND window_seconds = %(window)s AND used + 1 <= {_SHORT_CAP} "
    f"AND (%(fair_athlete)s::bigint IS NULL OR used + 1 + {_OWED} <= {_SHORT_CAP}) "
    "RETURNING used"
)
_COUNT_ATHLETE = (
    f"INSERT INTO {SCHEMA}.quota_athlete_windows AS a "
    "(athlete_id, window_start, window_seconds, used) "
    f"SELECT %(athlete)s, {_start('window')}, %(window)s, 1 "
    "WHERE %(athlete)s::bigint IS NOT NULL "
    "ON CONFLICT (window_start, window_seconds, athlete_id) DO UPDATE SET "
    "used = a.used + 1, updated_at = now()"
)
_REFUSAL = (
    "SELECT extract(epoch FROM now())::float8, "  # noqa: S608
    f"(SELECT short_limit FROM {SCHEMA}.quota_limits WHERE name = %(name)s), "
    f"(SELECT daily_limit FROM {SCHEMA}.quota_limits WHERE name = %(name)s), "
    f"(SELECT used FROM {SCHEMA}.quota_windows WHERE kind = '{SHORT}' "
    f"AND window_start = {_start('window')} AND window_seconds = %(window)s), "
    f"(SELECT used FROM {SCHEMA}.quota_windows WHERE kind = '{DAY}' "
    f"AND window_start = {_start('day')} AND window_seconds = %(day)s), "
    f"(SELECT used FROM {SCHEMA}.quota_athlete_windows WHERE athlete_id = %(athlete)s "
    f"AND window_start = {_start('window')} AND window_seconds = %(window)s), "
    f"(SELECT 1 + count(*) FROM {_others('o')})"
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
        self._swept_window: int | None = None

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

    def reserve(self, priority: str = DAILY, athlete_id: int | None = None) -> Refusal | None:
        """Count one request in the current windows, or say why not (nothing counted).

        One round trip in the common case (psycopg's pipeline): create the two window rows
        if missing, then raise each by one only while it stays within this priority's cap
        (``UPDATE ... WHERE used + 1 <= cap``: PostgreSQL re-checks the condition on the
        newest row after waiting for another worker's lock), daily window first in every
        worker. Both raised: commit; otherwise roll back and say which window refused.
        The windows are those of the transaction's start on the database's clock.

        With ``athlete_id`` a daily poll or backfill also keeps to the athlete's fair
        share of the 15-minute window while other athletes are active in it (reserved
        within :data:`FAIR_ACTIVE_SECONDS`): what they have not used of their share of
        the class's cap stays theirs. Events take no notice of shares.
        """
        import psycopg

        connection = self.connection
        params = self._params(priority, athlete_id)
        try:
            with connection.pipeline():
                connection.execute(_CREATE_WINDOWS, params)
                daily = connection.execute(_RAISE_DAY, params)
                short = connection.execute(_RAISE_SHORT, params)
                connection.execute(_COUNT_ATHLETE, params)
            granted = daily.fetchone() is not None and short.fetchone() is not None
            if granted:
                connection.commit()
                return None
            connection.rollback()
            return self._refusal(priority, params)
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc

    def _params(self, priority: str, athlete_id: int | None) -> dict[str, t.Any]:
        known = priority if priority in PRIORITIES else DAILY
        return {
            "day": self.day_seconds,
            "window": self.window_seconds,
            "steps": PRIORITIES.index(known),
            "percent": self.reserve_percent,
            "name": _LIMITS,
            "athlete": athlete_id,
            "fair_athlete": None if known == EVENTS else athlete_id,
            "active": fair_active_seconds(self.window_seconds),
        }

    def _refusal(self, priority: str, params: dict[str, t.Any]) -> Refusal:
        """Which window (or share) refused a request, how full it is, and when to ask again."""
        row = self.connection.execute(_REFUSAL, params).fetchone()
        self.connection.rollback()
        assert row is not None  # a SELECT without FROM answers one row
        now, short_limit, daily_limit, short_used, daily_used, athlete_used, active = row
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
        left = self.window_seconds - now % self.window_seconds
        if params["fair_athlete"] is not None and short_limit is not None:
            share = math.ceil(caps(int(short_limit), priority, self.reserve_percent) / active)
            return Refusal(
                FAIR,
                int(athlete_used or 0),
                share,
                short_limit,
                min(left, FAIR_WAIT_SECONDS),
                window_used=int(short_used or 0),
            )
        # The window turned over between the refusal and this look: ask again at once.
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
            window = int(at // self.window_seconds)
            if window != self._swept_window:
                # Once per window and worker: the athletes' counts of past days go.
                connection.execute(
                    f"DELETE FROM {SCHEMA}.quota_athlete_windows "  # noqa: S608
                    "WHERE updated_at < now() - interval '1 day'"
                )
            connection.commit()
            self._swept_window = window
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
