"""The shared PostgreSQL database of a club: where every worker finds the app's facts.

One tap process on one machine keeps its tokens, its cache of Strava's answers and its
quota reading in files beside it (:mod:`tap_strava.token_store`,
:mod:`tap_strava.shared_facts`). Several workers of one Strava app (a club on Dagster)
need them in one place they all reach: with ``shared_database_url`` set, they live in the
tables of one schema (:data:`SCHEMA`) of that PostgreSQL database instead:

* ``tokens``: one row per authorization chain, the tokens encrypted with Fernet
  (:mod:`tap_strava.token_keys`), the athlete id in clear (the receiver reads it);
* ``athlete_facts``: the cache of Strava's answers and the archive track ids, per athlete;
* ``app_facts``: the last quota reading of any worker;
* ``quota_windows``, ``quota_athlete_windows`` and ``quota_limits``: the app's quota ledger
  (:mod:`tap_strava.quota_ledger`).

The schema is created idempotently by the first worker that connects (under an advisory
lock: concurrent ``CREATE TABLE IF NOT EXISTS`` can still collide in PostgreSQL's
catalog). psycopg is imported only here and in the modules that use this one, so that
the file-based default never needs it.
"""

from __future__ import annotations

import os
import typing as t

from tap_strava.errors import StravaConfigError, one_line

if t.TYPE_CHECKING:
    import psycopg

#: The schema of the shared tables (one schema per Strava app and database).
SCHEMA = "strava_shared"
#: The environment variable read when the setting is not given (Meltano sets it too).
URL_ENV = "TAP_STRAVA_SHARED_DATABASE_URL"
#: Any fixed number: the advisory lock key that serializes the schema's creation.
_DDL_LOCK = 7_402_611_026

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.tokens (
    chain_key text PRIMARY KEY,
    athlete_id bigint,
    refresh_token text,
    access_token text,
    expires_at bigint,
    scope text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tokens_athlete_id ON {SCHEMA}.tokens (athlete_id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.athlete_facts (
    athlete_id bigint PRIMARY KEY,
    facts jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.app_facts (
    name text PRIMARY KEY,
    facts jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.quota_windows (
    kind text NOT NULL,
    window_start bigint NOT NULL,
    window_seconds integer NOT NULL,
    reserved integer NOT NULL DEFAULT 0,
    used integer NOT NULL DEFAULT 0,
    rate_limited integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, window_start, window_seconds)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.quota_athlete_windows (
    window_start bigint NOT NULL,
    window_seconds integer NOT NULL,
    athlete_id bigint NOT NULL,
    used integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, window_seconds, athlete_id)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.quota_limits (
    name text PRIMARY KEY,
    short_limit integer NOT NULL,
    daily_limit integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def configured_url(config: t.Mapping[str, t.Any]) -> str | None:
    """The shared database's URL from the tap's config, else its environment variable."""
    value = config.get("shared_database_url") or os.environ.get(URL_ENV) or ""
    return str(value).strip() or None


def to_conninfo(url: str) -> str:
    """A libpq URL from a SQLAlchemy-style one (``postgresql+psycopg://`` works too)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        msg = (
            "shared_database_url must be a PostgreSQL URL such as "
            "postgresql://user@host:5432/dbname (TAP_STRAVA_SHARED_DATABASE_URL)"
        )
        raise StravaConfigError(msg)
    return f"postgresql://{rest}"


def db_error(exc: BaseException) -> str:
    """A database error as one line: its type and primary message, never its DETAIL.

    A DETAIL can quote a failing row (encrypted tokens among them): it stays out of logs.
    """
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return f"{type(exc).__name__}: {' '.join(str(primary).split())[:200]}"
    return one_line(exc).split(" DETAIL:")[0]


def describe(url: str) -> str:
    """Where a URL points, without its password: ``host:port/dbname``."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(to_conninfo(url))
    except Exception:
        return "the configured server"
    host = parts.get("host") or "localhost"
    return f"{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


class SharedDatabase:
    """Connections to the shared database, its schema created once per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conninfo = to_conninfo(url)
        self._ready = False

    @classmethod
    def from_config(cls, config: t.Mapping[str, t.Any]) -> SharedDatabase | None:
        """The configured shared database, or None (the file-based default)."""
        url = configured_url(config)
        return cls(url) if url else None

    def connect(self) -> psycopg.Connection[t.Any]:
        """A new connection (autocommit off), with the schema in place.

        One line naming the server (never the password) when it cannot be reached.
        """
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            msg = "shared_database_url needs psycopg: pip install 'psycopg[binary]'"
            raise StravaConfigError(msg) from exc
        try:
            connection = psycopg.connect(self._conninfo, connect_timeout=10)
        except psycopg.Error as exc:
            msg = (
                f"Cannot connect to the shared database {describe(self.url)} "
                f"({db_error(exc)}): check shared_database_url (TAP_STRAVA_SHARED_DATABASE_URL)"
            )
            raise StravaConfigError(msg) from exc
        if not self._ready:
            self.ensure_schema(connection)
        return connection

    def ensure_schema(self, connection: psycopg.Connection[t.Any]) -> None:
        """Create the schema and its tables if missing (idempotent, race-free)."""
        import psycopg

        try:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                connection.execute(DDL)
        except psycopg.Error as exc:
            msg = (
                f"Cannot create the schema {SCHEMA} in the shared database "
                f"{describe(self.url)} ({db_error(exc)}): the user of shared_database_url "
                "needs CREATE on the database (or create the schema for it)"
            )
            raise StravaConfigError(msg) from exc
        connection.commit()
        self._ready = True
