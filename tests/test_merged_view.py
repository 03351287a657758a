"""The merged view of API and archive rows, on a real PostgreSQL: precedence and deletions."""

from __future__ import annotations

import uuid

import pytest

from devtools.postgres import connect, to_libpq
from strava_data.merged_view import main

ATHLETE, OTHER = 100, 200


@pytest.fixture
def schema(postgres_url):
    name = f"merged_{uuid.uuid4().hex[:10]}"
    with connect(postgres_url) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with connect(postgres_url) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def _create(postgres_url: str, schema: str, *, deletions: bool = True) -> None:
    """Tables shaped as target-postgres writes them (a subset of the columns)."""
    statements = [
        f'CREATE TABLE "{schema}".activities (id bigint, athlete_id bigint, name text, '
        "sport_type text, start_date timestamp, distance numeric, moving_time bigint, "
        "commute boolean, _sdc_deleted_at timestamp)",
        f'CREATE TABLE "{schema}".activity_details (id bigint, athlete_id bigint, '
        "description text, calories numeric)",
        f'CREATE TABLE "{schema}".export_activities (id bigint, athlete_id bigint, name text, '
        "sport_type text, start_date timestamp, distance numeric, moving_time bigint, "
        "elapsed_time bigint, commute boolean, description text, calories numeric)",
        f'CREATE TABLE "{schema}".export_tracks (activity_id bigint, athlete_id bigint, '
        "heartrate bigint[])",
        # API row, renamed on Strava after the archive was made; the archive has more.
        f"INSERT INTO \"{schema}\".activities VALUES (1, {ATHLETE}, 'API name', 'Ride', "
        "'2024-05-01 10:00', 30000, 3600, NULL, NULL)",
        f"INSERT INTO \"{schema}\".export_activities VALUES (1, {ATHLETE}, 'Old name', 'Ride', "
        "'2024-05-01 10:00', 29990, 3599, 3700, true, 'from the archive', 812)",
        f'INSERT INTO "{schema}".export_tracks VALUES (1, {ATHLETE}, ARRAY[120, 121])',
        # Only the archive has it (the API's history has not reached it).
        f"INSERT INTO \"{schema}\".export_activities VALUES (2, {ATHLETE}, 'Archive only', "
        "'Run', '2019-03-01 07:00', 10000, 3000, 3100, false, 'line one\nline two', NULL)",
        # The API has details for 3; the archive too: the API wins.
        f"INSERT INTO \"{schema}\".activities VALUES (3, {ATHLETE}, 'Three', 'Run', "
        "'2024-06-01 07:00', 5000, 1500, false, NULL)",
        f"INSERT INTO \"{schema}\".activity_details VALUES (3, {ATHLETE}, 'API text', 300)",
        f"INSERT INTO \"{schema}\".export_activities VALUES (3, {ATHLETE}, 'Three', 'Run', "
        "'2024-06-01 07:00', 5000, 1500, 1600, false, 'archive text', 299)",
        # Flagged deleted by the reconcile, but an older archive still has it.
        f"INSERT INTO \"{schema}\".activities VALUES (4, {ATHLETE}, 'Gone', 'Run', "
        "'2024-07-01 07:00', 1, 1, false, '2024-08-01 00:00')",
        f"INSERT INTO \"{schema}\".export_activities VALUES (4, {ATHLETE}, 'Gone', 'Run', "
        "'2024-07-01 07:00', 1, 1, 1, false, NULL, NULL)",
        # Another athlete with the same activity id: a separate row.
        f"INSERT INTO \"{schema}\".export_activities VALUES (1, {OTHER}, 'Other athlete', "
        "'Walk', '2024-05-01 10:00', 1000, 600, 600, false, NULL, NULL)",
    ]
    if deletions:
        statements += [
            f'CREATE TABLE "{schema}".activity_deletions (id bigint, athlete_id bigint, '
            "deleted_at timestamp, confirmed_at timestamp, source text)",
            # A push event confirmed 2 deleted; a forged one named 3 with another athlete.
            f'INSERT INTO "{schema}".activity_deletions VALUES (2, {ATHLETE}, NULL, now(), '
            "'push_event'), (3, 999, NULL, now(), 'push_event')",
        ]
    with connect(postgres_url) as conn:
        for statement in statements:
            conn.execute(statement)


def _view(postgres_url: str, schema: str) -> dict[tuple[int, int], dict]:
    with connect(postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT * FROM "{schema}".activities_merged')
        names = [c.name for c in cur.description or []]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    keyed = {(r["id"], r["athlete_id"]): r for r in rows}
    assert len(keyed) == len(rows), "one row per (id, athlete_id)"
    return keyed


def test_the_api_wins_the_archive_fills_and_deletions_stay_deleted(postgres_url, schema):
    _create(postgres_url, schema)
    assert main(["--dsn", to_libpq(postgres_url), "--schema", schema]) == 0
    view = _view(postgres_url, schema)
    assert set(view) == {(1, ATHLETE), (3, ATHLETE), (1, OTHER)}
    one = view[(1, ATHLETE)]
    assert (one["name"], one["distance"], one["moving_time"]) == ("API name", 30000, 3600)
    assert (one["elapsed_time"], one["commute"]) == (3700, True), "the archive fills the gaps"
    assert (one["description"], one["calories"]) == ("from the archive", 812)
    assert (one["source"], one["has_track"]) == ("both", True)
    three = view[(3, ATHLETE)]
    assert (three["description"], three["calories"]) == ("API text", 300)
    assert three["has_track"] is False
    assert view[(1, OTHER)]["source"] == "archive"


def test_the_view_follows_the_tables_that_exist(postgres_url, schema):
    _create(postgres_url, schema, deletions=False)
    assert main(["--dsn", to_libpq(postgres_url), "--schema", schema]) == 0
    assert (2, ATHLETE) in _view(postgres_url, schema)
    # The events job loads its first deletion later: running the command again applies it.
    with connect(postgres_url) as conn:
        conn.execute(
            f'CREATE TABLE "{schema}".activity_deletions (id bigint, athlete_id bigint, '
            "deleted_at timestamp, confirmed_at timestamp, source text)"
        )
        conn.execute(
            f'INSERT INTO "{schema}".activity_deletions VALUES (2, {ATHLETE}, NULL, now(), '
            "'push_event')"
        )
    assert main(["--dsn", to_libpq(postgres_url), "--schema", schema]) == 0
    assert (2, ATHLETE) not in _view(postgres_url, schema)


def test_no_source_table_yet_is_not_an_error(postgres_url, schema, capsys):
    assert main(["--dsn", to_libpq(postgres_url), "--schema", schema]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_the_data_commands_read_the_project_env(postgres_url, schema, tmp_path):
    """Run in the project folder with the database in .env, as cron runs them."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shutil.copy(root / "meltano.yml", tmp_path / "meltano.yml")
    (tmp_path / ".env").write_text(
        f"TARGET_POSTGRES_SQLALCHEMY_URL={postgres_url}\n"
        f"TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA={schema}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TARGET_", "MELTANO_"))}
    for script in ("strava-merged-view", "strava-apply-deletions"):
        done = subprocess.run(
            [str(Path(sys.executable).with_name(script))],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert schema in done.stdout or "deletions applied: 0" in done.stdout, done.stdout
