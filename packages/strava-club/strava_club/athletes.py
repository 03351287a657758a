"""The club's athletes: the ids in the tap's token store (never its token values).

An athlete joins when the receiver's Connect page (or ``tap-strava-auth``) stores their
tokens with their id, and leaves when their entry is removed after they revoke (the events
run confirms a revocation and deletes it; ``tap-strava-auth --forget-athlete ID``). This
module reads only the athlete ids: with ``shared_database_url`` the clear ``athlete_id``
column of ``strava_shared.tokens`` (the tokens are encrypted and the keys are not needed
here), else the ``athlete_id`` of each entry of the file-based store
(``{"version": 1, "tokens": {key: {...}}}``).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import psycopg2.errors

#: The shared store's table (tap_strava.shared_database.SCHEMA); the club's environment
#: does not install the tap, so the name is repeated here.
SHARED_TOKENS = "strava_shared.tokens"


class TokenStoreUnreadable(Exception):
    """The token store exists but is not one (one line naming the file)."""


def connected_athletes(token_store: Path) -> set[int]:
    """The athlete ids with tokens in the store; an absent store has none."""
    try:
        document = json.loads(token_store.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        msg = f"cannot read the token store {token_store} ({exc}): fix token_store_path"
        raise TokenStoreUnreadable(msg) from exc
    tokens = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(tokens, dict):
        msg = f'{token_store} is not a tap-strava token store (no "tokens" object)'
        raise TokenStoreUnreadable(msg)
    return {
        int(entry["athlete_id"])
        for entry in tokens.values()
        if isinstance(entry, dict) and isinstance(entry.get("athlete_id"), int)
    }


def shared_athletes(dsn: str) -> set[int]:
    """The athlete ids with a live chain in the shared PostgreSQL store.

    The query the receiver and ``tap_strava.token_store_postgres.stored_athlete_ids`` run:
    ids in clear, no token read. A store no worker has created yet holds nobody.
    """
    try:
        connection = psycopg2.connect(dsn, connect_timeout=10)
    except psycopg2.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        msg = f"cannot reach the shared database ({first}): check shared_database_url"
        raise TokenStoreUnreadable(msg) from exc
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT athlete_id FROM {SHARED_TOKENS} "  # noqa: S608
                "WHERE athlete_id IS NOT NULL AND refresh_token IS NOT NULL"
            )
            return {int(row[0]) for row in cursor.fetchall()}
    except psycopg2.errors.UndefinedTable:
        return set()
    finally:
        connection.close()
