"""One model layer over every source, for three kinds of athlete in one database.

Three simulated athletes load into one PostgreSQL schema, each through ``meltano run``:
an archive-only athlete (``strava-archive``, no API app), an API-only athlete
(``tap-strava``), and a mixed one whose archive is loaded first, then the API with a rename
since the export, new uploads after it and, after the weekly reconcile, one deletion. The
dbt project builds on PostgreSQL over an analytics schema the previous version's models
had already built (the upgrade), and on DuckDB over a copy of the raw tables, both with a
session time zone far from UTC (Pacific/Auckland). Every mart must hold each athlete's
activities once and only theirs, against counts and sums computed here from the
simulator's data; the pipeline's ``activities_merged`` view must agree with the model on
the rows they share. A hand-made schema covers the local-time rules the simulated loads do
not reach (the archive's own local time, the athlete's time zone, a missing table).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import html
import json
import math
import os
import re
import subprocess
import sys
import tarfile
import typing as t
import uuid
import zoneinfo
from pathlib import Path

import pytest

from devtools import schema_doc
from devtools.postgres import connect
from strava_simulator import StravaSimulator
from strava_simulator.archive import write_archive
from tests.pipeline import PROJECT_ROOT, MeltanoProject
from tests.test_analytics import (
    RIDES,
    RUNS,
    assert_built,
    copy_to_duckdb,
    duckdb_mart,
    postgres_mart,
)
from tests.test_pipeline_reconcile import record_granted_scope

pytestmark = pytest.mark.extras

#: The commit before the merged model: its dbt project builds the analytics schema first.
PREVIOUS_MODELS = "8a46c7a7fca33e3142dfa0bcfcb0f44cb0e74b45"
#: A session time zone 12-13 hours from UTC: a date taken from an instant shows at once.
SESSION_ZONE = "Pacific/Auckland"
BIG = 10**7
RAW_TABLES = (
    "activities",
    "activity_details",
    "activity_streams",
    "activity_deletions",
    "export_activities",
    "export_tracks",
    "athlete",
    "athlete_stats",
)
MART_KEYS = {
    "activities_enriched": ("athlete_id", "activity_id"),
    "weekly_volume": ("athlete_id", "week_start", "sport_type"),
    "monthly_volume": ("athlete_id", "month_start", "sport_type"),
    "gear_mileage": ("athlete_id", "gear_id"),
    "personal_bests": ("athlete_id", "sport_group", "distance_label"),
    "yearly_totals": ("athlete_id", "year", "sport_type"),
    "ride_summary": ("athlete_id", "period_grain", "period_start"),
}
RENAMED = "Renamed on Strava after the export"


class Loaded(t.NamedTuple):
    project: MeltanoProject
    #: athlete id -> kind (archive, api, mixed)
    kinds: dict[int, str]
    #: athlete id -> the activities each should have now, as the simulator serves them
    expected: dict[int, dict[int, dict[str, t.Any]]]
    renamed: int
    deleted: int
    new_uploads: set[int]


def _archive_run(project: MeltanoProject, archive: Path) -> None:
    no_api = {
        "TAP_STRAVA_CLIENT_ID": "",
        "TAP_STRAVA_CLIENT_SECRET": "",
        "TAP_STRAVA_REFRESH_TOKEN": "",
    }
    run = project.meltano("run", "strava-archive", STRAVA_EXPORT_ARCHIVE=str(archive), **no_api)
    assert run.returncode == 0, run.stderr[-4000:]


@pytest.fixture(scope="module")
def loaded(postgres_url, tmp_path_factory) -> t.Iterator[Loaded]:
    workdir = tmp_path_factory.mktemp("all-sources")
    with (
        StravaSimulator(seed=61, activity_count=40) as archive_sim,
        StravaSimulator(
            seed=62, activity_count=40, read_limit_15min=BIG, read_limit_daily=BIG
        ) as sim,
    ):
        api_only = sim.primary
        mixed = sim.add_athlete(seed=63, activity_count=40)
        project = MeltanoProject(
            sim=sim, postgres_url=postgres_url, workdir=workdir, refresh_token=""
        )
        try:
            # The archive-only athlete: an export archive, no API app at all.
            archive_only = write_archive(archive_sim, workdir / "archive-a", track_seconds=120)
            _archive_run(project, archive_only.path)
            # The mixed athlete's archive, then, after the export: a rename and uploads.
            mixed_archive = write_archive(
                sim, workdir / "archive-c", athlete_id=mixed.athlete_id, track_seconds=120
            )
            _archive_run(project, mixed_archive.path)
            by_date = sorted(mixed.activities, key=lambda a: a["start_date"])
            renamed = by_date[-3]["id"]
            mixed.update_activity(renamed, name=RENAMED)
            newest = datetime.datetime.fromisoformat(by_date[-1]["start_date"])
            new_uploads = {
                mixed.add_activity(
                    start_date=(newest + datetime.timedelta(hours=7 * (i + 1))).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                )["id"]
                for i in range(15)
            }
            tokens = {"api-only": api_only.refresh_token, "mixed": mixed.refresh_token}
            athletes = json.dumps(
                [{"name": name, "refresh_token": token} for name, token in tokens.items()]
            )
            api_run = project.meltano(
                "run", "tap-strava", "target-postgres", TAP_STRAVA_ATHLETES=athletes
            )
            assert api_run.returncode == 0, api_run.stderr[-4000:]
            # Deleted on Strava after both loads: the weekly reconcile flags it.
            deleted = by_date[len(by_date) // 2]["id"]
            mixed.delete_activity(deleted)
            for token in tokens.values():
                record_granted_scope(project, str(token))
            reconcile = project.meltano(
                "run", "tap-strava-reconcile", "target-postgres", TAP_STRAVA_ATHLETES=athletes
            )
            assert reconcile.returncode == 0, reconcile.stderr[-4000:]
            yield Loaded(
                project=project,
                kinds={
                    archive_sim.athlete_id: "archive",
                    api_only.athlete_id: "api",
                    mixed.athlete_id: "mixed",
                },
                expected={
                    archive_sim.athlete_id: {a["id"]: a for a in archive_sim.activities},
                    api_only.athlete_id: {a["id"]: a for a in api_only.activities},
                    mixed.athlete_id: {a["id"]: a for a in mixed.activities},
                },
                renamed=renamed,
                deleted=deleted,
                new_uploads=new_uploads,
            )
        finally:
            project.drop_schema()
            with connect(postgres_url) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{project.analytics_schema}" CASCADE')


def _previous_project(workdir: Path) -> Path:
    """The dbt project as the previous version shipped it (git archive of transform/)."""
    target = workdir / "previous"
    if not (target / "transform").exists():
        target.mkdir(exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "archive", PREVIOUS_MODELS, "transform"],
            capture_output=True,
            check=True,
        )
        tar = workdir / "previous.tar"
        tar.write_bytes(archive.stdout)
        with tarfile.open(tar) as handle:
            handle.extractall(target, filter="data")
    return target / "transform"


def _relation_exists(project: MeltanoProject, name: str) -> bool:
    with connect(project.postgres_url) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (project.analytics_schema, name),
        ).fetchone()
    return found is not None


@pytest.fixture(scope="module")
def postgres_build(loaded) -> subprocess.CompletedProcess:
    """The upgrade: the previous models built first, then these, in a non-UTC session."""
    project = loaded.project
    previous = _previous_project(project.workdir)
    old = project.dbt(
        "run",
        DBT_PROJECT_DIR=str(previous),
        DBT_PROFILES_DIR=str(previous / "profiles"),
        PGTZ=SESSION_ZONE,
    )
    assert old.returncode == 0, (old.stdout + old.stderr)[-4000:]
    with connect(project.postgres_url) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = 'weekly_volume'",
                (project.analytics_schema,),
            ).fetchall()
        }
    assert columns, "the previous marts were built first"
    assert "athlete_id" not in columns, "by the previous models"
    assert _relation_exists(project, "stg_activities"), "the previous staging view"
    return project.dbt("build", PGTZ=SESSION_ZONE, TZ=SESSION_ZONE)


@pytest.fixture(scope="module")
def duckdb_file(loaded) -> Path:
    path = loaded.project.workdir / "strava.duckdb"
    with connect(loaded.project.postgres_url) as conn:
        present = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (loaded.project.schema,),
            ).fetchall()
        }
    copy_to_duckdb(loaded.project, path, tables=[n for n in RAW_TABLES if n in present])
    return path


@pytest.fixture(scope="module")
def duckdb_build(loaded, duckdb_file) -> subprocess.CompletedProcess:
    return loaded.project.dbt(
        "build", "--target", "duckdb", TARGET_DUCKDB_FILEPATH=str(duckdb_file), TZ=SESSION_ZONE
    )


def _close(a: t.Any, b: t.Any, rel: float = 1e-6) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-3)


def _utc(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _expected_day(activity: dict[str, t.Any], rule: str) -> datetime.date:
    """The local date the simulator's data gives under the rule the model applied."""
    if rule in ("api", "fit_local_timestamp"):
        return datetime.date.fromisoformat(activity["start_date_local"][:10])
    if rule == "start_coordinates":
        # The zone of the start coordinates, as the archive's rule says: the simulator's
        # own wall time may be another zone's (it places a few starts at sea).
        from timezonefinder import TimezoneFinder

        lat, lng = activity["start_latlng"]
        zone = TimezoneFinder().timezone_at(lng=lng, lat=lat)
        assert zone, activity["start_latlng"]
        return _utc(activity["start_date"]).astimezone(zoneinfo.ZoneInfo(zone)).date()
    assert rule == "utc", rule  # an archive-only athlete has no zone anywhere
    return _utc(activity["start_date"]).date()


def _km(activity: dict[str, t.Any]) -> float:
    return float(activity["distance"]) / 1000


def _check_marts(loaded: Loaded, mart: t.Callable[[str], list[dict[str, t.Any]]]) -> None:
    """Each athlete's activities once, only theirs, in every mart (sums from the simulator)."""
    enriched = mart("activities_enriched")
    by_athlete: dict[int, dict[int, dict[str, t.Any]]] = collections.defaultdict(dict)
    for row in enriched:
        assert row["activity_id"] not in by_athlete[row["athlete_id"]], "once"
        by_athlete[row["athlete_id"]][row["activity_id"]] = row
    assert set(by_athlete) == set(loaded.expected), "every athlete, no other"
    days: dict[int, dict[int, datetime.date]] = {}
    for athlete_id, activities in loaded.expected.items():
        rows = by_athlete[athlete_id]
        assert set(rows) == set(activities), (loaded.kinds[athlete_id], "ids")
        days[athlete_id] = {}
        for activity_id, activity in activities.items():
            row = rows[activity_id]
            assert _close(row["distance_km"], _km(activity)), (athlete_id, activity_id)
            assert row["start_date"] == _utc(activity["start_date"]), (athlete_id, activity_id)
            day = _expected_day(activity, row["local_time_rule"])
            days[athlete_id][activity_id] = day
            assert row["local_date"] == day, (athlete_id, activity_id, row["local_time_rule"])
            assert (row["iso_year"], row["iso_week"]) == tuple(day.isocalendar())[:2]
            assert row["week_start"] == day - datetime.timedelta(days=day.weekday())

    def totals(
        period: t.Callable[[datetime.date], t.Any],
    ) -> dict[tuple[int, t.Any], tuple[int, float]]:
        sums: dict[tuple[int, t.Any], list[float]] = collections.defaultdict(lambda: [0, 0.0])
        for athlete_id, activities in loaded.expected.items():
            for activity_id, activity in activities.items():
                cell = sums[(athlete_id, period(days[athlete_id][activity_id]))]
                cell[0] += 1
                cell[1] += _km(activity)
        return {key: (int(n), km) for key, (n, km) in sums.items()}

    def mart_totals(model: str, period: str) -> dict[tuple[int, t.Any], tuple[int, float]]:
        sums: dict[tuple[int, t.Any], list[float]] = collections.defaultdict(lambda: [0, 0.0])
        for row in mart(model):
            if model == "yearly_totals" and row["sport_type"] != "All":
                continue
            cell = sums[(row["athlete_id"], row[period])]
            cell[0] += int(row["activities"])
            cell[1] += float(row["distance_km"])
        return {key: (int(n), km) for key, (n, km) in sums.items()}

    for model, period, of in (
        ("weekly_volume", "week_start", lambda d: d - datetime.timedelta(days=d.weekday())),
        ("monthly_volume", "month_start", lambda d: d.replace(day=1)),
        ("yearly_totals", "year", lambda d: d.year),
    ):
        want, got = totals(of), mart_totals(model, period)
        assert want.keys() == got.keys(), model
        for key, (count, km) in want.items():
            assert got[key][0] == count, (model, key)
            assert _close(got[key][1], km), (model, key)

    # Rides per athlete and year in ride_summary.
    rides: dict[tuple[int, int], int] = collections.Counter()
    for athlete_id, activities in loaded.expected.items():
        for activity_id, activity in activities.items():
            if activity["sport_type"] in RIDES:
                rides[(athlete_id, days[athlete_id][activity_id].year)] += 1
    years = {
        (r["athlete_id"], r["period_start"].year): r["total_rides"]
        for r in mart("ride_summary")
        if r["period_grain"] == "year"
    }
    assert years == dict(rides)

    # Gear: each athlete's distance per gear id from the simulator's gear_id.
    gear_km: dict[tuple[int, str], float] = collections.defaultdict(float)
    for athlete_id, activities in loaded.expected.items():
        for activity in activities.values():
            if activity.get("gear_id"):
                gear_km[(athlete_id, activity["gear_id"])] += _km(activity)
    gear = {(r["athlete_id"], r["gear_id"]): r for r in mart("gear_mileage")}
    assert {a for a, _ in gear_km} == set(loaded.expected), "every athlete has gear"
    for key, km in gear_km.items():
        assert _close(gear[key]["distance_km"], km), key
    for key, row in gear.items():
        if key not in gear_km:
            assert float(row["distance_km"]) == 0, key  # listed in a profile, unused

    # Personal bests: each athlete's own fastest (the archive says nothing of a trainer).
    bests = {
        (r["athlete_id"], r["sport_group"], r["distance_label"]): r for r in mart("personal_bests")
    }
    for row in bests.values():
        assert row["activity_id"] in loaded.expected[row["athlete_id"]], row
    for athlete_id, activities in loaded.expected.items():
        for group, sports, label, metres in (
            ("run", RUNS, "5K", 5000),
            ("ride", RIDES, "20K", 20000),
        ):
            times = [
                metres * a["moving_time"] / a["distance"]
                for a in activities.values()
                if a["sport_type"] in sports
                and a["distance"] >= metres
                and a["moving_time"] > 0
                and not (a["trainer"] and loaded.kinds[athlete_id] != "archive")
            ]
            key = (athlete_id, group, label)
            if times:
                assert _close(bests[key]["estimated_time_s"], min(times)), key
            else:
                assert key not in bests, key
    assert {a for a, _, _ in bests} == set(loaded.expected), "every athlete has bests"


def test_dbt_builds_over_every_source_on_postgres_after_the_previous_models(loaded, postgres_build):
    assert_built(postgres_build)
    project = loaded.project
    _check_marts(loaded, lambda model: postgres_mart(project, model))

    merged = {(r["id"], r["athlete_id"]): r for r in postgres_mart(project, "activities_all")}
    sources = collections.defaultdict(collections.Counter)
    for (_, athlete_id), row in merged.items():
        sources[loaded.kinds[athlete_id]][row["source"]] += 1
    assert set(sources["archive"]) == {"archive"}
    assert set(sources["api"]) == {"api"}
    assert sources["mixed"]["both"] == 39, "40 archived, one deleted since"
    assert sources["mixed"]["api"] == 15, "the uploads after the export"
    mixed_id = next(a for a, kind in loaded.kinds.items() if kind == "mixed")
    assert merged[(loaded.renamed, mixed_id)]["name"] == RENAMED, "the API wins"
    assert (loaded.deleted, mixed_id) not in merged, "the deletion stays deleted"
    archived = {
        r["id"]: r for r in project.rows("export_activities") if r["athlete_id"] == mixed_id
    }
    assert loaded.deleted in archived, "the archive still has the deleted activity"
    assert archived[loaded.renamed]["name"] != RENAMED
    # The archive fills what the API's list lacks.
    described = [r for r in merged.values() if r["source"] == "both" and r["description"]]
    assert described, "descriptions from the archive for API rows"
    assert any(r["has_track"] for r in merged.values() if r["source"] == "archive")
    assert any(r["has_track"] for r in merged.values() if r["source"] == "both")
    for row in merged.values():
        assert row["start_date"].utcoffset() is not None, "an instant, typed timestamptz"
        if row["source"] == "archive":
            assert row["local_time_rule"] in {"fit_local_timestamp", "start_coordinates", "utc"}
        else:
            assert row["local_time_rule"] == "api", row
    with connect(project.postgres_url) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = 'activities_all'",
                (project.analytics_schema,),
            ).fetchall()
        )
        relations = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (project.analytics_schema,),
            ).fetchall()
        }
    assert "stg_activities" not in relations, "no stale model of the previous version"
    assert {"activities_all", *MART_KEYS} <= relations
    assert types["start_date"] == "timestamp with time zone"
    assert types["start_date_local"] == "timestamp without time zone"


def test_the_report_shows_each_athletes_whole_range_and_routes_from_the_models(
    loaded, postgres_build, tmp_path
):
    """tap-strava-dashboard over the upgraded database: one page per athlete, from the marts.

    The command builds the models itself (after the upgrade above) with a session zone far
    from UTC; each athlete's page covers all their activities, from their first local day
    to their last, and a heatmap of their own routes; a privacy zone at an archive-only
    athlete's start hides points there.
    """
    assert_built(postgres_build)
    project = loaded.project
    archive_id = next(a for a, kind in loaded.kinds.items() if kind == "archive")
    outdoors = [a for a in loaded.expected[archive_id].values() if a["start_latlng"]]
    lat, lng = min(outdoors, key=lambda a: a["start_date"])["start_latlng"]
    out = tmp_path / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "strava_dashboard", "--database-url", project.postgres_url,
         "--schema", project.schema, "--analytics-schema", project.analytics_schema,
         "--out", str(out), "--no-png", "--export-archive", "",
         f"--privacy-zone={lat},{lng},300"],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PGTZ": SESSION_ZONE, "TZ": SESSION_ZONE},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rules = {
        (r["athlete_id"], r["activity_id"]): r["local_time_rule"]
        for r in postgres_mart(project, "activities_enriched")
    }
    for athlete_id, activities in loaded.expected.items():
        page = (tmp_path / f"report-{athlete_id}.html").read_text(encoding="utf-8")
        found = re.search(r'<p id="coverage">(.*?)</p>', page)
        assert found
        coverage = html.unescape(found.group(1))
        days = sorted(_expected_day(a, rules[(athlete_id, i)]) for i, a in activities.items())
        assert f"athlete {athlete_id}" in coverage
        assert f" {len(activities)} activities (" in coverage, coverage
        assert f"from {days[0]:%d %b %Y} to {days[-1]:%d %b %Y}" in coverage, coverage
        caption = re.search(r'<p class="note" id="route-sources">(.*?)</p>', page)
        assert caption, loaded.kinds[athlete_id]
        routes = int(re.search(r"([\d,]+) routes? \(", caption.group(1)).group(1).replace(",", ""))
        assert routes > 0
        assert re.search(r'id="chart-route-heatmap".*?src="data:image/png;base64,', page, re.S)
        drawn_from = set(re.findall(r'data-source="([^"]+)"', page))
        assert drawn_from, loaded.kinds[athlete_id]
        if loaded.kinds[athlete_id] == "archive":
            assert drawn_from == {"archive-track"}
            hidden = re.search(r"privacy: 1 zone, ([\d,]+) points? hidden", caption.group(1))
            assert hidden, caption.group(1)
            assert int(hidden.group(1).replace(",", "")) > 0, caption.group(1)


def _documented() -> dict[str, dict[str, str]]:
    """Model -> column -> data_type, as transform/models/*/schema.yml declare them."""
    return {
        model["name"]: {
            column["name"]: column.get("data_type", "(no data_type)")
            for column in model.get("columns") or []
        }
        for _, model in schema_doc.dbt_models()
    }


def _differences(
    documented: dict[str, dict[str, str]], built: dict[str, dict[str, str]]
) -> list[str]:
    problems = [f"{model}: built, not documented" for model in built.keys() - documented.keys()]
    problems += [f"{model}: documented, not built" for model in documented.keys() - built.keys()]
    for model in documented.keys() & built.keys():
        mine, theirs = documented[model], built[model]
        problems += [
            f"{model}.{c}: built ({theirs[c]}), not documented" for c in theirs.keys() - mine.keys()
        ]
        problems += [f"{model}.{c}: documented, not built" for c in mine.keys() - theirs.keys()]
        problems += [
            f"{model}.{c}: documented as {mine[c]}, built as {theirs[c]}"
            for c in mine.keys() & theirs.keys()
            if mine[c] != theirs[c]
        ]
    return sorted(problems)


def test_every_built_column_is_documented_with_its_postgresql_type(loaded, postgres_build):
    """docs/schema.md's analytics models (from schema.yml) are what PostgreSQL holds.

    Every model's columns and types in the built analytics schema, as
    information_schema.columns names them, equal what schema.yml declares: no column
    undocumented, none documented that is not there, no type different.
    """
    assert_built(postgres_build)
    with connect(loaded.project.postgres_url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (loaded.project.analytics_schema,),
        ).fetchall()
    built: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for table, column, data_type in rows:
        built[table][column] = data_type
    problems = _differences(_documented(), built)
    assert not problems, (
        "transform/models/*/schema.yml differs from the built analytics schema (fix the "
        "schema.yml, then run `make schema-doc`):\n  " + "\n  ".join(problems)
    )


#: docs/schema.md's PostgreSQL types by the names DuckDB's information_schema gives them.
DUCKDB_NAMES = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "double precision": "DOUBLE",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "timestamp without time zone": "TIMESTAMP",
}


def test_the_duckdb_build_has_the_documented_columns(loaded, duckdb_file, duckdb_build):
    """What the page says of DuckDB: the same columns, the same types by DuckDB's names."""
    import duckdb

    assert_built(duckdb_build)
    with duckdb.connect(str(duckdb_file), read_only=True) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_catalog = ? AND table_schema = ? ORDER BY table_name, ordinal_position",
            [duckdb_file.stem, loaded.project.analytics_schema],
        ).fetchall()
    built: dict[str, dict[str, str]] = collections.defaultdict(dict)
    for table, column, data_type in rows:
        built[table][column] = data_type
    documented = {
        model: {name: DUCKDB_NAMES.get(kind, kind) for name, kind in columns.items()}
        for model, columns in _documented().items()
    }
    problems = _differences(documented, built)
    assert not problems, "the DuckDB build differs from schema.yml:\n  " + "\n  ".join(problems)


def test_dbt_builds_the_same_marts_on_duckdb(loaded, postgres_build, duckdb_file, duckdb_build):
    assert_built(duckdb_build)
    _check_marts(loaded, lambda model: duckdb_mart(loaded.project, duckdb_file, model))
    assert_built(postgres_build)
    for model, key in MART_KEYS.items():
        pg_rows = {tuple(r[k] for k in key): r for r in postgres_mart(loaded.project, model)}
        duck_rows = {
            tuple(r[k] for k in key): r for r in duckdb_mart(loaded.project, duckdb_file, model)
        }
        assert pg_rows.keys() == duck_rows.keys(), model
        for k, pg_row in pg_rows.items():
            for column, value in pg_row.items():
                other = duck_rows[k][column]
                if isinstance(value, (float, int, decimal.Decimal)) and not isinstance(value, bool):
                    assert _close(value, other), (model, k, column)
                else:
                    assert value == other, (model, k, column, value, other)


def test_the_merged_view_agrees_with_the_model(loaded, postgres_build):
    """strava-merged-view (for users without dbt) and activities_all: the same rows."""
    assert_built(postgres_build)
    project = loaded.project
    view_run = project.meltano("invoke", "strava-data:merged-view")
    assert view_run.returncode == 0, view_run.stderr[-2000:]
    view = {(r["id"], r["athlete_id"]): r for r in project.rows("activities_merged")}
    model = {(r["id"], r["athlete_id"]): r for r in postgres_mart(project, "activities_all")}
    assert view.keys() == model.keys()
    assert len(view) == sum(len(a) for a in loaded.expected.values())
    for key, row in view.items():
        mine = model[key]
        for column in ("name", "sport_type", "source", "description", "commute", "has_track"):
            assert row[column] == mine[column], (key, column, row[column], mine[column])
        for column in ("distance", "moving_time", "elapsed_time", "average_speed", "calories"):
            assert _close(row[column], mine[column], rel=1e-9), (key, column)
        # The view's naive UTC, the model's instant.
        assert row["start_date"].replace(tzinfo=datetime.UTC) == mine["start_date"], key


# -- the local-time rules on hand-made tables ---------------------------------------------

HAND_MADE = [
    # Athlete 1: API rows in Europe/Paris, and archive rows older than the API history.
    "CREATE TABLE {s}.activities (id bigint, athlete_id bigint, name text, sport_type text,"
    " type text, start_date timestamp, start_date_local timestamp, timezone text,"
    " distance numeric, moving_time bigint, elapsed_time bigint, total_elevation_gain numeric,"
    " gear_id text, trainer boolean, commute boolean, manual boolean, private boolean,"
    " _sdc_deleted_at timestamp)",
    "INSERT INTO {s}.activities VALUES (10, 1, 'API', 'Run', 'Run', '2026-06-01 20:30',"
    " '2026-06-01 22:30', '(GMT+01:00) Europe/Paris', 10000, 3000, 3100, 5, NULL, false,"
    " false, false, false, NULL)",
    # Athlete 2 has an API row in a zone the database does not know: no zone for them.
    "INSERT INTO {s}.activities VALUES (20, 2, 'Odd zone', 'Ride', 'Ride', '2026-06-01 20:30',"
    " '2026-06-01 21:30', '(GMT+01:00) Mars/Olympus_Mons', 30000, 3600, 3600, 50, 'b7',"
    " true, false, false, false, NULL)",
    # The archive stream as the next version writes it: its own local time and rule.
    "CREATE TABLE {s}.export_activities (id bigint, athlete_id bigint, name text,"
    " sport_type text, start_date timestamp, distance numeric, moving_time bigint,"
    " elapsed_time bigint, commute boolean, bike text, gear text, gear_name text,"
    " from_upload boolean, start_date_local timestamp, start_date_local_rule text)",
    # 23:30 UTC on a Sunday: Monday 01:30 in Paris (summer), Monday 11:30 in Auckland.
    "INSERT INTO {s}.export_activities VALUES"
    " (11, 1, 'Archive, zone of the athlete', 'Run', '2026-05-31 23:30', 5000, 1500, 1500,"
    " false, NULL, '4.0', 'Shoes', true, NULL, NULL),"
    " (12, 1, 'Archive, FIT local time', 'Run', '2026-05-31 23:30', 5000, 1500, 1500,"
    " false, '7.0', NULL, 'Bike', false, '2026-05-31 18:30', 'fit_local_timestamp'),"
    " (21, 2, 'Archive, no zone known', 'Walk', '2026-05-31 23:30', 2000, 1200, 1200, false,"
    " NULL, NULL, NULL, true, NULL, NULL),"
    " (31, 3, 'Archive only', 'Hike', '2026-05-31 23:30', 8000, 7200, 7200, true,"
    " NULL, NULL, NULL, true, NULL, NULL)",
]


@pytest.fixture(scope="module")
def hand_made(postgres_url, tmp_path_factory) -> t.Iterator[MeltanoProject]:
    """Tables as the loaders write them; no athlete, details, tracks or deletions table."""
    with StravaSimulator(seed=64, activity_count=1) as sim:
        project = MeltanoProject(
            sim=sim,
            postgres_url=postgres_url,
            workdir=tmp_path_factory.mktemp("hand-made"),
            refresh_token="",
            schema=f"hand_{uuid.uuid4().hex[:10]}",
        )
        with connect(postgres_url) as conn:
            conn.execute(f'CREATE SCHEMA "{project.schema}"')
            for statement in HAND_MADE:
                conn.execute(statement.format(s=f'"{project.schema}"'))
        try:
            yield project
        finally:
            project.drop_schema()
            with connect(postgres_url) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{project.analytics_schema}" CASCADE')


@pytest.mark.parametrize("database", ["postgres", "duckdb"])
def test_each_archive_row_gets_local_time_by_the_stated_rule(hand_made, database):
    if database == "postgres":
        build = hand_made.dbt("build", PGTZ=SESSION_ZONE)

        def mart(model: str) -> list[dict[str, t.Any]]:
            return postgres_mart(hand_made, model)

    else:
        path = hand_made.workdir / "strava.duckdb"
        copy_to_duckdb(hand_made, path, tables=["activities", "export_activities"])
        build = hand_made.dbt(
            "build", "--target", "duckdb", TARGET_DUCKDB_FILEPATH=str(path), TZ=SESSION_ZONE
        )

        def mart(model: str) -> list[dict[str, t.Any]]:
            return duckdb_mart(hand_made, path, model)

    assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
    assert re.search(r"ERROR=0 SKIP=0", build.stdout), build.stdout[-3000:]
    rows = {r["activity_id"]: r for r in mart("activities_enriched")}
    rules = {k: (r["local_time_rule"], r["local_date"], r["week_start"]) for k, r in rows.items()}
    monday = datetime.date(2026, 6, 1)
    sunday = datetime.date(2026, 5, 31)
    assert rules == {
        10: ("api", monday, monday),
        11: ("athlete_timezone", monday, monday),  # 01:30 in Paris
        12: ("fit_local_timestamp", sunday, datetime.date(2026, 5, 25)),
        20: ("api", monday, monday),
        21: ("utc", sunday, datetime.date(2026, 5, 25)),  # the zone is unknown: UTC
        31: ("utc", sunday, datetime.date(2026, 5, 25)),
    }
    assert rows[11]["start_date_local"] == datetime.datetime(2026, 6, 1, 1, 30)
    assert rows[11]["start_date"] == datetime.datetime(2026, 5, 31, 23, 30, tzinfo=datetime.UTC)
    # Gear ids from the archive's Bike/Gear numbers; manual from "From Upload".
    assert (rows[11]["gear_id"], rows[12]["gear_id"]) == ("g4", "b7")
    assert (rows[11]["manual"], rows[12]["manual"]) == (False, True)
    assert rows[20]["ride_bucket"] == "indoor"
    gear = {(r["athlete_id"], r["gear_id"]): r for r in mart("gear_mileage")}
    assert gear[(1, "g4")]["gear_name"] == "Shoes"
    assert gear[(2, "b7")]["gear_kind"] == "bike"
