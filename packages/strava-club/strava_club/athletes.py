"""The club's athletes: the ids in the tap's token store (never its token values).

An athlete joins when ``tap-strava-auth`` (or the Connect page) stores their tokens with
their id, and leaves when their entry is removed after they revoke
(``tap-strava-auth --forget-athlete ID``). This module reads only the ``athlete_id`` of
each entry of the file-based store (``{"version": 1, "tokens": {key: {...}}}``); when the
store moves into PostgreSQL, this is the one place that reads it.
"""

from __future__ import annotations

import json
from pathlib import Path


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
