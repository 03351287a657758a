"""Routes on a map: per-athlete reports, the three track sources, privacy zones, offline.

Three simulated athletes share one PostgreSQL schema, each loaded the way the pipeline
loads them (the tap's output piped into the project's target-postgres): an archive-only
athlete (export archive with 600-second tracks), an API-only athlete without streams
(routes from the list's summary polylines) and a mixed athlete (the same athlete's
archive, and the API with streams for some activities). Privacy is checked on the data
(no point within a zone's radius, no segment through it) and on the pixels (the zone's
circle is background in every drawn picture), and the page in a headless Chromium with
name resolution blocked.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

import pytest

# The dashboard extra (numpy, Pillow, matplotlib): `make test`'s environment has none of
# it, and these tests are extras; without it the module is skipped, not an import error.
np = pytest.importorskip("numpy")
pytest.importorskip("PIL")

from devtools import browser  # noqa: E402
from devtools.postgres import connect  # noqa: E402
from strava_dashboard import data, heatmap, privacy, routes, tracks  # noqa: E402
from strava_dashboard.models import build  # noqa: E402
from strava_simulator import StravaSimulator  # noqa: E402
from strava_simulator.archive import write_archive  # noqa: E402
from tests.conftest import tap_config_for  # noqa: E402
from tests.export_fixtures import write_archive as write_test_archive  # noqa: E402
from tests.support import load_into_postgres, run_tap  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.extras

TARGET = (
    Path(__file__).resolve().parents[1]
    / ".meltano/loaders/target-postgres/venv/bin/target-postgres"
)
EARTH_M = 6_371_008.8
ACTIVITIES = 30
STREAMS = 10


# -- an independent geometry for the checks ----------------------------------------------


def metres_between(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Spherical law of cosines (not the haversine the code uses)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(
        math.radians(lon2 - lon1)
    )
    return EARTH_M * math.acos(max(-1.0, min(1.0, cos)))


def along(a: t.Sequence[float], b: t.Sequence[float], steps: int = 40) -> list[tuple[float, float]]:
    """Points of the straight line a-b as drawn: straight on the Web-Mercator plane."""

    def merc(lat: float, lon: float) -> tuple[float, float]:
        return lon, math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    def back(x: float, y: float) -> tuple[float, float]:
        return math.degrees(2 * math.atan(math.exp(y)) - math.pi / 2), x

    (ax, ay), (bx, by) = merc(*a), merc(*b)
    return [back(ax + (bx - ax) * k / steps, ay + (by - ay) * k / steps) for k in range(steps + 1)]


def assert_outside(parts: list[np.ndarray], zones: t.Sequence[privacy.Zone]) -> None:
    """No kept point, and no point of any drawn segment, within a zone's radius."""
    for part in parts:
        for zone in zones:
            for lat, lon in part:
                assert metres_between(lat, lon, zone.lat, zone.lon) > zone.radius_m
            for a, b in itertools.pairwise(part):
                for lat, lon in along(a, b):
                    assert metres_between(lat, lon, zone.lat, zone.lon) > zone.radius_m


def zone_pixels(frame: heatmap.Frame, zone: privacy.Zone, margin: float) -> np.ndarray:
    """A mask of the picture's pixels inside the zone's circle, ``margin`` px inside."""
    x, y = privacy.mercator(np.array([zone.lat]), np.array([zone.lon]))
    (cx, cy) = frame.pixels(np.array([[x[0], y[0]]]))[0]
    world_m = 2 * math.pi * EARTH_M * math.cos(math.radians(zone.lat))
    radius = zone.radius_m / world_m * frame.scale - margin
    ys, xs = np.mgrid[0 : frame.height, 0 : frame.width]
    return (xs + 0.5 - cx) ** 2 + (ys + 0.5 - cy) ** 2 < max(radius, 0) ** 2


def picture(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


# -- zones: the setting and the archive's file -------------------------------------------


def test_zones_from_the_setting_and_from_privacy_zones_csv(tmp_path):
    assert privacy.parse_setting("52.37,4.89,500; -33.9,18.4,250.5") == [
        privacy.Zone(52.37, 4.89, 500.0, "privacy zone 52.37,4.89,500"),
        privacy.Zone(-33.9, 18.4, 250.5, "privacy zone -33.9,18.4,250.5"),
    ]
    for bad, why in (
        ("52.37,4.89", "not LAT,LON,RADIUS_M"),
        ("95,4.89,200", "not a latitude,longitude"),
        ("52,4,-5", "positive number of metres"),
    ):
        with pytest.raises(privacy.ZoneError, match=why):
            privacy.parse_setting(bad)

    rows = [
        ["Address", "Radius", "Latitude & Longitude"],
        ["Home, Street 1, Amsterdam", "0.40 kilometers", "52.3702, 4.8952"],
        ["Work", "200 m", "[52.3600,4.9000]"],
        ["Club", "0.25 miles", "52.31 4.91"],
        ["Gym", "500", "52.30, 4.92"],
        ["", "", ""],
    ]
    zones = privacy.parse_zone_rows(rows)
    assert [(z.lat, z.lon, round(z.radius_m, 3)) for z in zones] == [
        (52.3702, 4.8952, 400.0),
        (52.36, 4.9, 200.0),
        (52.31, 4.91, 402.336),
        (52.30, 4.92, 500.0),
    ]
    assert zones[0].origin == "privacy_zones.csv row 2"
    # An older export: the address only. Never skipped: the error names the fix.
    with pytest.raises(privacy.ZoneError, match=r"row 2 has no coordinates.*--privacy-zone"):
        privacy.parse_zone_rows([["Address", "Radius"], ["Home", "0.40 kilometers"]])
    with pytest.raises(privacy.ZoneError, match="has no unit"):
        privacy.parse_zone_rows([rows[0], ["Home", "0.4", "52.37, 4.89"]])
    with pytest.raises(privacy.ZoneError, match="unknown radius unit"):
        privacy.parse_zone_rows([rows[0], ["Home", "3 furlongs", "52.37, 4.89"]])

    # From an archive (zip, one folder deep), as the report reads it; none without the file.
    zones_csv = 'Address,Radius,Latitude & Longitude\n"Home, 1",0.40 kilometers,"52.0, 4.0"\n'
    archive = write_test_archive(
        tmp_path / "export_4242.zip",
        [],
        extra_members={"privacy_zones.csv": zones_csv.encode()},
        prefix="Strava Export/",
    )
    (zone,) = privacy.read_archive_zones(archive)
    assert (zone.lat, zone.lon, zone.radius_m) == (52.0, 4.0, 400.0)
    assert privacy.read_archive_zones(write_test_archive(tmp_path / "export_1.zip", [])) == []
    with pytest.raises(privacy.ZoneError, match="cannot read the privacy zones"):
        privacy.read_archive_zones(tmp_path / "missing.zip")


# -- hiding on synthetic tracks: the data and the pixels ----------------------------------


def _line(lat0: float, lon0: float, lat1: float, lon1: float, n: int) -> np.ndarray:
    return np.column_stack((np.linspace(lat0, lat1, n), np.linspace(lon0, lon1, n)))


def test_hiding_drops_every_point_in_a_zone_and_cuts_every_segment_through_it():
    zone = privacy.Zone(52.0, 4.0, 500.0, "test")
    # Dense, straight through the centre: two parts remain, none of them near the centre.
    dense = _line(51.98, 4.0, 52.02, 4.0, 400)
    parts = privacy.hide(dense, [zone])
    assert len(parts) == 2
    assert sum(len(p) for p in parts) < len(dense)
    assert_outside(parts, [zone])
    assert privacy.hidden_count(dense, [zone]) == len(dense) - sum(len(p) for p in parts)
    # Sparse (a summary polyline): both points far outside, the segment through the zone.
    assert privacy.hide(_line(51.99, 3.99, 52.01, 4.01, 2), [zone]) == []
    # Beside the zone (700 m east of the centre): untouched.
    beside = _line(51.99, 4.0103, 52.01, 4.0103, 50)
    (kept,) = privacy.hide(beside, [zone])
    assert np.array_equal(kept, beside)
    # Starting inside (home): the first points go, the rest stays one line.
    home = _line(52.0, 4.0, 52.0, 4.05, 300)
    (rest,) = privacy.hide(home, [zone])
    assert metres_between(*rest[0], 52.0, 4.0) > 500
    assert_outside([rest], [zone])


def test_the_heatmap_and_a_route_map_leave_the_zone_background():
    zone = privacy.Zone(52.0, 4.0, 800.0, "test")
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(60):  # tracks crossing the area in every direction, many through the zone
        a, b = rng.uniform(-0.03, 0.03, 2), rng.uniform(-0.03, 0.03, 2)
        lines.append(_line(52.0 + a[0], 4.0 + a[1] * 1.6, 52.0 + b[0], 4.0 + b[1] * 1.6, 200))
    lines.append(_line(51.97, 3.95, 52.03, 4.05, 2))  # a sparse one through the centre

    def draw(zones: list[privacy.Zone]) -> tuple[np.ndarray, np.ndarray, heatmap.Frame]:
        visible = [routes.to_world(privacy.hide(line, zones)) for line in lines]
        visible = [v for v in visible if v]
        box = heatmap.bounds_of([routes.to_world([line]) for line in lines])
        assert box is not None
        frame = heatmap.frame_for(box, 600, 400)
        heat = picture(heatmap.heatmap_png(visible, frame, routes.HEAT_LINE))
        route = picture(heatmap.route_png(visible[0] + visible[-1], frame, "#2563eb", 2))
        return heat, route, frame

    heat, route, frame = draw([zone])
    inside = zone_pixels(frame, zone, margin=routes.HEAT_LINE + 1)
    assert inside.sum() > 1000  # the circle is well inside the picture
    assert (heat[inside] == heatmap.HEAT_BACKGROUND).all()
    assert (route[inside] == heatmap.ROUTE_BACKGROUND).all()
    # Not background by accident: without the zone the same pixels are drawn on.
    bare_heat, _, bare_frame = draw([])
    assert bare_frame == frame
    assert (bare_heat[inside] != heatmap.HEAT_BACKGROUND).any(axis=1).sum() > 200
    # And the picture holds heat elsewhere: several colours, brighter where tracks overlap.
    drawn = heat[(heat != heatmap.HEAT_BACKGROUND).any(axis=2)]
    assert len(drawn) > 5000
    assert len({tuple(p) for p in drawn.tolist()}) >= 3


# -- three athletes in one database --------------------------------------------------------


@dataclasses.dataclass
class Loaded:
    url: str
    schema: str
    #: The analytics schema the report reads, built once by the fixture.
    models: str
    sim: StravaSimulator
    ids: dict[str, int]  # archive-only, api-only, mixed -> athlete id
    workdir: Path

    def activities(self, label: str) -> list[dict[str, t.Any]]:
        athlete = next(a for a in self.sim.athletes if a.athlete_id == self.ids[label])
        return [a.summary for a in athlete.store.all()]

    def count(self, statement: str, *params: t.Any) -> int:
        with connect(self.url) as conn:
            return int(conn.execute(statement.format(s=self.schema), params).fetchone()[0])


def _load(messages: list[dict], url: str, schema: str, workdir: Path) -> None:
    load_into_postgres(messages, url, schema, workdir, batch_size_rows=50, timeout=600)


@pytest.fixture(scope="module")
def loaded(postgres_url, tmp_path_factory):
    if not TARGET.exists():
        pytest.skip("target-postgres is not installed (make setup)")
    workdir = tmp_path_factory.mktemp("routes")
    schema = f"routes_{uuid.uuid4().hex[:10]}"
    with StravaSimulator(seed=41, activity_count=ACTIVITIES) as sim:
        api_only = sim.add_athlete(seed=42, activity_count=ACTIVITIES)
        archive_only = sim.add_athlete(seed=43, activity_count=ACTIVITIES)
        ids = {
            "archive-only": archive_only.athlete_id,
            "api-only": api_only.athlete_id,
            "mixed": sim.primary.athlete_id,
        }
        try:
            for label in ("archive-only", "mixed"):
                manifest = write_archive(
                    sim,
                    workdir / f"{label}.zip",
                    athlete_id=ids[label],
                    quirks=False,
                    track_seconds=600,
                )
                config = {
                    "export_archive_path": str(manifest.path),
                    "token_store_path": str(workdir / label / "tokens.json"),
                }
                _load(run_tap(config).messages, postgres_url, schema, workdir)
            for label, streams in (("api-only", 0), ("mixed", STREAMS)):
                athlete = next(a for a in sim.athletes if a.athlete_id == ids[label])
                config = tap_config_for(
                    sim,
                    workdir / f"{label}-api",
                    refresh_token=athlete.refresh_token,
                    streams_per_run=streams,
                )
                result = run_tap(config, streams=["activities", "athlete", "activity_streams"])
                assert len(result.records("activity_streams")) == streams
                _load(result.messages, postgres_url, schema, workdir)
            build(postgres_url, raw_schema=schema, analytics_schema=f"{schema}_models",
                  project_dir=ROOT / "transform", meltano_root=ROOT)  # fmt: skip
            yield Loaded(postgres_url, schema, f"{schema}_models", sim, ids, workdir)
        finally:
            with connect(postgres_url) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_models" CASCADE')


def render(
    url: str,
    schema: str,
    out: Path,
    *args: str,
    models: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command on the raw ``schema``; with ``models``, on those built models as they are."""
    read = ["--analytics-schema", models, "--no-build"] if models else []
    return subprocess.run(
        [sys.executable, "-m", "strava_dashboard", "--database-url", url, "--schema", schema,
         *read, "--out", str(out), "--export-archive", "", *args],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip


def coverage(page: str) -> str:
    found = re.search(r'<p id="coverage">(.*?)</p>', page)
    assert found, page[:2000]
    return html.unescape(found.group(1))


def route_figures(page: str) -> dict[int, str]:
    found = re.findall(r'<figure class="route" id="route-(\d+)" data-source="([^"]+)">', page)
    return {int(i): s for i, s in found}


def expected_sources(loaded: Loaded, label: str) -> dict[str, int]:
    """Routes per source, from the tables and the simulator, not by the report's code."""
    athlete = loaded.ids[label]
    with connect(loaded.url) as conn:

        def ids(table: str) -> set[int]:
            exists = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s"
                " AND table_name = %s",
                (loaded.schema, table),
            ).fetchone()
            if not exists:
                return set()
            return {
                i
                for (i,) in conn.execute(
                    f'SELECT activity_id FROM "{loaded.schema}"."{table}" WHERE athlete_id = %s'
                    " AND cardinality(latlng) > 0",
                    (athlete,),
                ).fetchall()
            }

        streams, archive = ids("activity_streams"), ids("export_tracks")
    polylines: set[int] = set()
    if label != "archive-only":
        polylines = {a["id"] for a in loaded.activities(label) if a["map"].get("summary_polyline")}
    counts = {
        "api-stream": len(streams),
        "archive-track": len(archive - streams),
        "api-polyline": len(polylines - streams - archive),
    }
    return {k: v for k, v in counts.items() if v}


def test_one_report_per_athlete_saying_its_sources_dates_and_route_sources(loaded, tmp_path):
    proc = render(
        loaded.url, loaded.schema, tmp_path / "report.html", "--no-png", models=loaded.models
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = (tmp_path / "report.html").read_text(encoding="utf-8")
    for label, athlete in loaded.ids.items():
        assert f'href="report-{athlete}.html"' in index
        page = (tmp_path / f"report-{athlete}.html").read_text(encoding="utf-8")
        summaries = loaded.activities(label)
        own_ids = {a["id"] for a in summaries}
        # The dates: the athlete's local days, the archive-only athlete's too (the models
        # give archive rows a local time from their files).
        days = sorted(datetime.date.fromisoformat(a["start_date_local"][:10]) for a in summaries)
        text = coverage(page)
        assert f"athlete {athlete}" in text
        assert f"{len(summaries)} activities" in text
        assert f"from {days[0]:%d %b %Y} to {days[-1]:%d %b %Y}" in text, text
        sources = {
            "archive-only": f"(export archive: {ACTIVITIES})",
            "api-only": f"(API: {ACTIVITIES})",
            "mixed": f"(API: {ACTIVITIES}, export archive: {ACTIVITIES})",
        }[label]
        assert sources in text, text
        # In UTC: archive rows whose files told no local time, of an athlete without an API
        # history to take a zone from (from the raw table, not the models).
        in_utc = 0
        if label == "archive-only":
            in_utc = loaded.count(
                "SELECT count(*) FROM {s}.export_activities"
                " WHERE athlete_id = %s AND start_date_local IS NULL",
                athlete,
            )
        if in_utc:
            what = "activity" if in_utc == 1 else "activities"
            assert f"; {in_utc} {what} in UTC (no time zone known)" in text, text
        else:
            assert "in UTC" not in text, text

        # Routes: only this athlete's, each saying its source; the caption counts them.
        figures = route_figures(page)
        assert len(figures) == routes.RECENT_MAPS
        assert set(figures) <= own_ids
        expected = expected_sources(loaded, label)
        assert set(figures.values()) <= set(expected)
        caption = re.search(r'<p class="note" id="route-sources">(.*?)</p>', page)
        assert caption
        label_of = tracks.SOURCE_LABELS
        for source, count in expected.items():
            assert f"{count} from {label_of[source]}s" in caption.group(1), (label, caption)
        assert f"{sum(expected.values())} routes (" in caption.group(1)
        assert page.count('id="chart-route-heatmap"') == 1
        assert re.search(r'id="chart-route-heatmap".*?src="data:image/png;base64,', page, re.S)
    expected = expected_sources(loaded, "mixed")
    # The mixed athlete's routes come from both: the streams (some of the ten are indoor,
    # without positions) and the archive's tracks for the rest.
    assert 0 < expected["api-stream"] <= STREAMS
    assert expected["archive-track"] > 10


def test_athlete_id_picks_one_athlete_and_bad_settings_are_one_line(loaded, tmp_path):
    athlete = loaded.ids["api-only"]
    out = tmp_path / "one.html"
    proc = render(
        loaded.url, loaded.schema, out, "--athlete-id", str(athlete), "--no-png",
        models=loaded.models,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(out)]
    page = out.read_text(encoding="utf-8")
    assert f"athlete {athlete}" in coverage(page)
    assert set(route_figures(page)) <= {a["id"] for a in loaded.activities("api-only")}
    assert "no privacy zone set" in page

    # The zones of the environment variable count; --no-maps leaves the maps out.
    env = {**os.environ, privacy.ENV_VAR: "0,0,100; 1,1,200"}
    proc = render(
        loaded.url, loaded.schema, out, "--athlete-id", str(athlete), "--no-png",
        models=loaded.models, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "privacy: 2 zones, 0 points hidden" in out.read_text(encoding="utf-8")
    proc = render(
        loaded.url, loaded.schema, out, "--athlete-id", str(athlete), "--no-maps",
        models=loaded.models,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text(encoding="utf-8")
    assert "chart-route-heatmap" not in page
    assert not route_figures(page)

    bad_archive = write_test_archive(
        tmp_path / "export_4242.zip",
        [],
        extra_members={"privacy_zones.csv": b"Address,Radius\nHome,0.40 kilometers\n"},
    )
    for args, message in (
        (("--athlete-id", "1"), "no activities of athlete 1 in schema"),
        (("--privacy-zone", "52.1,4.3"), "--privacy-zone '52.1,4.3' is not LAT,LON,RADIUS_M"),
        (("--export-archive", str(bad_archive)), "row 2 has no coordinates"),
    ):
        (tmp_path / "bad.html").unlink(missing_ok=True)
        proc = render(loaded.url, loaded.schema, tmp_path / "bad.html", *args, models=loaded.models)
        assert proc.returncode == 1, (args, proc.stderr)
        (line,) = proc.stderr.splitlines()
        assert line.startswith("tap-strava-dashboard: error: "), line
        assert message in line, line
        assert not (tmp_path / "bad.html").exists()
        if args[0] == "--athlete-id":
            assert str(athlete) in line  # the athletes there are named


class RecordingDatabase(data.Database):
    """The real database, every statement and its row count written down."""

    log: list[tuple[str, int]]

    def rows(self, statement: str, params: t.Sequence[t.Any] = ()) -> list[tuple[t.Any, ...]]:
        found = super().rows(statement, params)
        self.__dict__.setdefault("log", []).append((statement, len(found)))
        return found


def _zones_on_routes(loaded: Loaded, db: data.Database, athlete: int) -> list[privacy.Zone]:
    """A zone in the middle of the newest route the heatmap frames, one (from an archive's
    privacy_zones.csv) at the start of the next: places routes pass, as a home is."""
    dataset = data.load_athlete(db, athlete)
    newest = [a.id for a in reversed(dataset.activities)]
    read = {tr.activity_id: tr.points for tr in tracks.tracks(db, athlete, newest)}
    framed = set(routes.main_area({i: routes.to_world([p]) for i, p in read.items()}))
    first, second = [read[i] for i in newest if i in framed][:2]
    lat, lon = first[len(first) // 2]
    zones_csv = (
        "Address,Radius,Latitude & Longitude\n"
        f'"Home, 1",0.30 kilometers,"{second[0][0]:.6f}, {second[0][1]:.6f}"\n'
    )
    archive = write_test_archive(
        loaded.workdir / f"zones-{uuid.uuid4().hex[:6]}.zip",
        [],
        extra_members={"privacy_zones.csv": zones_csv.encode()},
    )
    return [
        privacy.Zone(float(lat), float(lon), 1500.0, "test"),
        *privacy.read_archive_zones(archive),
    ]


def test_no_route_point_or_segment_enters_a_zone_in_the_data_or_the_pictures(loaded):
    athlete = loaded.ids["mixed"]
    with RecordingDatabase(loaded.url, loaded.schema, loaded.models) as db:
        zones = _zones_on_routes(loaded, db, athlete)
        dataset = data.load_athlete(db, athlete)
        checked = 0
        for track in tracks.tracks(db, athlete, [a.id for a in dataset.activities]):
            assert_outside(privacy.hide(track.points, zones), zones)
            checked += 1
        assert checked == sum(expected_sources(loaded, "mixed").values())

        db.log = []
        drawn = routes.build(db, dataset, zones)
        bare = routes.build(db, dataset, [])
        # Reading: every latlng array by its own query, one row each; no query pulls many.
        reads = [(s, n) for s, n in db.log if "latlng" in s.split(" FROM ")[0]]
        from_tables = drawn.sources.get("api-stream", 0) + drawn.sources.get("archive-track", 0)
        assert len(reads) == 2 * from_tables
        for statement, count in reads:
            assert re.match(r"SELECT (array_to_json\(latlng\)::text|latlng) FROM", statement)
            assert "activity_id = ?" in statement
            assert count <= 1

    assert drawn.hidden_points > 20
    assert drawn.sources == bare.sources
    assert drawn.heatmap_png is not None
    assert drawn.frame is not None
    heat = picture(drawn.heatmap_png)
    assert bare.frame is not None
    assert bare.heatmap_png is not None
    bare_heat = picture(bare.heatmap_png)
    covered = 0
    for zone in zones:
        inside = zone_pixels(drawn.frame, zone, margin=routes.HEAT_LINE + 1)
        assert (heat[inside] == heatmap.HEAT_BACKGROUND).all(), zone
        if drawn.frame == bare.frame:
            covered += int((bare_heat[inside] != heatmap.HEAT_BACKGROUND).any(axis=1).sum())
    in_maps = 0
    for route_map in drawn.maps:
        if route_map.png is None:
            continue
        assert route_map.frame is not None
        pixels = picture(route_map.png)
        for zone in zones:
            inside = zone_pixels(route_map.frame, zone, margin=routes.ROUTE_LINE + 1)
            assert (pixels[inside] == heatmap.ROUTE_BACKGROUND).all(), (route_map, zone)
            in_maps += int(inside.sum())
    assert in_maps > 100  # the zones lie inside some route maps: the check is not empty
    # Where the zones are, the map without them had routes drawn (when the frames differ,
    # the route maps above carry the check).
    assert covered > 100 or drawn.frame != bare.frame


def test_the_report_renders_the_same_routes_from_duckdb(loaded, tmp_path):
    import duckdb

    path = tmp_path / "strava.duckdb"
    tables = ("activities", "athlete", "export_activities", "export_tracks", "export_gear",
              "activity_streams")  # fmt: skip
    with connect(loaded.url) as pg, duckdb.connect(str(path)) as duck:
        duck.execute('CREATE SCHEMA "strava"."strava"')
        for table in tables:
            columns = pg.execute(
                "SELECT column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (loaded.schema, table),
            ).fetchall()
            kinds = {
                "bigint": "BIGINT", "numeric": "DOUBLE", "text": "VARCHAR", "boolean": "BOOLEAN",
                "timestamp without time zone": "TIMESTAMP", "jsonb": "JSON", "ARRAY": "JSON",
                "date": "DATE",
            }  # fmt: skip
            types = [kinds.get(k, "VARCHAR") for _, k in columns]
            duck.execute(
                f'CREATE TABLE "strava"."strava"."{table}" ('
                + ", ".join(f'"{n}" {k}' for (n, _), k in zip(columns, types, strict=True))
                + ")"
            )
            rows = [
                [
                    json.dumps(v, default=str) if k == "JSON" and v is not None else v
                    for v, k in zip(row, types, strict=True)
                ]
                for row in pg.execute(f'SELECT * FROM "{loaded.schema}"."{table}"').fetchall()
            ]
            marks = ", ".join("?" for _ in columns)
            duck.executemany(f'INSERT INTO "strava"."strava"."{table}" VALUES ({marks})', rows)
    athlete = loaded.ids["mixed"]
    pages = {}
    for name, url, schema, models in (
        ("duckdb", f"duckdb:///{path}", "strava", None),  # the command builds them
        ("postgres", loaded.url, loaded.schema, loaded.models),
    ):
        out = tmp_path / f"{name}.html"
        proc = render(url, schema, out, "--athlete-id", str(athlete), "--no-png", models=models)
        assert proc.returncode == 0, proc.stderr[-3000:]
        pages[name] = out.read_text(encoding="utf-8")
    assert route_figures(pages["duckdb"]) == route_figures(pages["postgres"])
    assert coverage(pages["duckdb"]) == coverage(pages["postgres"])
    note = r'<p class="note" id="route-sources">(.*?)</p>'
    assert re.findall(note, pages["duckdb"]) == re.findall(note, pages["postgres"])


LAYOUT_PROBE = """
<script>
window.addEventListener("load", () => {
  const boxes = [...document.querySelectorAll("#chart-route-heatmap img, figure.route img")]
    .map((img) => {
      const box = img.getBoundingClientRect();
      return {id: img.parentElement.id, x: box.left + scrollX, y: box.top + scrollY,
              w: box.width, h: box.height, decoded: img.complete && img.naturalWidth > 0};
    });
  const out = document.createElement("pre");
  out.id = "layout-probe";
  out.textContent = JSON.stringify(boxes);
  document.body.appendChild(out);
});
</script>
"""


def test_chromium_offline_shows_the_heatmap_and_every_route_map(loaded, tmp_path):
    athlete = loaded.ids["mixed"]
    out = tmp_path / "report.html"
    proc = render(loaded.url, loaded.schema, out, "--athlete-id", str(athlete), "--no-png",
                  "--privacy-zone", "0,0,100", models=loaded.models)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = out.read_text(encoding="utf-8")
    # Offline by construction: nothing the page would fetch, no http(s) anywhere in a source.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"https?:", page)
    assert "privacy: 1 zone, 0 points hidden" in page
    assert "--host-resolver-rules=MAP * ~NOTFOUND" in browser.FLAGS

    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    dom = browser.dump_dom(probe)
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, dom[-2000:]
    boxes = json.loads(found.group(1).replace("&quot;", '"'))
    ids = [b["id"] for b in boxes]
    assert ids[0] == "chart-route-heatmap"
    assert len(ids) == 1 + routes.RECENT_MAPS
    assert all(b["decoded"] for b in boxes), boxes

    shot = picture(browser.screenshot(probe, tmp_path / "shot.png", 1400, 4000).read_bytes())
    heat = boxes[0]
    assert heat["w"] > 500
    region = shot[
        int(heat["y"]) : int(heat["y"] + heat["h"]), int(heat["x"]) : int(heat["x"] + heat["w"])
    ]
    assert region.size, heat
    background = (np.abs(region.astype(int) - heatmap.HEAT_BACKGROUND).sum(axis=2) < 12).mean()
    warm = ((region[:, :, 0] > 150) & (region[:, :, 2] < 120)).mean()
    assert background > 0.5, background  # the dark map ...
    assert warm > 0.002, warm  # ... with the routes drawn on it in the heat colours
    for box in boxes[1:]:
        assert box["y"] + box["h"] <= shot.shape[0], box
        tile = shot[
            int(box["y"]) : int(box["y"] + box["h"]), int(box["x"]) : int(box["x"] + box["w"])
        ]
        strong = ((tile.max(axis=2).astype(int) - tile.min(axis=2)) > 80).mean()
        assert strong > 0.002, (box, strong)  # a coloured route line in the map
