"""The project's PostgreSQL, where target-postgres loads (see :mod:`strava_data.project`).

The commands of :mod:`strava_data` share it: where the server is, which schema, a
connection with one clear line instead of a traceback, and which tables exist.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import typing as t
from urllib.parse import quote

from strava_data.project import Project, ProjectError, to_libpq

__all__ = ["configured_url", "postgres_dsn", "target_schema", "to_libpq"]

if t.TYPE_CHECKING:
    import psycopg

T = t.TypeVar("T")


def configured_url() -> str | None:
    """A SQLAlchemy URL from the TARGET_POSTGRES_* variables of the environment alone.

    For the developer tools (the demo, the benchmark, the tests' server), which run
    outside a deployed project; the commands ask the project (:func:`postgres_dsn`).
    """
    url = os.environ.get("TARGET_POSTGRES_SQLALCHEMY_URL")
    if url:
        return url
    host = os.environ.get("TARGET_POSTGRES_HOST")
    if not host:
        return None
    user = quote(os.environ.get("TARGET_POSTGRES_USER", "postgres"))
    password = os.environ.get("TARGET_POSTGRES_PASSWORD")
    auth = f"{user}:{quote(password)}" if password else user
    port = os.environ.get("TARGET_POSTGRES_PORT", "5432")
    database = os.environ.get("TARGET_POSTGRES_DATABASE", "strava")
    return f"postgresql+psycopg://{auth}@{host}:{port}/{database}"


@functools.cache
def current_project() -> Project:
    """The project of this command (its settings read once)."""
    return Project.here()


def postgres_dsn() -> str | None:
    """The loader's server as a libpq URL (None: not configured), as the project says."""
    return current_project().postgres_url()


def target_schema(given: str | None) -> str:
    """The schema: given, else the loader's default_target_schema, else strava."""
    return given or current_project().postgres_schema()


def resolve_connection(prog: str, args: argparse.Namespace) -> tuple[str | None, str] | None:
    """``--dsn`` and ``--schema``, else the project's; None after one line on stderr."""
    try:
        return args.dsn or postgres_dsn(), target_schema(args.schema)
    except ProjectError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return None


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--dsn`` and ``--schema``, defaulting to the loader's variables."""
    parser.add_argument(
        "--dsn", help="PostgreSQL connection (default: target-postgres's settings, via Meltano)"
    )
    parser.add_argument(
        "--schema", help="the target schema (default: target-postgres's default_target_schema)"
    )


def run_on_postgres(
    prog: str,
    dsn: str | None,
    action: t.Callable[[psycopg.Connection], T],
    errors: tuple[type[Exception], ...] = (),
) -> T | None:
    """``action(connection)``; None after one ``prog: error: ...`` line on stderr."""
    if not dsn:
        print(
            f"{prog}: error: no PostgreSQL configured: set TARGET_POSTGRES_SQLALCHEMY_URL "
            "(environment or the project's .env), target-postgres's host in meltano.yml, "
            "or --dsn",
            file=sys.stderr,
        )
        return None
    import psycopg

    caught: tuple[type[Exception], ...] = (psycopg.Error, *errors)
    try:
        with psycopg.connect(dsn, connect_timeout=10) as connection:
            return action(connection)
    except caught as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"{prog}: error: {first}", file=sys.stderr)
        return None


def table_columns(cursor: psycopg.Cursor[t.Any], schema: str) -> dict[str, set[str]]:
    """Every table of ``schema`` and its columns (views left out)."""
    cursor.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'",
        (schema,),
    )
    tables: dict[str, set[str]] = {}
    for table, column in cursor.fetchall():
        tables.setdefault(str(table), set()).add(str(column))
    return tables
