"""``strava-forget-athlete``: list, then remove, everything the project holds of one athlete.

Strava's API agreement asks that a revoking athlete's data be deleted (docs/events.md,
"Forgetting an athlete"), and an athlete may ask for it too. This command goes through
every place the project writes, in an order that cannot bring data back: under the
project's job lock (no job runs meanwhile), it first revokes the athlete's tokens at
Strava (``oauth/revoke``: while the store still holds them), then clears the pending
spools (a later replay would load the rows again), Meltano's states, every table of the
schemas the project writes, the receiver's queue, the output files, the DuckDB file, the
logs, the facts cache and the token store. Every place it needs is checked before anything
is removed: one it cannot reach stops it with one line. Without ``--apply`` it only lists.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
import typing as t
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import filelock

from strava_data import places, rows
from strava_data.project import Project, ProjectError
from strava_notify.job import job_lock_path
from strava_spool.status import spool_dir_from

if t.TYPE_CHECKING:
    import psycopg

PROG = "strava-forget-athlete"
#: The receiver's defaults (packages/strava-events/strava_events/settings.py).
EVENTS_SCHEMA = "strava_events"
#: The dbt models' schema (transform/profiles/profiles.yml).
ANALYTICS_SCHEMA = "analytics"


@dataclasses.dataclass
class Places:
    """Where the project writes, resolved once from its settings."""

    postgres: dict[str, list[str]]  # libpq URL -> the schemas the project writes there
    output: Path
    duckdb: Path | None
    spools: list[Path]
    logs: Path
    receiver_sqlite: Path
    receiver_spool: Path
    token_store: Path | None
    # The tap's shared database of several workers (shared_database_url), if configured.
    shared_database: str | None = None


def resolve(project: Project, dsn: str | None) -> Places:
    """Every place from the project's settings (Meltano's for what meltano.yml holds)."""
    settings = project.settings
    postgres: dict[str, list[str]] = {}
    url = dsn or project.postgres_url()
    if url:
        analytics = settings.get("STRAVA_ANALYTICS_SCHEMA") or ANALYTICS_SCHEMA
        postgres[url] = [project.postgres_schema(), analytics]
    events_schema = settings.get("STRAVA_EVENTS_POSTGRES_SCHEMA") or EVENTS_SCHEMA
    events_url = settings.get("STRAVA_EVENTS_POSTGRES_DSN") or url
    if events_url:
        postgres.setdefault(events_url, []).append(events_schema)
    receiver = Path(settings.get("STRAVA_EVENTS_STATE_DIR") or project.path(".strava-events"))
    output = Path(project_setting(project, "target-csv-replay", "output_path") or "output")
    duckdb = project_setting(project, "target-duckdb", "filepath")
    spools = {spool_dir_from(settings, project.root or Path.cwd(), project.environment)}
    if not settings.get("STRAVA_SPOOL_DIR") and project.path("spool").is_dir():
        # spool/<environment>: every environment's spools.
        spools |= {p for p in project.path("spool").iterdir() if p.is_dir()}
    return Places(
        postgres={key: sorted(set(value)) for key, value in postgres.items()},
        output=output if output.is_absolute() else project.path(str(output)),
        duckdb=Path(duckdb) if duckdb else None,
        spools=sorted(spools),
        logs=project.path("logs"),
        receiver_sqlite=Path(
            settings.get("STRAVA_EVENTS_SQLITE_PATH") or receiver / "events.sqlite3"
        ),
        receiver_spool=Path(settings.get("STRAVA_EVENTS_SPOOL_DIR") or receiver / "spool"),
        token_store=project.token_store_path(),
        shared_database=project_setting(project, "tap-strava", "shared_database_url"),
    )


def project_setting(project: Project, plugin: str, name: str) -> str | None:
    """A plugin setting: its variable (environment or .env wins in Meltano too), else Meltano's."""
    variable = f"{plugin.replace('-', '_').upper()}_{name.upper()}"
    given = project.settings.get(variable, "").strip()
    if given:
        return given
    value = project.config(plugin).get(name)
    return str(value) if value else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="List (or with --apply remove) everything the project holds of one "
        "athlete: PostgreSQL rows of every schema it writes, the receiver's queue, spools, "
        "Meltano's states, CSV/JSONL/XML output, DuckDB, logs, the facts cache and the "
        "token store; with --apply the athlete's tokens are first revoked at Strava.",
    )
    parser.add_argument("--athlete", type=int, required=True, help="the Strava athlete id")
    parser.add_argument("--apply", action="store_true", help="remove; without it, only list")
    parser.add_argument(
        "--no-revoke",
        action="store_true",
        help="remove the athlete's tokens without revoking them at Strava (Strava unreachable, "
        "or the athlete revoked the app already)",
    )
    parser.add_argument("--dsn", help="PostgreSQL connection (default: target-postgres's)")
    return parser


def _on_postgres(
    url: str, action: t.Callable[[psycopg.Connection], list[rows.Found]]
) -> list[rows.Found]:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=10) as connection:
            return action(connection)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        msg = (
            f"PostgreSQL cannot be reached ({first}): start it or fix target-postgres's "
            "settings (.env, meltano.yml); nothing was removed"
        )
        raise ProjectError(msg) from exc


def _postgres(places_: Places, athlete: int, *, apply: bool) -> tuple[list[rows.Found], set[str]]:
    """The athlete's rows in every schema the project writes; their activities' ids, titles."""
    found: list[rows.Found] = []
    markers: set[str] = set()
    for url, wanted in places_.postgres.items():

        def action(connection: psycopg.Connection, wanted: list[str] = wanted) -> list[rows.Found]:
            schemas = rows.existing_schemas(connection, wanted)
            markers.update(rows.activity_markers(connection, schemas, athlete))
            return rows.postgres_rows(connection, schemas, athlete, apply=apply)

        found += _on_postgres(url, action)
    return found, markers


def stored_tokens(where: Places, athlete: int) -> list[str]:
    """The athlete's stored tokens (refresh, else access): token file and shared database."""
    tokens: list[str] = []
    if where.token_store is not None:
        try:
            document = json.loads(where.token_store.read_text(encoding="utf-8"))
        except FileNotFoundError:
            document = {}
        tokens += [
            str(entry.get("refresh_token") or entry.get("access_token") or "")
            for entry in (document.get("tokens") or {}).values()
            if isinstance(entry, dict) and entry.get("athlete_id") == athlete
        ]
    if where.shared_database:
        from tap_strava.errors import StravaConfigError
        from tap_strava.shared_database import SharedDatabase
        from tap_strava.token_store_postgres import athlete_refresh_tokens

        try:
            tokens += athlete_refresh_tokens(SharedDatabase(where.shared_database), athlete)
        except StravaConfigError as exc:
            raise ProjectError(f"{exc}; nothing was removed") from exc
    return tokens


def revoke(project: Project, tokens: list[str]) -> int:
    """Revoke each of the athlete's stored tokens at Strava; how many."""
    if not tokens:
        return 0
    client_id = project_setting(project, "tap-strava", "client_id")
    secret = project_setting(project, "tap-strava", "client_secret")
    token_url = project_setting(project, "tap-strava", "token_url") or (
        "https://www.strava.com/oauth/token"
    )
    if not client_id or not secret:
        msg = (
            "cannot revoke the athlete's tokens at Strava: TAP_STRAVA_CLIENT_ID and "
            "TAP_STRAVA_CLIENT_SECRET are not set (environment, the project's .env or "
            "meltano.yml); set them, or pass --no-revoke"
        )
        raise ProjectError(msg)
    url = token_url.rstrip("/").rsplit("/", 1)[0] + "/revoke"
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    for token in tokens:
        body = urllib.parse.urlencode({"token": token, "token_type_hint": "refresh_token"})
        request = urllib.request.Request(  # noqa: S310 - Strava's (or the simulator's) URL
            url,
            data=body.encode(),
            headers={"Authorization": f"Basic {basic}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30):  # noqa: S310
                pass
        except urllib.error.HTTPError as exc:
            if exc.code == 400:  # a token Strava no longer knows: nothing left to revoke
                continue
            msg = (
                f"Strava refused to revoke the athlete's token (HTTP {exc.code} from {url}): "
                "check the client id and secret, or pass --no-revoke; nothing was removed"
            )
            raise ProjectError(msg) from exc
        except OSError as exc:
            msg = (
                f"cannot reach {url} to revoke the athlete's token ({exc}): try again, or "
                "pass --no-revoke; nothing was removed"
            )
            raise ProjectError(msg) from exc
    return len(tokens)


def forget(project: Project, args: argparse.Namespace) -> list[tuple[str, list[rows.Found]]]:
    """Every place, in order; what each held (and with ``--apply`` no longer holds)."""
    athlete, apply = args.athlete, args.apply
    where = resolve(project, args.dsn)
    if where.duckdb is not None and where.duckdb.exists():
        rows.duckdb_rows(where.duckdb, athlete, apply=False)  # reachable before anything goes
    found_postgres, markers = _postgres(where, athlete, apply=False)  # reachable, and titles
    if where.shared_database:  # reachable before anything goes
        places.shared_database_entries(where.shared_database, athlete, apply=False)
    report: list[tuple[str, list[rows.Found]]] = []
    has_store = where.token_store is not None or where.shared_database
    if apply and has_store and not args.no_revoke:
        revoked = revoke(project, stored_tokens(where, athlete))
        report.append(("Strava (oauth/revoke)", [rows.Found("token chain(s) revoked", revoked)]))
    report.append(("spools", places.spool_lines(where.spools, athlete, apply=apply)))
    report.append(
        (
            "the receiver's queue",
            places.receiver_files(
                where.receiver_sqlite, where.receiver_spool, athlete, apply=apply
            ),
        )
    )
    report.append(("Meltano's states", places.meltano_states(project, athlete, apply=apply)))
    report.append(("Meltano's run history", places.meltano_runs(project, athlete, apply=apply)))
    if apply:
        found_postgres, _ = _postgres(where, athlete, apply=True)
    report.append(("PostgreSQL", found_postgres))
    if where.output.is_dir():
        files = rows.csv_rows(where.output, athlete, apply=apply)
        files += rows.jsonl_rows(where.output, athlete, apply=apply)
        files += rows.xml_rows(where.output, athlete, apply=apply)
        report.append(("output files", files))
    if where.duckdb is not None and where.duckdb.exists():
        report.append(("DuckDB", rows.duckdb_rows(where.duckdb, athlete, apply=apply)))
    report.append(("logs", places.log_lines(where.logs, athlete, markers, apply=apply)))
    if where.token_store is not None:
        report.append(
            ("facts cache", places.facts_entries(where.token_store, athlete, apply=apply))
        )
        report.append(
            ("token store", places.token_entries(where.token_store, athlete, apply=apply))
        )
    if where.shared_database:
        found_shared = places.shared_database_entries(where.shared_database, athlete, apply=apply)
        report.append(("the workers' shared database", found_shared))
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the command; one line and exit 1 for what the user can fix."""
    args = _parser().parse_args(argv)
    project = Project.here()
    if project.root is None:
        print(
            f"{PROG}: error: no meltano.yml in {Path.cwd()} or above: run it in the Meltano "
            "project (or set MELTANO_PROJECT_ROOT)",
            file=sys.stderr,
        )
        return 1
    lock = filelock.FileLock(str(job_lock_path(project.root)), timeout=0)
    try:
        job_lock_path(project.root).parent.mkdir(parents=True, exist_ok=True)
        with lock:
            report = forget(project, args)
    except filelock.Timeout:
        print(
            f"{PROG}: error: a job of the project is running (it holds "
            f"{job_lock_path(project.root)}): run this again when it has finished",
            file=sys.stderr,
        )
        return 1
    except (ProjectError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    verb = "removed" if args.apply else "would remove"
    total = 0
    for kind, found in report:
        if not found:
            print(f"{kind}: nothing of athlete {args.athlete}")
        for item in found:
            if kind.startswith("Strava"):
                print(f"{kind}: {item.rows} {item.place}")
                continue
            print(f"{kind}: {verb} {item.rows} in {item.place}")
            total += item.rows
    print(
        f"athlete {args.athlete}: {total} row(s), line(s) and entries "
        + ("removed" if args.apply else "to remove; run again with --apply to remove them")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
