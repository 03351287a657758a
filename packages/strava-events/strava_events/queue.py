"""The event store (the queue): PostgreSQL in its own schema, or a local SQLite file.

Both stores have one interface (:class:`EventStore`), so the receiver, the spool's drain
and the tap's HTTP interface do not care which one is configured. Rules both keep:

* the dedupe key (a hash of the whole event) is the primary key, and an insert of a key
  already there does nothing, so a redelivery, a spooled copy of an event whose first
  write did commit after all, or a drain repeated after a crash, stores it once;
* pending events are those not acknowledged, ordered by receive time then key. Nothing is
  paged by a serial id: concurrent inserts (and the spool's late drain) commit out of
  order, so a position "after id N" would skip events; acknowledging is what moves on;
* an acknowledgement is idempotent and ignores unknown keys.

Calls are blocking; the receiver runs them in worker threads under a deadline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
import typing as t
from pathlib import Path

from strava_events.events import Event, event_from_dict
from strava_events.private import private_file, private_folder

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import psycopg
    from psycopg import sql

    from strava_events.settings import Settings

#: A connection attempt or statement that takes longer is a database that is down or hung.
CONNECT_TIMEOUT_SECONDS = 2
STATEMENT_TIMEOUT_MS = 5000
MAX_IDLE_CONNECTIONS = 4


class StoreError(Exception):
    """The store could not be reached or refused a write; one line, no secrets."""


@dataclasses.dataclass(frozen=True)
class StoredEvent:
    """An event with its dedupe key and the time the receiver got it (Unix seconds)."""

    event: Event
    received_at: float

    @property
    def key(self) -> str:
        """The dedupe key."""
        return self.event.key


class EventStore(t.Protocol):
    """What the receiver needs of a store."""

    label: str

    def setup(self) -> None:
        """Create the schema and table if missing."""

    def insert(self, events: Sequence[StoredEvent]) -> int:
        """Store the events not stored yet, in one transaction; how many were new."""

    def write(self, events: Sequence[StoredEvent], max_pending: int) -> list[str]:
        """Store a group of new events in one transaction (one commit, one fsync).

        Each event's outcome, in order: ``stored``, ``duplicate`` (its key is there), or
        ``athlete_full`` (its athlete has ``max_pending`` unacknowledged events already).
        """

    def pending(self, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` unacknowledged events, oldest first."""

    def ack(self, keys: Sequence[str]) -> int:
        """Mark events done; how many were pending before."""

    def prune(self, older_than: float) -> int:
        """Delete events acknowledged before ``older_than`` (Unix seconds)."""

    def counts(self) -> dict[str, int]:
        """``pending`` and ``acknowledged`` counts."""

    def close(self) -> None:
        """Release connections."""


def describe(exc: BaseException) -> str:
    """A short, secret-free description of a database error (its class and first line)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    # libpq messages name host and port, never the password; keep them short anyway.
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _insert_values(stored: StoredEvent) -> tuple[t.Any, ...]:
    """The columns both stores insert for one event, in their INSERT's order."""
    event = stored.event
    return (
        stored.key,
        stored.received_at,
        event.canonical(),
        event.owner_id,
        event.object_type,
        event.object_id,
    )


def _outcomes(
    events: Sequence[StoredEvent],
    existing: set[str],
    pending: dict[int, int],
    max_pending: int,
) -> tuple[list[str], list[StoredEvent]]:
    """Each event's outcome and the events to insert, given what the store holds.

    ``pending`` counts each owner's unacknowledged events; it is updated in place. A key
    twice in the group is one event (the second is a duplicate).
    """
    outcomes: list[str] = []
    new: list[StoredEvent] = []
    seen = set(existing)
    for stored in events:
        owner = stored.event.owner_id
        if stored.key in seen:
            outcomes.append("duplicate")
        elif pending.get(owner, 0) >= max_pending:
            outcomes.append("athlete_full")
        else:
            seen.add(stored.key)
            pending[owner] = pending.get(owner, 0) + 1
            outcomes.append("stored")
            new.append(stored)
    return outcomes, new


def _row_event(key: str, received_at: float, text: str) -> StoredEvent:
    stored = StoredEvent(event_from_dict(json.loads(text)), float(received_at))
    if stored.key != key:
        msg = f"event {key[:12]} in the store does not match its key"
        raise StoreError(msg)
    return stored


class PostgresStore:
    """The queue in PostgreSQL, schema ``strava_events`` by default.

    A few connections are kept for reuse; one that failed is dropped, so a database that
    comes back is simply reconnected to.
    """

    def __init__(self, dsn: str, schema: str) -> None:
        self._dsn = dsn
        self.schema = schema
        from psycopg import sql

        self._table = sql.Identifier(schema, "events")
        self.label = f"PostgreSQL schema {schema}"
        self._idle: list[psycopg.Connection[t.Any]] = []
        self._lock = threading.Lock()

    def _sql(self, text: str) -> sql.Composed:
        """A statement with ``{table}`` bound to the schema's quoted table name."""
        from psycopg import sql

        return sql.SQL(text).format(table=self._table)  # type: ignore[arg-type]

    def _connect(self) -> psycopg.Connection[t.Any]:
        import psycopg

        return psycopg.connect(
            self._dsn,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            application_name="strava-events",
        )

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[t.Any]]:
        import psycopg

        with self._lock:
            conn = self._idle.pop() if self._idle else None
        try:
            if conn is None:
                conn = self._connect()
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
            raise StoreError(describe(exc)) from exc
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS and not conn.closed:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            conn.close()

    def setup(self) -> None:
        """Create the schema and the table (concurrent first starts are harmless)."""
        import psycopg
        from psycopg import sql

        statements = (
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)),
            self._sql("""CREATE TABLE IF NOT EXISTS {table} (
                key text PRIMARY KEY CHECK (length(key) = 64),
                received_at timestamptz NOT NULL,
                event text NOT NULL,
                owner_id bigint NOT NULL,
                object_type text NOT NULL,
                object_id bigint NOT NULL,
                acked_at timestamptz
            )"""),
            self._sql(
                "CREATE INDEX IF NOT EXISTS events_pending ON {table} "
                "(received_at, key) WHERE acked_at IS NULL"
            ),
            self._sql(
                "CREATE INDEX IF NOT EXISTS events_pending_owner ON {table} "
                "(owner_id) WHERE acked_at IS NULL"
            ),
        )
        for attempt in range(2):
            try:
                with self._connection() as conn:
                    for statement in statements:
                        conn.execute(statement)
                    self._migrate_epoch_columns(conn)
                return
            except StoreError as exc:
                if attempt or not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                    raise

    def _migrate_epoch_columns(self, conn: psycopg.Connection[t.Any]) -> None:
        """Turn the epoch-second columns of a table made before issue 25 into timestamptz.

        Versions before issue 25 kept ``received_at`` and ``acked_at`` as ``double
        precision`` epoch seconds, which an analyst reading the schema cannot tell from a
        distance. The table is locked while it is checked, so that of two receivers
        starting at once one converts it and the other finds it converted.
        """
        conn.execute(self._sql("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        epoch = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
            " AND table_name = 'events' AND data_type = 'double precision'",
            (self.schema,),
        ).fetchall()
        for (column,) in epoch:
            from psycopg import sql

            conn.execute(
                sql.SQL(
                    "ALTER TABLE {table} ALTER COLUMN {c} TYPE timestamptz USING to_timestamp({c})"
                ).format(table=self._table, c=sql.Identifier(column))  # type: ignore[arg-type]
            )

    def insert(self, events: Sequence[StoredEvent]) -> int:
        """Insert new keys; a key already there (acknowledged or not) is left alone."""
        added = 0
        with self._connection() as conn:
            for stored in events:
                cursor = conn.execute(
                    self._sql(
                        "INSERT INTO {table} "
                        "(key, received_at, event, owner_id, object_type, object_id) "
                        "VALUES (%s, to_timestamp(%s), %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING"
                    ),
                    _insert_values(stored),
                )
                added += max(cursor.rowcount, 0)
        return added

    def write(self, events: Sequence[StoredEvent], max_pending: int) -> list[str]:
        """One transaction for the group: what is there, each owner's backlog, the insert."""
        keys = [stored.key for stored in events]
        owners = sorted({stored.event.owner_id for stored in events})
        with self._connection() as conn:
            existing = {
                row[0]
                for row in conn.execute(
                    self._sql("SELECT key FROM {table} WHERE key = ANY(%s)"), (keys,)
                )
            }
            backlog = {
                int(owner): int(count)
                for owner, count in conn.execute(
                    self._sql(
                        "SELECT owner_id, count(*) FROM {table} "
                        "WHERE acked_at IS NULL AND owner_id = ANY(%s) GROUP BY owner_id"
                    ),
                    (owners,),
                )
            }
            outcomes, new = _outcomes(events, existing, backlog, max_pending)
            if new:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        self._sql(
                            "INSERT INTO {table} "
                            "(key, received_at, event, owner_id, object_type, object_id) "
                            "VALUES (%s, to_timestamp(%s), %s, %s, %s, %s) "
                            "ON CONFLICT (key) DO NOTHING"
                        ),
                        [_insert_values(stored) for stored in new],
                    )
        return outcomes

    def pending(self, limit: int) -> list[StoredEvent]:
        """Oldest unacknowledged events first (receive time, then key)."""
        with self._connection() as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT key, extract(epoch FROM received_at), event FROM {table} "
                    "WHERE acked_at IS NULL ORDER BY received_at, key LIMIT %s"
                ),
                (limit,),
            ).fetchall()
        return [_row_event(*row) for row in rows]

    def ack(self, keys: Sequence[str]) -> int:
        """Acknowledge; repeated and unknown keys change nothing."""
        if not keys:
            return 0
        with self._connection() as conn:
            cursor = conn.execute(
                self._sql(
                    "UPDATE {table} SET acked_at = to_timestamp(%s) "
                    "WHERE key = ANY(%s) AND acked_at IS NULL"
                ),
                (time.time(), list(keys)),
            )
            return max(cursor.rowcount, 0)

    def prune(self, older_than: float) -> int:
        """Forget acknowledged events past the retention."""
        with self._connection() as conn:
            cursor = conn.execute(
                self._sql(
                    "DELETE FROM {table} WHERE acked_at IS NOT NULL AND acked_at < to_timestamp(%s)"
                ),
                (older_than,),
            )
            return max(cursor.rowcount, 0)

    def counts(self) -> dict[str, int]:
        """How many events wait and how many were acknowledged (and are still kept)."""
        with self._connection() as conn:
            row = conn.execute(
                self._sql(
                    "SELECT count(*) FILTER (WHERE acked_at IS NULL), "
                    "count(*) FILTER (WHERE acked_at IS NOT NULL) FROM {table}"
                )
            ).fetchone()
        pending, acked = row if row else (0, 0)
        return {"pending": int(pending), "acknowledged": int(acked)}

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class SQLiteStore:
    """The queue in a local SQLite file (WAL, synchronous FULL: committed means on disk).

    The file and its ``-wal``/``-shm`` are mode 0600 in a 0700 folder: the events name the
    athletes and their activities.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.label = f"SQLite {self.path}"
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        # One connection, one writer at a time: SQLite serialises writers anyway.
        with self._lock:
            try:
                if self._conn is None:
                    private_folder(self.path.parent)
                    # SQLite gives the -wal and -shm files the database file's mode.
                    private_file(self.path)
                    conn = sqlite3.connect(
                        self.path, timeout=CONNECT_TIMEOUT_SECONDS, check_same_thread=False
                    )
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=FULL")
                    for leftover in ("-wal", "-shm"):  # left by an earlier version: tighten
                        sibling = self.path.with_name(self.path.name + leftover)
                        if sibling.exists():
                            sibling.chmod(0o600)
                    self._conn = conn
                with self._conn:
                    yield self._conn
            except (sqlite3.Error, OSError) as exc:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                raise StoreError(describe(exc)) from exc

    def setup(self) -> None:
        """Create the table if missing."""
        with self._connection() as conn:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS events (
                    key text PRIMARY KEY CHECK (length(key) = 64),
                    received_at real NOT NULL,
                    event text NOT NULL,
                    owner_id integer NOT NULL,
                    object_type text NOT NULL,
                    object_id integer NOT NULL,
                    acked_at real
                )"""
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS events_pending ON events (received_at, key) "
                "WHERE acked_at IS NULL"
            )
            conn.execute(
                "CREATE INDEX IF NOT EXISTS events_pending_owner ON events (owner_id) "
                "WHERE acked_at IS NULL"
            )

    def insert(self, events: Sequence[StoredEvent]) -> int:
        """Insert new keys; a key already there is left alone."""
        added = 0
        with self._connection() as conn:
            for stored in events:
                cursor = conn.execute(
                    "INSERT INTO events (key, received_at, event, owner_id, object_type, "
                    "object_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    _insert_values(stored),
                )
                added += max(cursor.rowcount, 0)
        return added

    def write(self, events: Sequence[StoredEvent], max_pending: int) -> list[str]:
        """One transaction for the group (one fsync of the WAL covers every event)."""
        owners = sorted({stored.event.owner_id for stored in events})
        with self._connection() as conn:
            existing = {
                stored.key
                for stored in events
                if conn.execute("SELECT 1 FROM events WHERE key = ?", (stored.key,)).fetchone()
            }
            backlog = {
                int(owner): int(
                    conn.execute(
                        "SELECT count(*) FROM events WHERE acked_at IS NULL AND owner_id = ?",
                        (owner,),
                    ).fetchone()[0]
                )
                for owner in owners
            }
            outcomes, new = _outcomes(events, existing, backlog, max_pending)
            conn.executemany(
                "INSERT INTO events (key, received_at, event, owner_id, object_type, "
                "object_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                [_insert_values(stored) for stored in new],
            )
        return outcomes

    def pending(self, limit: int) -> list[StoredEvent]:
        """Oldest unacknowledged events first (receive time, then key)."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT key, received_at, event FROM events WHERE acked_at IS NULL "
                "ORDER BY received_at, key LIMIT ?",
                (limit,),
            ).fetchall()
        return [_row_event(*row) for row in rows]

    def ack(self, keys: Sequence[str]) -> int:
        """Acknowledge; repeated and unknown keys change nothing."""
        now = time.time()
        with self._connection() as conn:
            done = 0
            for key in dict.fromkeys(keys):
                cursor = conn.execute(
                    "UPDATE events SET acked_at = ? WHERE key = ? AND acked_at IS NULL",
                    (now, key),
                )
                done += max(cursor.rowcount, 0)
            return done

    def prune(self, older_than: float) -> int:
        """Forget acknowledged events past the retention."""
        with self._connection() as conn:
            cursor = conn.execute(
                "DELETE FROM events WHERE acked_at IS NOT NULL AND acked_at < ?",
                (older_than,),
            )
            return max(cursor.rowcount, 0)

    def counts(self) -> dict[str, int]:
        """How many events wait and how many were acknowledged (and are still kept)."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT sum(acked_at IS NULL), sum(acked_at IS NOT NULL) FROM events"
            ).fetchone()
        pending, acked = row if row else (0, 0)
        return {"pending": int(pending or 0), "acknowledged": int(acked or 0)}

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_store(settings: Settings) -> EventStore:
    """The configured store: PostgreSQL when a DSN is known, else the SQLite file."""
    if settings.postgres_dsn:
        return PostgresStore(settings.postgres_dsn, settings.postgres_schema)
    return SQLiteStore(settings.sqlite_path)
