"""``tap-strava-dashboard``: render the training report from the loaded tables."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from strava_dashboard import data, report
from strava_data.project import Project


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
    cli = argparse.ArgumentParser(
        prog="tap-strava-dashboard",
        description="Render a self-contained HTML training report (and a PNG of each "
        "chart) from the tables tap-strava loaded into PostgreSQL or DuckDB.",
    )
    cli.add_argument(
        "--database-url",
        default=_default_url(),
        help="postgresql://user@host/db (also postgresql+psycopg://) or duckdb:///path/file."
        " Default: STRAVA_DASHBOARD_DATABASE_URL, TARGET_POSTGRES_SQLALCHEMY_URL or"
        " TARGET_DUCKDB_FILEPATH.",
    )
    cli.add_argument("--schema", default="strava", help="schema of the raw tables (strava)")
    cli.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file")
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
    return cli


def main(argv: list[str] | None = None) -> None:
    """Read, draw, write; one line per file written, one error line on failure."""
    args = parser().parse_args(argv)
    if not args.database_url:
        sys.exit(
            "tap-strava-dashboard: error: no --database-url: set STRAVA_DASHBOARD_DATABASE_URL, "
            "TARGET_POSTGRES_SQLALCHEMY_URL or TARGET_DUCKDB_FILEPATH (environment or the "
            "project's .env)"
        )
    png_dir: Path | None = None
    if not args.no_png:
        png_dir = args.png_dir or args.out.with_name(f"{args.out.stem}-charts")
    try:
        dataset = data.load(args.database_url, args.schema)
    except Exception as exc:  # one line naming the cause, not a traceback
        sys.exit(f"tap-strava-dashboard: error: cannot read the tables: {exc}".rstrip())
    page = report.render(
        dataset,
        today=args.today,
        title=args.title,
        png_links=report.png_links(args.out, png_dir, report.CHART_SLUGS),
    )
    for path in report.write(page, args.out, png_dir):
        print(path)


if __name__ == "__main__":
    main()
