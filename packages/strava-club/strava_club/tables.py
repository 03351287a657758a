"""PostgreSQL helpers: an advisory lock across workers, and whether tables exist.

psycopg2 comes with dagster-postgres, so the club's environment needs nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import typing as t

import psycopg2

if t.TYPE_CHECKING:
    from collections.abc import Iterator


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` from a readable name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_lock(dsn: str, name: str) -> Iterator[t.Any]:
    """Hold a session advisory lock (every worker on any machine waits for it)."""
    connection = psycopg2.connect(dsn)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key(name),))
        yield connection
    finally:
        connection.close()  # ends the session: the lock goes with it


def tables_exist(connection: t.Any, schema: str, tables: t.Iterable[str]) -> bool:
    """Whether every one of ``tables`` exists in ``schema``."""
    wanted = set(tables)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        )
        found = {row[0] for row in cursor.fetchall()}
    return wanted <= found
