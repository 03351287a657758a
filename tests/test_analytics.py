"""Analytics: the dbt models on PostgreSQL and DuckDB, and the training dashboard.

One simulated account is loaded once (`meltano run tap-strava target-postgres`); dbt
builds and tests the models on it through the Meltano transformer, the same raw rows are
copied into a DuckDB file laid out like target-duckdb's (JSON for nested values, catalog
"strava" holding schema "strava") where dbt builds them again, and the two databases
must agree with each other and with sums computed here from the simulator's JSON.
The dashboard is rendered from both and looked at in a real headless Chromium.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import html
import json
import math
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from devtools import browser
from devtools.postgres import connect
from strava_simulator import StravaSimulator
from tests.pipeline import MeltanoProject

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.extras

RIDES = {
    "Ride",
    "MountainBikeRide",
    "GravelRide",
    "EBikeRide",
    "EMountainBikeRide",
    "VirtualRide",
    "Velomobile",
    "Handcycle",
}
RUNS = {"Run", "TrailRun", "VirtualRun"}
MARTS = {
    "activities_enriched": ("athlete_id", "activity_id"),
    "weekly_volume": ("athlete_id", "week_start", "sport_type"),
    "monthly_volume": ("athlete_id", "month_start", "sport_type"),
    "gear_mileage": ("athlete_id", "gear_id"),
    "personal_bests": ("athlete_id", "sport_group", "distance_label"),
    "yearly_totals": ("athlete_id", "year", "sport_type"),
    "ride_summary": ("athlete_id", "period_grain", "period_start"),
}
DUCKDB_TYPES = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "numeric": "DOUBLE",
    "double precision": "DOUBLE",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMPTZ",
    "date": "DATE",
    "jsonb": "JSON",
    "json": "JSON",
    "ARRAY": "JSON",
}


@pytest.fixture(scope="module")
def loaded(postgres_url, tmp_path_factory):
    """A simulated account in Postgres, the dbt models built on it (once per module)."""
    with StravaSimulator(seed=11, activity_count=200) as sim:
        project = MeltanoProject(
            sim=sim,
            postgres_url=postgres_url,
            workdir=tmp_path_factory.mktemp("analytics"),
            refresh_token=sim.refresh_token,
        )
        # A road bike on the turbo trainer: indoor by its `trainer` flag, not its type.
        ride = next(a for a in sim.activities if a["sport_type"] == "Ride")
        sim.update_activity(ride["id"], trainer=True)
        try:
            project.run("tap-strava", "target-postgres")
            yield project
        finally:
            project.drop_schema()
            with connect(postgres_url) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{project.analytics_schema}" CASCADE')


@pytest.fixture(scope="module")
def postgres_build(loaded):
    return loaded.dbt("build")


@pytest.fixture(scope="module")
def duckdb_file(loaded):
    """The raw tables copied into a DuckDB file as target-duckdb lays them out."""
    path = loaded.workdir / "strava.duckdb"
    copy_to_duckdb(loaded, path)
    return path


@pytest.fixture(scope="module")
def duckdb_build(loaded, duckdb_file):
    return loaded.dbt("build", "--target", "duckdb", TARGET_DUCKDB_FILEPATH=str(duckdb_file))


def copy_to_duckdb(
    project: MeltanoProject,
    path: Path,
    tables: t.Sequence[str] = ("activities", "athlete", "athlete_stats"),
) -> None:
    """Copy raw tables of the project's schema into ``path``, typed as target-duckdb types them."""
    import duckdb

    def plain(value: t.Any) -> t.Any:
        return float(value) if isinstance(value, decimal.Decimal) else str(value)

    catalog = path.stem
    with connect(project.postgres_url) as pg, duckdb.connect(str(path)) as duck:
        duck.execute(f'CREATE SCHEMA "{catalog}"."strava"')
        for table in tables:
            columns = pg.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (project.schema, table),
            ).fetchall()
            kinds = [DUCKDB_TYPES[kind] for _, kind in columns]
            names = ", ".join(
                f'"{name}" {kind}' for (name, _), kind in zip(columns, kinds, strict=True)
            )
            duck.execute(f'CREATE TABLE "{catalog}"."strava"."{table}" ({names})')
            rows = []
            for row in pg.execute(f'SELECT * FROM "{project.schema}"."{table}"').fetchall():
                rows.append(
                    [
                        json.dumps(v, default=plain)
                        if kind == "JSON" and v is not None
                        else plain(v)
                        if isinstance(v, decimal.Decimal)
                        else v
                        for v, kind in zip(row, kinds, strict=True)
                    ]
                )
            marks = ", ".join("?" for _ in columns)
            if rows:
                duck.executemany(
                    f'INSERT INTO "{catalog}"."strava"."{table}" VALUES ({marks})', rows
                )


def postgres_mart(project: MeltanoProject, model: str) -> list[dict[str, t.Any]]:
    with connect(project.postgres_url) as conn, conn.cursor() as cur:
        cur.execute(f'SELECT * FROM "{project.analytics_schema}"."{model}"')
        columns = [c.name for c in cur.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def duckdb_mart(project: MeltanoProject, path: Path, model: str) -> list[dict[str, t.Any]]:
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        result = conn.execute(f'SELECT * FROM "{path.stem}"."{project.analytics_schema}"."{model}"')
        columns = [c[0] for c in result.description or []]
        return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]


def assert_built(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    done = re.search(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)", proc.stdout)
    assert done, proc.stdout[-3000:]
    passed, warned, errors, skipped = map(int, done.groups())
    assert (warned, errors, skipped) == (0, 0, 0), proc.stdout[-3000:]
    # 1 view, 8 tables (the merged model, 7 marts), and the data tests on keys and columns.
    assert passed >= 60, passed


def local_day(activity: dict[str, t.Any]) -> datetime.date:
    return datetime.date.fromisoformat(activity["start_date_local"][:10])


def close(a: t.Any, b: t.Any) -> bool:
    if isinstance(a, (float, decimal.Decimal)) or isinstance(b, (float, decimal.Decimal)):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-6)
    return a == b


# -- dbt ---------------------------------------------------------------------------------


def test_dbt_builds_and_tests_the_models_on_postgres(loaded, postgres_build):
    assert_built(postgres_build)
    activities = loaded.sim.activities
    enriched = {r["activity_id"]: r for r in postgres_mart(loaded, "activities_enriched")}
    assert set(enriched) == {a["id"] for a in activities}
    assert {r["athlete_id"] for r in enriched.values()} == {loaded.sim.athlete_id}

    for activity in activities:
        row = enriched[activity["id"]]
        km = activity["distance"] / 1000
        assert close(row["distance_km"], km)
        assert close(row["distance_mi"], activity["distance"] / 1609.344)
        day = local_day(activity)
        assert row["local_date"] == day
        assert (row["iso_year"], row["iso_week"]) == tuple(day.isocalendar())[:2]
        assert row["week_start"] == day - datetime.timedelta(days=day.weekday())
        if activity["distance"] > 0 and activity["moving_time"] > 0:
            pace = activity["moving_time"] / 60 / km
            assert close(row["pace_min_per_km"], pace)
            assert close(row["pace_min_per_mile"], pace * 1.609344)
            assert close(row["average_speed_kmh"], 60 / pace)
        else:
            assert row["pace_min_per_km"] is None


def test_ride_summary_splits_indoor_and_outdoor_like_the_original(loaded, postgres_build):
    assert_built(postgres_build)
    expected: dict[tuple[int, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for a in loaded.sim.activities:
        if a["sport_type"] not in RIDES:
            continue
        indoor = a["trainer"] or "VirtualRide" in (a["sport_type"], a["type"])
        bucket = expected[(local_day(a).year, "indoor" if indoor else "outdoor")]
        bucket[0] += 1
        bucket[1] += a["distance"] / 1000
    assert {b for _, b in expected} == {"indoor", "outdoor"}, "the account needs both kinds"
    trainer_ride = next(
        a for a in loaded.sim.activities if a["sport_type"] == "Ride" and a["trainer"]
    )
    (row,) = [
        r
        for r in postgres_mart(loaded, "activities_enriched")
        if r["activity_id"] == trainer_ride["id"]
    ]
    assert row["ride_bucket"] == "indoor"

    years = [r for r in postgres_mart(loaded, "ride_summary") if r["period_grain"] == "year"]
    assert {r["period_start"].year for r in years} == {y for y, _ in expected}
    for row in years:
        year = row["period_start"].year
        for bucket in ("outdoor", "indoor"):
            rides, km = expected.get((year, bucket), [0, 0.0])
            assert row[f"{bucket}_rides"] == rides, (year, bucket)
            assert close(row[f"{bucket}_km"], km), (year, bucket)
        assert row["total_rides"] == row["outdoor_rides"] + row["indoor_rides"]


def test_gear_bests_and_yearly_totals_match_the_source(loaded, postgres_build):
    assert_built(postgres_build)
    activities = loaded.sim.activities

    km_per_gear: dict[str, float] = collections.defaultdict(float)
    for a in activities:
        if a.get("gear_id"):
            km_per_gear[a["gear_id"]] += a["distance"] / 1000
    gear = {r["gear_id"]: r for r in postgres_mart(loaded, "gear_mileage")}
    assert km_per_gear, "the account needs gear"
    for gear_id, km in km_per_gear.items():
        assert close(gear[gear_id]["distance_km"], km)
    profile = loaded.sim.athlete["bikes"] + loaded.sim.athlete["shoes"]
    for item in profile:
        assert gear[item["id"]]["gear_name"] == item["name"]
        assert close(gear[item["id"]]["strava_distance_km"], item["distance"] / 1000)

    runs = [
        a
        for a in activities
        if a["sport_type"] in RUNS
        and not a["trainer"]
        and a["distance"] >= 5000
        and a["moving_time"] > 0
    ]
    best = min(5000 * a["moving_time"] / a["distance"] for a in runs)
    bests = {
        (r["sport_group"], r["distance_label"]): r for r in postgres_mart(loaded, "personal_bests")
    }
    assert close(bests[("run", "5K")]["estimated_time_s"], best)

    per_year: dict[int, float] = collections.defaultdict(float)
    for a in activities:
        per_year[local_day(a).year] += a["distance"] / 1000
    totals = {(r["year"], r["sport_type"]): r for r in postgres_mart(loaded, "yearly_totals")}
    for year, km in per_year.items():
        row = totals[(year, "All")]
        assert close(row["distance_km"], km)
        if year - 1 in per_year:
            assert close(row["previous_year_distance_km"], per_year[year - 1])


def test_dbt_builds_the_same_models_on_duckdb(loaded, postgres_build, duckdb_file, duckdb_build):
    assert_built(postgres_build)
    assert_built(duckdb_build)
    for model, key in MARTS.items():
        pg_rows = {tuple(r[k] for k in key): r for r in postgres_mart(loaded, model)}
        duck_rows = {tuple(r[k] for k in key): r for r in duckdb_mart(loaded, duckdb_file, model)}
        assert pg_rows.keys() == duck_rows.keys(), model
        assert pg_rows, model
        for k, pg_row in pg_rows.items():
            duck_row = duck_rows[k]
            assert pg_row.keys() == duck_row.keys(), model
            for column, value in pg_row.items():
                other = duck_row[column]
                if isinstance(value, datetime.datetime) and (value.tzinfo is None) != (
                    other.tzinfo is None
                ):
                    value, other = value.replace(tzinfo=None), other.replace(tzinfo=None)
                assert close(value, other), (model, k, column, value, other)


# -- dashboard ---------------------------------------------------------------------------

LAYOUT_PROBE = """
<script>
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("figure[id^=chart-] img")].map((img) => {
    const box = img.getBoundingClientRect();
    return {id: img.parentElement.id, x: box.left + scrollX, y: box.top + scrollY,
            w: box.width, h: box.height, decoded: img.complete && img.naturalWidth > 0};
  });
  const out = document.createElement("pre");
  out.id = "layout-probe";
  out.textContent = JSON.stringify(charts);
  document.body.appendChild(out);
});
</script>
"""
CHART_IDS = {
    "chart-weekly-distance",
    "chart-calendar-heatmap",
    "chart-pace-trend",
    "chart-elevation",
    "chart-gear-mileage",
    # The routes' heatmap: this API-only account's summary polylines.
    "chart-route-heatmap",
}
#: The recent routes' small maps (tests/test_dashboard_routes.py looks at them closely).
ROUTE_MAP = '<figure class="route" id="route-'


def render(url: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "strava_dashboard", "--database-url", url, "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def report(loaded, tmp_path_factory):
    out = tmp_path_factory.mktemp("dashboard") / "report.html"
    proc = render(
        loaded.postgres_url,
        out,
        "--schema",
        loaded.schema,
        "--analytics-schema",
        loaded.analytics_schema,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_the_report_is_self_contained_with_a_png_per_chart(loaded, report):
    page = report.read_text(encoding="utf-8")
    # Nothing fetched from anywhere: no script, stylesheet, font or image by URL.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert set(re.findall(r'<figure id="([^"]+)"', page)) == CHART_IDS
    maps = page.count(ROUTE_MAP)
    assert maps == 12
    assert page.count('src="data:image/png;base64,') == len(CHART_IDS) + maps

    pngs = sorted((report.parent / "report-charts").glob("*.png"))
    assert {p.stem for p in pngs} == {c.removeprefix("chart-") for c in CHART_IDS}
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n"), png
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 600, (png, width)
        assert height >= 150, (png, height)
        assert f'href="report-charts/{png.name}"' in page

    # The newest activities, names escaped (the simulator's names carry quotes and <>&).
    newest = sorted(loaded.sim.activities, key=lambda a: a["start_date"])[-15:]
    for activity in newest:
        assert html.escape(activity["name"]) in page, activity["name"]


def _sport_colours(page: str) -> dict[str, set[str]]:
    """Sport type -> the colours the recent activities table gives it."""
    found = re.findall(r'<span class="sport" style="background:(#\w+)"></span>([^<(]+)', page)
    colours: dict[str, set[str]] = {}
    for colour, sport in found:
        colours.setdefault(sport.strip(), set()).add(colour)
    return colours


def test_the_report_draws_the_models_definitions_not_its_own(duckdb_file, tmp_path):
    """One definition: change the models' sport groups and the report follows them."""
    import shutil

    from strava_dashboard.charts import GROUP_COLOURS

    database = tmp_path / "strava.duckdb"
    shutil.copy(duckdb_file, database)
    project = tmp_path / "transform"
    shutil.copytree(ROOT / "transform", project, ignore=shutil.ignore_patterns("target", "logs"))
    macros = project / "macros" / "sport_groups.sql"
    runs = "in ('Run', 'TrailRun', 'VirtualRun') then 'run'"
    assert runs in macros.read_text()
    pages = {}
    for name in ("as shipped", "runs as swims"):
        if name == "runs as swims":
            macros.write_text(macros.read_text().replace(runs, runs.replace("'run'", "'swim'")))
        out = tmp_path / f"{name.replace(' ', '-')}.html"
        proc = render(
            f"duckdb:///{database}", out, "--no-png", "--no-maps", "--dbt-project-dir", str(project)
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        pages[name] = _sport_colours(out.read_text(encoding="utf-8"))
    assert pages["as shipped"]["Run"] == {GROUP_COLOURS["Run"]}
    assert pages["runs as swims"]["Run"] == {GROUP_COLOURS["Swim"]}
    assert pages["runs as swims"]["Ride"] == pages["as shipped"]["Ride"] == {GROUP_COLOURS["Ride"]}


def test_the_report_renders_from_duckdb_and_from_an_empty_database(duckdb_file, tmp_path):
    out = tmp_path / "duck.html"
    proc = render(f"duckdb:///{duckdb_file}", out, "--no-png")
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == len(CHART_IDS) + page.count(ROUTE_MAP)
    assert not (tmp_path / "duck-charts").exists()

    import duckdb

    # The loader's tables without a row: what a first run that found nothing leaves.
    empty = tmp_path / "empty.duckdb"
    with duckdb.connect(str(empty)) as conn:
        conn.execute(f"ATTACH '{duckdb_file}' AS loaded (READ_ONLY)")
        conn.execute("CREATE SCHEMA strava")
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_catalog = 'loaded' AND table_schema = 'strava'"
        ).fetchall()
        for (table,) in tables:
            conn.execute(
                f'CREATE TABLE strava."{table}" AS SELECT * FROM loaded.strava."{table}" LIMIT 0'
            )
    proc = render(f"duckdb:///{empty}", tmp_path / "empty.html", "--today", "2026-11-28")
    assert proc.returncode == 0, proc.stderr[-3000:]
    empty_page = (tmp_path / "empty.html").read_text(encoding="utf-8")
    assert "No activities loaded yet." in empty_page
    assert "No routes loaded" in empty_page

    # Tables no loader writes (no athlete_id): the models cannot build, and the command
    # says which model failed and why in one line.
    broken = tmp_path / "broken.duckdb"
    with duckdb.connect(str(broken)) as conn:
        conn.execute("CREATE SCHEMA strava")
        conn.execute("CREATE TABLE strava.activities (id BIGINT, name VARCHAR)")
        conn.execute("CREATE TABLE strava.athlete (bikes JSON, shoes JSON)")
    proc = render(f"duckdb:///{broken}", tmp_path / "broken.html")
    assert proc.returncode == 1
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("tap-strava-dashboard: error: dbt build of the models failed ("), line
    assert "stg_gear" in line
    assert 'column "athlete_id" not found' in line
    assert line.endswith("dbt.log")

    proc = render(f"duckdb:///{empty}", tmp_path / "x.html", "--dbt-project-dir", str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"tap-strava-dashboard: error: no dbt project at {tmp_path}: run from the Meltano "
        "project (its transform/ folder) or pass --dbt-project-dir"
    )

    proc = render(f"duckdb:///{tmp_path / 'missing.duckdb'}", tmp_path / "x.html")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("tap-strava-dashboard: error: cannot read the tables")


def test_chromium_draws_every_chart(report, tmp_path):
    from matplotlib.image import imread

    probe = tmp_path / "probe.html"
    probe.write_text(
        report.read_text(encoding="utf-8").replace("</body>", LAYOUT_PROBE + "</body>"),
        encoding="utf-8",
    )
    dom = browser.dump_dom(probe)
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    charts = {c["id"]: c for c in json.loads(found.group(1).replace("&quot;", '"'))}
    assert set(charts) == CHART_IDS
    assert all(c["decoded"] for c in charts.values()), charts

    # Tall enough for the routes' heatmap under the charts.
    shot = browser.screenshot(probe, tmp_path / "shot.png", 1400, 4200)
    pixels = imread(str(shot))[:, :, :3]
    height, width = pixels.shape[:2]
    for chart_id, box in charts.items():
        x0, y0 = int(box["x"]), int(box["y"])
        x1, y1 = int(box["x"] + box["w"]), int(box["y"] + box["h"])
        assert box["w"] > 300, (chart_id, box)
        assert box["h"] > 100, (chart_id, box)
        assert x1 <= width, (chart_id, box)
        assert y1 <= height, f"{chart_id} is below the screenshot: {box}"
        region = pixels[y0:y1, x0:x1].reshape(-1, 3)
        if chart_id == "chart-route-heatmap":
            # Thin lines on a dark ground (few colours): tests/test_dashboard_routes.py
            # checks its pixels; here, that the routes are drawn in it at all.
            warm = ((region[:, 0] > 0.6) & (region[:, 2] < 0.5)).mean()
            assert warm > 0.001, (chart_id, warm)
            continue
        ink = (region.min(axis=1) < 0.85).mean()  # neither white nor near-white
        colours = len({tuple(p) for p in (region * 255).astype(int)[::7].tolist()})
        assert ink > 0.03, (chart_id, ink)
        assert colours > 25, (chart_id, colours)
        # The colour of some sport is there: data drawn, not only axes and labels.
        strong = ((region.max(axis=1) - region.min(axis=1)) > 0.35).mean()
        assert strong > 0.01, (chart_id, strong)
