"""The athlete's data outside the tables: spools, Meltano's states, logs, caches, tokens.

``strava-forget-athlete`` goes through every place the project writes (docs/events.md
"Forgetting an athlete"); the tables and output files are :mod:`strava_data.rows`, the
rest is here. Each function counts, and with ``apply`` removes, what one place holds of
the athlete, and returns ``Found`` lines for the report.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import re
import sqlite3
import typing as t
from pathlib import Path

from strava_data.project import ProjectError
from strava_data.rows import Found, keep_lines, owned, replace_file, write_lines
from tap_strava.errors import StravaConfigError
from tap_strava.shared_facts import SharedFacts
from tap_strava.token_store import forget_athlete

if t.TYPE_CHECKING:
    from strava_data.project import Project


def purge(value: t.Any, athlete_id: int) -> tuple[t.Any, int]:
    """``value`` without the athlete, and how many entries went.

    The tap keeps per-athlete state as partitions (``{"context": {"athlete_id": N}, ...}``:
    bookmarks, digests of activity ids, cursors) and caches as maps keyed by the id:
    drop list items that are the athlete's and keys that are the athlete's id.
    """
    removed = 0
    if isinstance(value, list):
        kept = []
        for item in value:
            context = item.get("context") if isinstance(item, dict) else None
            if owned(item, athlete_id) or owned(context, athlete_id):
                removed += 1
                continue
            item, count = purge(item, athlete_id)
            removed += count
            kept.append(item)
        return kept, removed
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key == str(athlete_id):
                removed += 1
                continue
            result[key], count = purge(item, athlete_id)
            removed += count
        return result, removed
    return value, 0


def spool_lines(folders: t.Iterable[Path], athlete_id: int, *, apply: bool) -> list[Found]:
    """The daily job's pending spools: the athlete's RECORD lines, and their state.

    Cleared before the tables: a replay after the tables were cleaned would load the
    athlete's rows again.
    """
    found: list[Found] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.jsonl")) + sorted(folder.rglob("*.json")):
            if path.suffix == ".json":
                found += _json_file(path, athlete_id, apply=apply)
                continue
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept, removed = [], 0
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    kept.append(line)
                    continue
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "RECORD" and owned(message.get("record"), athlete_id):
                    removed += 1
                    continue
                if kind == "STATE":
                    message["value"], count = purge(message.get("value"), athlete_id)
                    if count:
                        removed += count
                        line = json.dumps(message) + "\n"
                kept.append(line)
            if removed:
                found.append(Found(str(path), removed))
                if apply:
                    replace_file(path, functools.partial(write_lines, kept))
    return found


def _json_file(path: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """A JSON document (a consumer's committed state) without the athlete."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    document, removed = purge(document, athlete_id)
    if not removed:
        return []
    if apply:
        replace_file(path, lambda out: out.write(json.dumps(document, indent=1)))
    return [Found(str(path), removed)]


def meltano_states(project: Project, athlete_id: int, *, apply: bool) -> list[Found]:
    """Every Meltano state of the project (bookmarks, digests) without the athlete."""
    if project.root is None:
        return []
    listed = project.run_meltano("state", "list", check=True).stdout.split()
    state_ids = [word for word in listed if ":" in word]

    def one(state_id: str) -> Found | None:
        proc = project.run_meltano("state", "get", state_id, check=True)
        state, removed = purge(json.loads(proc.stdout), athlete_id)
        if not removed:
            return None
        if apply:
            project.run_meltano("state", "set", "--force", state_id, json.dumps(state), check=True)
        return Found(f"Meltano state {state_id}", removed)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return [item for item in pool.map(one, state_ids) if item is not None]


def meltano_runs(project: Project, athlete_id: int, *, apply: bool) -> list[Found]:
    """The states Meltano keeps in its ``runs`` table (one per block run), purged alike.

    ``meltano state set`` replaces a state id's current state; every past run's row keeps
    the state it ended with in ``payload``. No Meltano command edits those, so they are
    updated in the system database (``database_uri``, SQLite or PostgreSQL) directly.
    """
    if project.root is None:
        return []
    import sqlalchemy

    uri = str(project.config("meltano").get("database_uri") or "")
    if not uri:
        return []
    engine = sqlalchemy.create_engine(uri)
    removed = changed = 0
    try:
        with engine.begin() as connection:
            if not sqlalchemy.inspect(connection).has_table("runs"):
                return []
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT id, payload FROM runs WHERE CAST(payload AS TEXT) LIKE :id"
                ),
                {"id": f"%{athlete_id}%"},
            ).fetchall()
            for identifier, payload in rows:
                document = json.loads(payload) if isinstance(payload, str) else payload
                cleaned, count = purge(document, athlete_id)
                if not count:
                    continue
                removed, changed = removed + count, changed + 1
                if apply:
                    connection.execute(
                        sqlalchemy.text("UPDATE runs SET payload = :payload WHERE id = :id"),
                        {"payload": json.dumps(cleaned), "id": identifier},
                    )
    finally:
        engine.dispose()
    return [Found(f"Meltano's runs ({changed} run(s))", removed)] if removed else []


def log_lines(
    folder: Path, athlete_id: int, markers: t.Iterable[str], *, apply: bool
) -> list[Found]:
    """Lines of the logs that name the athlete, or one of their activities' ids or titles.

    A run's log carries what the pipeline printed: ids in the SDK's metrics, titles in
    the tap's and the loaders' messages (JSON-escaped in Meltano's log).
    """
    if not folder.is_dir():
        return []
    words = {str(athlete_id)} | {m for m in markers if m.isdigit()}
    texts = {m for m in markers if not m.isdigit() and len(m) >= 3}
    texts |= {json.dumps(m)[1:-1] for m in texts} | {
        json.dumps(m, ensure_ascii=False)[1:-1] for m in texts
    }
    pattern = re.compile(r"(?<!\d)(?:" + "|".join(sorted(words)) + r")(?!\d)")
    found: list[Found] = []
    for path in sorted(folder.rglob("*.log")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        kept = [
            line
            for line in lines
            if not pattern.search(line) and not any(text in line for text in texts)
        ]
        if removed := keep_lines(path, lines, kept, apply=apply):
            found.append(removed)
    return found


def facts_entries(token_store: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """The facts cache beside the token store (profile, stats, gear, track ids)."""
    facts = SharedFacts.beside(token_store)
    if not facts.path.exists():
        return []
    _, removed = purge(facts.read(), athlete_id)
    if removed and apply:

        def change(document: dict[str, t.Any]) -> None:
            cleaned, _ = purge(document, athlete_id)
            document.clear()
            document.update(cleaned)

        facts.update(change)
    return [Found(str(facts.path), removed)] if removed else []


def token_entries(token_store: Path, athlete_id: int, *, apply: bool) -> list[Found]:
    """The athlete's token chains in the token store."""
    if not token_store.exists():
        return []
    document = json.loads(token_store.read_text(encoding="utf-8"))
    tokens = document.get("tokens") if isinstance(document, dict) else None
    count = sum(
        1
        for entry in (tokens or {}).values()
        if isinstance(entry, dict) and entry.get("athlete_id") == athlete_id
    )
    if count and apply:
        forget_athlete(token_store, athlete_id)
    return [Found(str(token_store), count)] if count else []


def shared_database_entries(url: str, athlete_id: int, *, apply: bool) -> list[Found]:
    """The athlete's rows in the workers' shared database (facts cache, token chains).

    Only with the tap's ``shared_database_url``; a database that cannot be reached is an
    error (checked before anything is removed), never "nothing there".
    """
    from tap_strava.shared_database import SCHEMA, SharedDatabase

    found: list[Found] = []
    try:
        connection = SharedDatabase(url).connect()
    except StravaConfigError as exc:
        raise ProjectError(f"{exc}; nothing was removed") from exc
    with connection:
        for table in ("athlete_facts", "tokens"):
            query = f"SELECT count(*) FROM {SCHEMA}.{table} WHERE athlete_id = %s"  # noqa: S608
            row = connection.execute(query, (athlete_id,)).fetchone()
            count = int(row[0]) if row else 0
            if count and apply:
                connection.execute(
                    f"DELETE FROM {SCHEMA}.{table} WHERE athlete_id = %s",  # noqa: S608
                    (athlete_id,),
                )
            if count:
                found.append(Found(f"{SCHEMA}.{table}", count))
        connection.commit()
    return found


def receiver_files(
    sqlite_path: Path, spool_dir: Path, athlete_id: int, *, apply: bool
) -> list[Found]:
    """The receiver's SQLite queue and its local spool of events not yet stored."""
    found: list[Found] = []
    if sqlite_path.exists():
        connection = sqlite3.connect(sqlite_path, timeout=30)
        try:
            with connection:
                if apply:
                    count = connection.execute(
                        "DELETE FROM events WHERE owner_id = ?", (athlete_id,)
                    ).rowcount
                else:
                    row = connection.execute(
                        "SELECT count(*) FROM events WHERE owner_id = ?", (athlete_id,)
                    ).fetchone()
                    count = int(row[0]) if row else 0
        finally:
            connection.close()
        if count:
            found.append(Found(f"{sqlite_path} (events)", count))
    if spool_dir.is_dir():
        spooled = []
        for path in sorted(p for p in spool_dir.rglob("*") if p.is_file()):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            event = document.get("event") if isinstance(document, dict) else None
            if owned(event, athlete_id):
                spooled.append(path)
        if spooled:
            found.append(Found(str(spool_dir), len(spooled)))
            if apply:
                for path in spooled:
                    path.unlink(missing_ok=True)
    return found
