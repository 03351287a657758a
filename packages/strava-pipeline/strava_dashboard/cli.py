"""``tap-strava-dashboard``: build the analytics models, then render the training report.

The report reads the dbt models (transform/), which the command builds first with dbt
(:mod:`strava_dashboard.models`; ``--no-build`` reads them as they are). This module
imports only the standard library and the pipeline's own core at the top: the drawing
modules need the ``dashboard`` extra (matplotlib, which brings numpy and Pillow; dbt),
and without it the command must say so in one line, not in a traceback.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import typing as t
from pathlib import Path

from strava_data.project import Project

if t.TYPE_CHECKING:
    from strava_dashboard.data import Database
    from strava_dashboard.privacy import Zone

PROG = "tap-strava-dashboard"
#: Top-level modules of the ``dashboard`` extra (and what they bring) the report imports.
EXTRA_MODULES = frozenset({"matplotlib", "numpy", "PIL", "duckdb", "psycopg"})
EXTRA_HINT = "pip install 'strava-pipeline[dashboard]' (in this repository: make setup-extras)"


def _default_url() -> str | None:
    """The loader's own setting, from the environment or the project's .env (as Meltano)."""
    settings = Project.here().settings
    url = settings.get("STRAVA_DASHBOARD_DATABASE_URL") or settings.get(
        "TARGET_POSTGRES_SQLALCHEMY_URL"
    )
    if url:
        return url
    duckdb_file = settings.get("TARGET_DUCKDB_FILEPATH")
    return f"duckdb:///{duckdb_file}" if duckdb_file else None


def parser() -> argparse.ArgumentParser:
    """The command line (documented in docs/destinations.md, "Analytics")."""
    project = Project.here()
    settings = project.settings
    cli = argparse.ArgumentParser(
        prog=PROG,
        description="Render a self-contained HTML training report (and a PNG of each "
        "chart) from the tables tap-strava loaded into PostgreSQL or DuckDB: one per "
        "athlete, with a heatmap of their routes and a map of each recent activity.",
    )
    cli.add_argument(
        "--database-url",
        default=_default_url(),
        help="postgresql://user@host/db (also postgresql+psycopg://) or duckdb:///path/file."
        " Default: STRAVA_DASHBOARD_DATABASE_URL, TARGET_POSTGRES_SQLALCHEMY_URL or"
        " TARGET_DUCKDB_FILEPATH.",
    )
    cli.add_argument("--schema", default="strava", help="schema of the raw tables (strava)")
    cli.add_argument(
        "--analytics-schema",
        default=settings.get("STRAVA_ANALYTICS_SCHEMA") or "analytics",
        help="schema of the dbt models the report reads and builds (default: "
        "STRAVA_ANALYTICS_SCHEMA, else analytics)",
    )
    cli.add_argument(
        "--no-build",
        action="store_true",
        help="read the models as they are, without running dbt build first",
    )
    cli.add_argument(
        "--dbt-project-dir",
        type=Path,
        default=project.root / "transform" if project.root else Path("transform"),
        help="the dbt project (default: the Meltano project's transform/)",
    )
    cli.add_argument(
        "--out",
        type=Path,
        default=Path("report.html"),
        help="the HTML file; with several athletes and no --athlete-id, an index linking "
        "one <out>-<athlete id>.html per athlete",
    )
    cli.add_argument(
        "--athlete-id", type=int, help="the athlete to report on (default: each athlete)"
    )
    cli.add_argument(
        "--png-dir",
        type=Path,
        help="where each chart is exported as PNG (default: <out>-charts/ beside the page)",
    )
    cli.add_argument("--no-png", action="store_true", help="export no PNG files")
    cli.add_argument(
        "--today",
        type=datetime.date.fromisoformat,
        help="the report's last day, YYYY-MM-DD (default: the newest activity's day)",
    )
    cli.add_argument("--title", default="Strava training report")
    cli.add_argument(
        "--privacy-zone",
        action="append",
        default=[],
        metavar="LAT,LON,RADIUS_M",
        help="hide every route point within RADIUS_M metres of LAT,LON (repeatable; also "
        "STRAVA_DASHBOARD_PRIVACY_ZONES, items separated by ';'); a negative latitude "
        "needs the = form: --privacy-zone=-33.86,151.21,400",
    )
    cli.add_argument(
        "--export-archive",
        default=settings.get("STRAVA_EXPORT_ARCHIVE") or "",
        metavar="PATH",
        help="the export archive (zip or folder) whose privacy_zones.csv is applied too "
        "(default: STRAVA_EXPORT_ARCHIVE; '' reads none)",
    )
    cli.add_argument(
        "--no-maps", action="store_true", help="leave out the heatmap and the route maps"
    )
    return cli


def _fail(message: str) -> t.NoReturn:
    sys.exit(f"{PROG}: error: {' '.join(message.split())}")


def _require_extra(database_url: str) -> None:
    """One line naming the missing module and the install, instead of a traceback."""
    try:
        import matplotlib  # noqa: F401
        import numpy  # noqa: F401
        import PIL  # noqa: F401

        if database_url.startswith("duckdb:"):
            import duckdb  # noqa: F401
    except ModuleNotFoundError as exc:
        name = (exc.name or "").split(".")[0]
        if name not in EXTRA_MODULES:
            raise
        _fail(f"the dashboard extra is not installed (no module named {name!r}): {EXTRA_HINT}")


def _check_database(args: argparse.Namespace, data: t.Any) -> None:
    """The database answers before dbt runs: its error is clearer than dbt's.

    The connection is closed again at once: DuckDB lets no other process (dbt) write a
    file this one has open. A DuckDB file that is not there is an error too (dbt would
    create an empty one).
    """
    try:
        data.Database(args.database_url, args.schema, args.analytics_schema).close()
    except Exception as exc:  # one line naming the cause, not a traceback
        _fail(f"cannot read the tables: {exc}")


def _zones(args: argparse.Namespace) -> list[Zone]:
    from strava_dashboard import privacy

    zones: list[Zone] = []
    try:
        for item in args.privacy_zone:
            zones += privacy.parse_setting(item, "--privacy-zone")
        zones += privacy.parse_setting(os.environ.get(privacy.ENV_VAR, ""), privacy.ENV_VAR)
        if args.export_archive:
            zones += privacy.read_archive_zones(Path(args.export_archive))
    except privacy.ZoneError as exc:
        _fail(str(exc))
    return zones


def _pages(args: argparse.Namespace, db: Database) -> list[int | None]:
    from strava_dashboard import data

    found = data.athletes(db)
    if args.athlete_id is None:
        return found or [None]
    if args.athlete_id not in found:
        listed = ", ".join(str(a) for a in found if a is not None) or "none"
        _fail(
            f"no activities of athlete {args.athlete_id} in schema {args.schema} "
            f"(athletes there: {listed}): check --athlete-id"
        )
    return [args.athlete_id]


def main(argv: list[str] | None = None) -> None:
    """Read, draw, write; one line per file written, one error line on failure."""
    args = parser().parse_args(argv)
    if not args.database_url:
        _fail(
            "no --database-url: set STRAVA_DASHBOARD_DATABASE_URL, "
            "TARGET_POSTGRES_SQLALCHEMY_URL or TARGET_DUCKDB_FILEPATH (environment or the "
            "project's .env)"
        )
    _require_extra(args.database_url)
    from strava_dashboard import charts, data, models, report, routes

    zones = _zones(args)
    _check_database(args, data)
    if not args.no_build:
        try:
            models.build(
                args.database_url,
                raw_schema=args.schema,
                analytics_schema=args.analytics_schema,
                project_dir=args.dbt_project_dir,
                meltano_root=Project.here().root,
            )
        except models.BuildFailed as exc:
            _fail(str(exc))
    try:
        db = data.Database(args.database_url, args.schema, args.analytics_schema)
    except Exception as exc:  # one line naming the cause, not a traceback
        _fail(f"cannot read the tables: {exc}")
    with db:
        try:
            athletes = _pages(args, db)
        except data.ModelsMissing as exc:
            _fail(str(exc))
        single = len(athletes) == 1
        index: list[tuple[str, str, str]] = []
        for athlete in athletes:
            out = args.out if single else args.out.with_name(f"{args.out.stem}-{athlete}.html")
            png_dir: Path | None = None
            if not args.no_png:
                png_dir = (
                    out.with_name(f"{out.stem}-charts")
                    if not args.png_dir
                    else (args.png_dir if single else args.png_dir / str(athlete))
                )
            try:
                dataset = data.load_athlete(db, athlete)
                colours = {a.id: charts.GROUP_COLOURS[a.group] for a in dataset.activities}
                drawn = None
                if not args.no_maps:
                    drawn = routes.build(db, dataset, zones, colour_of=colours.__getitem__)
            except Exception as exc:  # a database error: one line, not a traceback
                _fail(f"cannot read the tables: {exc}")
            page = report.render(
                dataset,
                today=args.today,
                title=args.title,
                png_links=report.png_links(out, png_dir, report.CHART_SLUGS),
                routes=drawn,
            )
            for path in report.write(page, out, png_dir):
                print(path)
            who = f"athlete {athlete}" + (
                f" ({dataset.athlete_name})" if dataset.athlete_name else ""
            )
            index.append((out.name, who, report.coverage(dataset, args.today)))
    if not single:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report.index_page(args.title, index), encoding="utf-8")
        print(args.out)


if __name__ == "__main__":
    main()
