"""Where the club's Singer states live: the shared PostgreSQL database, else a folder.

Each run of the club has a state id of its own, as ``meltano run --state-id-suffix``
would give it: ``athlete-<id>`` for an athlete's daily poll, ``events`` for the events
run. The state is what the target committed (its last STATE line), read before the tap
starts and written as soon as the target ends, even when the run failed later.

With the tap's shared database configured (``shared_database_url``, or
``TAP_STRAVA_SHARED_DATABASE_URL``) the states are rows of ``strava_club.singer_states`` on
that server, so any worker on any machine can run any athlete: nothing of a run is left
on one machine's disk. Without it they are files of ``STRAVA_CLUB_STATE_DIR`` (one
machine). A state a previous version left in the folder is read once when the database
has none yet, and the database's row wins from then on: an upgrade loses no bookmark.

A state holds bookmarks and the ids of activities fetched, never a token or a name.
"""

from __future__ import annotations

import contextlib
import json
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SCHEMA = "strava_club"
TABLE = f"{SCHEMA}.singer_states"
DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    state_id text PRIMARY KEY,
    value jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""
#: Serialises the DDL of workers starting at once (CREATE ... IF NOT EXISTS races).
DDL_LOCK = 0x5354_4154_4553


class StateStoreError(Exception):
    """The state store cannot be read or written (one line naming the fix)."""


class StateStore(t.Protocol):
    """Read and write one run's Singer state by its state id."""

    def read(self, state_id: str) -> dict[str, t.Any] | None:
        """The state last written under ``state_id``, or None (a first run)."""

    def write(self, state_id: str, value: dict[str, t.Any]) -> None:
        """Replace the state of ``state_id`` (atomically: a reader sees old or new)."""

    def describe(self) -> str:
        """Where the states are, for a log line (never a password)."""


class FolderStates:
    """One JSON file per state id in a folder: the single-machine default."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, state_id: str) -> Path:
        """The file of one state id."""
        return self.folder / f"{state_id}.json"

    def read(self, state_id: str) -> dict[str, t.Any] | None:
        """The file's state, or None when there is no file."""
        path = self.path(state_id)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            msg = f"cannot read the state file {path} ({exc}): fix or remove it"
            raise StateStoreError(msg) from exc
        return value if isinstance(value, dict) else None

    def write(self, state_id: str, value: dict[str, t.Any]) -> None:
        """Write a temporary file and rename it over the state's file."""
        path = self.path(state_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(value), encoding="utf-8")
        temporary.replace(path)

    def describe(self) -> str:
        """The folder."""
        return f"folder {self.folder}"


class PostgresStates:
    """Rows of ``strava_club.singer_states`` in the shared database (every worker's)."""

    def __init__(self, dsn: str, earlier: FolderStates | None = None) -> None:
        self._dsn = dsn
        self._earlier = earlier
        self._ready = False

    @contextlib.contextmanager
    def _connection(self) -> Iterator[t.Any]:
        import psycopg

        try:
            connection = psycopg.connect(self._dsn, connect_timeout=10)
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            msg = f"cannot reach the shared database for the states ({first}): check its URL"
            raise StateStoreError(msg) from None
        try:
            if not self._ready:
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
                    connection.execute(DDL)
                self._ready = True
            yield connection
        finally:
            connection.close()

    def read(self, state_id: str) -> dict[str, t.Any] | None:
        """The row's state; a state file of an earlier version when there is no row yet."""
        with self._connection() as connection:
            row = connection.execute(
                f"SELECT value FROM {TABLE} WHERE state_id = %s",  # noqa: S608
                (state_id,),
            ).fetchone()
        if row is not None:
            return t.cast("dict[str, t.Any]", row[0])
        return self._earlier.read(state_id) if self._earlier is not None else None

    def write(self, state_id: str, value: dict[str, t.Any]) -> None:
        """Upsert the row (one statement: atomic)."""
        from psycopg.types.json import Jsonb

        with self._connection() as connection:
            connection.execute(
                f"INSERT INTO {TABLE} (state_id, value) VALUES (%s, %s) "  # noqa: S608
                "ON CONFLICT (state_id) DO UPDATE SET value = EXCLUDED.value, "
                "updated_at = now()",
                (state_id, Jsonb(value)),
            )
            connection.commit()

    def describe(self) -> str:
        """The table (the server is the shared database's)."""
        return f"the shared database's {TABLE}"


def athlete_state_id(athlete_id: int, job: str = "") -> str:
    """An athlete's state id for one job: ``athlete-<id>`` (the poll), ``-<job>`` else."""
    return f"athlete-{athlete_id}" + (f"-{job}" if job else "")


EVENTS_STATE_ID = "events"
