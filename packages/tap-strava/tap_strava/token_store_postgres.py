"""The token store in the shared database: one row per chain, refreshed under a row lock.

The same interface as the file store (:class:`tap_strava.token_store.TokenStore`), for
workers on several machines: the row of a chain (keyed like the file's entries, by a
fingerprint of ``client_id`` and the configured refresh token) holds the newest tokens,
encrypted with :class:`tap_strava.token_keys.TokenKeys`; the athlete id stays in clear.

Strava rotates refresh tokens and kills the old one at once, so two workers must never
present the same one. :meth:`PostgresTokenStore.locked` holds ``SELECT ... FOR UPDATE``
on the chain's row across read, refresh and write (the authenticator's cycle): a second
worker waits on the row, then reads the token the first one stored. :meth:`save`
commits at once, before the caller uses the new token, and takes the row lock again for
the rest of the block, so nothing after the save can roll the rotated token back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing as t

from tap_strava.errors import StravaConfigError
from tap_strava.shared_database import SCHEMA, SharedDatabase, db_error, describe
from tap_strava.token_keys import TokenKeys
from tap_strava.token_store import LOCK_TIMEOUT_SECONDS, StoredTokens, TokenStore, fingerprint

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg

_COLUMNS = "refresh_token, access_token, expires_at, athlete_id, scope, updated_at"
_ATHLETE_IDS = (
    f"SELECT DISTINCT athlete_id FROM {SCHEMA}.tokens "  # noqa: S608
    "WHERE athlete_id IS NOT NULL AND refresh_token IS NOT NULL"
)


class PostgresTokenStore(TokenStore):
    """One chain of tokens in the shared database (see the module docstring)."""

    def __init__(
        self,
        database: SharedDatabase,
        *,
        client_id: str,
        configured_refresh_token: str,
        keys: TokenKeys | None = None,
        lock_timeout: float | None = None,
        chain_key: str | None = None,
    ) -> None:
        # Not the file store's __init__: no path, no file lock; the same key. A chain
        # found in the database itself (stored_chains) comes with its key.
        self.database = database
        self.key = chain_key or fingerprint(client_id, configured_refresh_token)
        self.keys = keys or TokenKeys.from_environment()
        self.lock_timeout = LOCK_TIMEOUT_SECONDS if lock_timeout is None else lock_timeout
        self._connection: psycopg.Connection[t.Any] | None = None
        self._depth = 0

    @property
    def connection(self) -> psycopg.Connection[t.Any]:
        """The store's own connection (opened on first use)."""
        if self._connection is None or self._connection.closed:
            self._connection = self.database.connect()
        return self._connection

    def close(self) -> None:
        """Close the connection (a new one opens on the next use)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _release(self) -> None:
        """Close the connection between uses, unless the row lock is held.

        A run of the events mode builds a store per athlete of the club, and a chain is
        used a few times a run (a load, a refresh every six hours): a connection kept
        open per athlete would hold hundreds of PostgreSQL's ``max_connections`` for
        nothing, so the store connects per use instead (a few milliseconds each).
        """
        if not self._depth:
            self.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the chain's row lock (re-entrant within this store)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._lock_row()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            try:
                self._end(commit=False)
            finally:
                self._release()
            raise
        self._depth = 0
        self._end(commit=True)
        self._release()

    def load(self) -> StoredTokens | None:
        """The chain's newest tokens, decrypted; None if none are stored yet."""
        row = self._run(
            f"SELECT {_COLUMNS} FROM {SCHEMA}.tokens WHERE chain_key = %s",  # noqa: S608
            (self.key,),
        ).fetchone()
        self._release()
        if row is None or not row[0]:
            return None
        refresh, access, expires_at, athlete_id, scope, updated_at = row
        return StoredTokens(
            refresh_token=self.keys.decrypt(refresh),
            access_token=self.keys.decrypt(access) if access else None,
            expires_at=expires_at,
            athlete_id=athlete_id,
            updated_at=int(updated_at.timestamp()) if updated_at else None,
            scope=scope,
        )

    def save(self, tokens: StoredTokens) -> None:
        """Write the chain's tokens, encrypted, and commit at once (see the module docstring)."""
        self._run(
            f"INSERT INTO {SCHEMA}.tokens (chain_key, {_COLUMNS}) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s, COALESCE(to_timestamp(%s), now())) "
            "ON CONFLICT (chain_key) DO UPDATE SET refresh_token = EXCLUDED.refresh_token, "
            "access_token = EXCLUDED.access_token, expires_at = EXCLUDED.expires_at, "
            "athlete_id = EXCLUDED.athlete_id, scope = EXCLUDED.scope, "
            "updated_at = EXCLUDED.updated_at",
            (
                self.key,
                self.keys.encrypt(tokens.refresh_token),
                self.keys.encrypt(tokens.access_token) if tokens.access_token else None,
                tokens.expires_at,
                tokens.athlete_id,
                tokens.scope,
                tokens.updated_at,
            ),
        )
        if self._depth:
            # Commit the rotated token now, then hold the row again for the rest.
            self._end(commit=True)
            self._lock_row()
        self._release()

    def forget_access_token(self) -> None:
        """Drop a cached access token that Strava no longer accepts."""
        self._run(
            f"UPDATE {SCHEMA}.tokens SET access_token = NULL, expires_at = NULL "  # noqa: S608
            "WHERE chain_key = %s",
            (self.key,),
        )
        self._release()

    def remember_athlete(self, athlete_id: int) -> None:
        """Record whose chain this is (in clear: the receiver reads it)."""
        self._run(
            f"UPDATE {SCHEMA}.tokens SET athlete_id = %s "  # noqa: S608
            "WHERE chain_key = %s AND athlete_id IS DISTINCT FROM %s",
            (athlete_id, self.key, athlete_id),
        )
        self._release()

    def athlete_ids(self) -> set[int]:
        """The athlete ids of every chain in the database."""
        ids = {int(row[0]) for row in self._run(_ATHLETE_IDS, ()).fetchall()}
        self._release()
        return ids

    # -- the connection's transactions ------------------------------------------------------
    def _lock_row(self) -> None:
        """Begin a transaction holding this chain's row (a placeholder row if none yet)."""
        import psycopg

        connection = self.connection
        try:
            connection.execute(
                f"INSERT INTO {SCHEMA}.tokens (chain_key) VALUES (%s) "  # noqa: S608
                "ON CONFLICT (chain_key) DO NOTHING",
                (self.key,),
            )
            connection.commit()
            connection.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                (f"{int(self.lock_timeout * 1000)}ms",),
            )
            connection.execute(
                f"SELECT 1 FROM {SCHEMA}.tokens WHERE chain_key = %s FOR UPDATE",  # noqa: S608
                (self.key,),
            )
        except psycopg.errors.LockNotAvailable as exc:
            connection.rollback()
            msg = (
                f"Another worker has held this athlete's token row in {SCHEMA}.tokens for "
                f"{self.lock_timeout:.0f} s (a refresh still under way, or hung): let it "
                "finish or stop it, then run again; the store was not changed"
            )
            raise StravaConfigError(msg) from exc
        except psycopg.Error as exc:
            connection.rollback()
            raise self._failure(exc) from exc

    def _end(self, *, commit: bool) -> None:
        import psycopg

        connection = self.connection
        try:
            if commit:
                connection.commit()
            else:
                connection.rollback()
        except psycopg.Error as exc:
            raise self._failure(exc) from exc

    def _run(self, query: str, params: tuple[t.Any, ...]) -> psycopg.Cursor[t.Any]:
        """Run one statement: in the locked transaction, or committed on its own."""
        import psycopg

        connection = self.connection
        try:
            cursor = connection.execute(query, params)  # type: ignore[arg-type]
            if not self._depth:
                connection.commit()
        except psycopg.Error as exc:
            if not self._depth:
                connection.rollback()
            raise self._failure(exc) from exc
        return cursor

    def _failure(self, exc: Exception) -> StravaConfigError:
        return StravaConfigError(
            f"The shared token store {describe(self.database.url)} failed ({db_error(exc)}): "
            "check the database and run again"
        )


def forget_athlete(database: SharedDatabase, athlete_id: int) -> int:
    """Remove every chain of one athlete from the shared store; the number removed."""
    with contextlib.closing(database.connect()) as connection:
        cursor = connection.execute(
            f"DELETE FROM {SCHEMA}.tokens WHERE athlete_id = %s",  # noqa: S608
            (athlete_id,),
        )
        connection.commit()
        return cursor.rowcount


def rotate_keys(database: SharedDatabase, keys: TokenKeys | None = None) -> int:
    """Re-encrypt every stored token with the first key; the number of rows changed.

    One transaction, rows locked as they are read (``FOR UPDATE``): a refresh that runs
    meanwhile waits and then writes with the first key too. Run it after putting the new
    key first in ``TAP_STRAVA_TOKEN_KEYS`` on every worker, and drop the old key only
    after it succeeded.
    """
    keys = keys or TokenKeys.from_environment()
    changed = 0
    with contextlib.closing(database.connect()) as connection:
        with connection.transaction():
            rows = connection.execute(
                f"SELECT chain_key, refresh_token, access_token FROM {SCHEMA}.tokens "  # noqa: S608
                "WHERE refresh_token IS NOT NULL FOR UPDATE"
            ).fetchall()
            for chain_key, refresh, access in rows:
                connection.execute(
                    f"UPDATE {SCHEMA}.tokens SET refresh_token = %s, access_token = %s "  # noqa: S608
                    "WHERE chain_key = %s",
                    (keys.rotate(refresh), keys.rotate(access) if access else None, chain_key),
                )
                changed += 1
        connection.commit()
    return changed


def athlete_refresh_tokens(
    database: SharedDatabase, athlete_id: int, keys: TokenKeys | None = None
) -> list[str]:
    """The athlete's stored refresh tokens, decrypted (to revoke them at Strava)."""
    keys = keys or TokenKeys.from_environment()
    with contextlib.closing(database.connect()) as connection:
        rows = connection.execute(
            f"SELECT refresh_token FROM {SCHEMA}.tokens "  # noqa: S608
            "WHERE athlete_id = %s AND refresh_token IS NOT NULL",
            (athlete_id,),
        ).fetchall()
        connection.rollback()
    return [keys.decrypt(row[0]) for row in rows]


@dataclasses.dataclass(frozen=True)
class StoredChain:
    """An athlete's chain as the shared store holds it: its key and newest refresh token."""

    athlete_id: int
    chain_key: str
    refresh_token: str = dataclasses.field(repr=False)


def stored_chains(
    database: SharedDatabase,
    athlete_ids: t.Iterable[int] | None = None,
    keys: TokenKeys | None = None,
) -> list[StoredChain]:
    """The newest chain of each athlete of the store (of ``athlete_ids`` only, if given).

    A club's configuration may list no token at all: the athletes are those who connected
    (the Connect page and ``tap-strava-auth`` store their chains here), so the tap reads
    them from the store. Only the wanted athletes' tokens are decrypted; one connection,
    closed at once.
    """
    wanted = None if athlete_ids is None else sorted({int(i) for i in athlete_ids})
    keys = keys or TokenKeys.from_environment()
    query = (
        f"SELECT DISTINCT ON (athlete_id) athlete_id, chain_key, refresh_token "  # noqa: S608
        f"FROM {SCHEMA}.tokens WHERE athlete_id IS NOT NULL AND refresh_token IS NOT NULL "
        + ("AND athlete_id = ANY(%s) " if wanted is not None else "")
        + "ORDER BY athlete_id, updated_at DESC"
    )
    with contextlib.closing(database.connect()) as connection:
        rows = connection.execute(query, (wanted,) if wanted is not None else ()).fetchall()
        connection.rollback()
    return [StoredChain(int(row[0]), str(row[1]), keys.decrypt(row[2])) for row in rows]


def stored_athlete_ids(database: SharedDatabase) -> set[int]:
    """Whose tokens the shared store holds, read without the keys (ids are in clear).

    For readers that must not hold the token keys, such as the push-event receiver
    deciding whose events to accept.
    """
    with contextlib.closing(database.connect()) as connection:
        rows = connection.execute(_ATHLETE_IDS).fetchall()
        connection.rollback()
    return {int(row[0]) for row in rows}
