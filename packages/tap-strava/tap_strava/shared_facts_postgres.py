"""The shared facts in the shared database: one row per athlete, one for the quota reading.

The same interface and rules as the facts file (:class:`tap_strava.shared_facts.SharedFacts`:
a cache of Strava's answers kept at most 7 days, the archive track ids, the last quota
reading), for workers on several machines. An athlete's facts are one JSON document in
``athlete_facts``, changed under that row's lock (``SELECT ... FOR UPDATE``), so workers
of different athletes never wait for each other; the quota reading is the row ``quota``
of ``app_facts``. Like the file, losing them costs a few requests, never data.
"""

from __future__ import annotations

import contextlib
import json
import time
import typing as t
from pathlib import Path

from tap_strava.errors import StravaConfigError
from tap_strava.shared_database import SCHEMA, SharedDatabase, db_error, describe
from tap_strava.shared_facts import CACHE_MAX_AGE, GEAR, PROFILE, STATS, SharedFacts, _expire

if t.TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

QUOTA = "quota"


class PostgresSharedFacts(SharedFacts):
    """The shared facts of every worker of one app (see the module docstring)."""

    def __init__(self, database: SharedDatabase) -> None:
        # Not the file's __init__: no file, no file lock.
        self.database = database
        self.path = Path(f"{SCHEMA}.athlete_facts")
        self._connection: psycopg.Connection[t.Any] | None = None

    @property
    def connection(self) -> psycopg.Connection[t.Any]:
        """The facts' own connection (opened on first use)."""
        if self._connection is None or self._connection.closed:
            self._connection = self.database.connect()
        return self._connection

    def read(self) -> dict[str, t.Any]:
        """The whole document as the file would hold it (every athlete, the quota)."""
        rows = self._query(f"SELECT athlete_id, facts FROM {SCHEMA}.athlete_facts", ())  # noqa: S608
        document: dict[str, t.Any] = {"athletes": {str(row[0]): row[1] for row in rows}}
        quota = self.quota()
        if quota:
            document["quota"] = quota
        return document

    def athlete(self, athlete_id: int) -> dict[str, t.Any]:
        """The facts of one athlete (empty if none)."""
        rows = self._query(
            f"SELECT facts FROM {SCHEMA}.athlete_facts WHERE athlete_id = %s",  # noqa: S608
            (athlete_id,),
        )
        return dict(rows[0][0]) if rows and isinstance(rows[0][0], dict) else {}

    def quota(self) -> dict[str, t.Any]:
        """The last quota reading any worker of the app saw (empty if none)."""
        rows = self._query(
            f"SELECT facts FROM {SCHEMA}.app_facts WHERE name = %s",  # noqa: S608
            (QUOTA,),
        )
        return dict(rows[0][0]) if rows and isinstance(rows[0][0], dict) else {}

    def save_quota(self, reading: dict[str, t.Any]) -> None:
        """Replace the last quota reading."""
        self._write(
            f"INSERT INTO {SCHEMA}.app_facts (name, facts) VALUES (%s, %s::jsonb) "  # noqa: S608
            "ON CONFLICT (name) DO UPDATE SET facts = EXCLUDED.facts, updated_at = now()",
            (QUOTA, json.dumps(reading)),
        )

    def update(self, change: Callable[[dict[str, t.Any]], None]) -> None:
        """Not available: whole-document changes would lock every athlete's row."""
        msg = "PostgresSharedFacts changes one athlete at a time (_change_athlete)"
        raise NotImplementedError(msg)

    def forget_athlete(self, athlete_id: int) -> bool:
        """Remove everything kept about one athlete; whether there was anything."""
        return bool(
            self._write(
                f"DELETE FROM {SCHEMA}.athlete_facts WHERE athlete_id = %s",  # noqa: S608
                (athlete_id,),
            )
        )

    def _change_athlete(self, athlete_id: int, change: Callable[[dict[str, t.Any]], None]) -> None:
        """Change one athlete's document under its row lock; expire old cache entries."""
        import psycopg

        connection = self.connection
        try:
            connection.execute(
                f"INSERT INTO {SCHEMA}.athlete_facts (athlete_id) VALUES (%s) "  # noqa: S608
                "ON CONFLICT (athlete_id) DO NOTHING",
                (athlete_id,),
            )
            row = connection.execute(
                f"SELECT facts FROM {SCHEMA}.athlete_facts WHERE athlete_id = %s "  # noqa: S608
                "FOR UPDATE",
                (athlete_id,),
            ).fetchone()
            entry = dict(row[0]) if row and isinstance(row[0], dict) else {}
            change(entry)
            document = {"athletes": {"0": entry}}
            _expire(document, time.time())
            connection.execute(
                f"UPDATE {SCHEMA}.athlete_facts SET facts = %s::jsonb, "  # noqa: S608
                "updated_at = now() WHERE athlete_id = %s",
                (json.dumps(document["athletes"]["0"]), athlete_id),
            )
            # Strava's 7-day rule for the athletes nobody wrote since: their cache goes.
            connection.execute(
                f"UPDATE {SCHEMA}.athlete_facts SET facts = facts - %s - %s - %s "  # noqa: S608
                "WHERE updated_at < now() - make_interval(secs => %s) "
                "AND (facts ? %s OR facts ? %s OR facts ? %s)",
                (PROFILE, STATS, GEAR, CACHE_MAX_AGE, PROFILE, STATS, GEAR),
            )
            connection.commit()
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc
        except BaseException:
            connection.rollback()
            raise

    def _query(self, query: str, params: tuple[t.Any, ...]) -> list[tuple[t.Any, ...]]:
        """Rows of one read; a database that fails reads as empty (it is a cache)."""
        import psycopg

        try:
            connection = self.connection
        except StravaConfigError:
            raise
        try:
            rows = connection.execute(query, params).fetchall()  # type: ignore[arg-type]
            connection.commit()
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc
        return rows

    def _write(self, query: str, params: tuple[t.Any, ...]) -> int:
        import psycopg

        connection = self.connection
        try:
            cursor = connection.execute(query, params)  # type: ignore[arg-type]
            connection.commit()
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc
        return cursor.rowcount

    def _failure(self, exc: Exception) -> StravaConfigError:
        return StravaConfigError(
            f"The shared facts in {describe(self.database.url)} failed ({db_error(exc)}): "
            "check the database and run again"
        )

    def close(self) -> None:
        """Close the connection (a new one opens on the next use)."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
