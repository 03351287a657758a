"""Where the app's shared facts live: files beside the token store, or a shared database.

The one place that chooses, from the tap's config: without ``shared_database_url`` (the
default) the token store, the facts cache and the quota reading are the files of
:mod:`tap_strava.token_store` and :mod:`tap_strava.shared_facts`; with it, their
PostgreSQL backends (:mod:`tap_strava.token_store_postgres`,
:mod:`tap_strava.shared_facts_postgres`) and the app's quota ledger
(:mod:`tap_strava.quota_ledger`). The PostgreSQL modules are imported only then.
"""

from __future__ import annotations

import typing as t
from pathlib import Path

from tap_strava.shared_database import SharedDatabase
from tap_strava.shared_facts import SharedFacts
from tap_strava.token_store import TokenStore, default_token_store_path
from tap_strava.token_store import forget_athlete as forget_athlete_in_file

if t.TYPE_CHECKING:
    from tap_strava.quota_ledger import QuotaLedger


def token_store_path(config: t.Mapping[str, t.Any]) -> Path:
    """The token store file (also where the facts file lives, beside it)."""
    return Path(config.get("token_store_path") or default_token_store_path())


def shared_facts(
    config: t.Mapping[str, t.Any], database: SharedDatabase | None = None
) -> SharedFacts:
    """The facts cache and quota reading of the app."""
    database = database or SharedDatabase.from_config(config)
    if database is None:
        return SharedFacts.beside(token_store_path(config))
    from tap_strava.shared_facts_postgres import PostgresSharedFacts

    return PostgresSharedFacts(database)


def token_store(
    config: t.Mapping[str, t.Any],
    *,
    client_id: str,
    configured_refresh_token: str,
    database: SharedDatabase | None = None,
) -> TokenStore:
    """The store of one chain of tokens."""
    database = database or SharedDatabase.from_config(config)
    if database is None:
        return TokenStore(
            token_store_path(config),
            client_id=client_id,
            configured_refresh_token=configured_refresh_token,
        )
    from tap_strava.token_store_postgres import PostgresTokenStore

    return PostgresTokenStore(
        database, client_id=client_id, configured_refresh_token=configured_refresh_token
    )


def quota_ledger(
    config: t.Mapping[str, t.Any], database: SharedDatabase | None = None
) -> QuotaLedger | None:
    """The app's quota ledger, or None without a shared database."""
    database = database or SharedDatabase.from_config(config)
    if database is None:
        return None
    from tap_strava.quota_ledger import DEFAULT_RESERVE_PERCENT, QuotaLedger

    return QuotaLedger(
        database,
        window_seconds=int(config.get("rate_limit_window_seconds", 900)),
        reserve_percent=int(config.get("quota_reserve_percent", DEFAULT_RESERVE_PERCENT)),
    )


def forget_athlete(config: t.Mapping[str, t.Any], athlete_id: int) -> int:
    """Remove every chain of one athlete from the configured store; the number removed."""
    database = SharedDatabase.from_config(config)
    if database is None:
        return forget_athlete_in_file(token_store_path(config), athlete_id)
    from tap_strava.token_store_postgres import forget_athlete as forget_athlete_in_database

    return forget_athlete_in_database(database, athlete_id)
