"""The HTML report: headline numbers, the charts and the recent activities, in one file.

Self-contained on purpose: the charts are PNGs inlined as ``data:`` URIs and the CSS is
in the page, so the file can be mailed, opened offline or archived and still shows
everything; no script, font or stylesheet is fetched from anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import typing as t
from pathlib import Path

from strava_dashboard import charts
from strava_dashboard.data import Activity, Dataset
from strava_dashboard.tracks import SOURCE_LABELS

if t.TYPE_CHECKING:
    from strava_dashboard.routes import Routes

RECENT_ROWS = 15
# The charts in page order; each is also exported as <slug>.png.
CHART_SLUGS = (
    "weekly-distance",
    "calendar-heatmap",
    "pace-trend",
    "elevation",
    "gear-mileage",
    "route-heatmap",
)

STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #1f2937;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { background: #1f2937; color: #f9fafb; padding: 18px 28px; }
header h1 { margin: 0; font-size: 22px; }
header p { margin: 4px 0 0; color: #d1d5db; font-size: 13px; }
main { max-width: 1680px; margin: 0 auto; padding: 18px 22px 40px; }
.tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; margin-bottom: 16px; }
.tile { background: #fff; border-radius: 10px; padding: 12px 16px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.tile b { display: block; font-size: 22px; color: #ea580c; }
.tile span { color: #6b7280; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 16px; }
figure { margin: 0; background: #fff; border-radius: 10px; padding: 12px 14px;
         box-shadow: 0 1px 2px rgba(0,0,0,.08); }
figure.wide { grid-column: 1 / -1; }
figcaption { font-weight: 600; margin-bottom: 6px; display: flex; justify-content: space-between; }
figcaption a { font-weight: 400; font-size: 12px; color: #2563eb; }
figure img { display: block; width: 100%; height: auto; }
section.recent { margin-top: 16px; background: #fff; border-radius: 10px; padding: 12px 14px;
                 box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h2 { font-size: 15px; margin: 0 0 8px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e5e7eb; }
th { color: #6b7280; font-weight: 600; font-size: 12px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td:first-child { white-space: nowrap; }
.sport { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 6px; }
footer { color: #6b7280; font-size: 12px; margin-top: 14px; }
section.routes { margin-top: 16px; background: #fff; border-radius: 10px; padding: 12px 14px;
                 box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.route-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
              gap: 12px; }
figure.route { padding: 0; box-shadow: none; }
figure.route img { width: 260px; max-width: 100%; border: 1px solid #e5e7eb; border-radius: 6px; }
figure.route figcaption { display: block; font-weight: 400; font-size: 12px; margin: 4px 0 0; }
.route-hidden { width: 260px; height: 200px; display: flex; align-items: center;
                justify-content: center; background: #f8fafc; color: #6b7280;
                border: 1px dashed #d1d5db; border-radius: 6px; font-size: 12px; }
.note { color: #6b7280; font-size: 12px; font-weight: 400; margin: 0 0 6px; }
@media (max-width: 900px) { .grid, .tiles { grid-template-columns: 1fr; } }
"""


@dataclasses.dataclass(frozen=True)
class Report:
    """The rendered page and the charts in it (for the PNG export)."""

    html: str
    charts: list[charts.Chart]


def _duration(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _speed_or_pace(activity: Activity) -> str:
    """Pace for runs, walks and swims (what their athletes read), km/h for the rest."""
    pace = activity.pace_min_per_km
    if pace is None:
        return ""
    if activity.group in ("Run", "Walk", "Swim"):
        return f"{charts.mm_ss(pace)} /km"
    return f"{60 / pace:.1f} km/h"


def _tiles(activities: list[Activity], end: datetime.date) -> list[tuple[str, str]]:
    this_week = charts.week_start(end)
    four_weeks = this_week - datetime.timedelta(weeks=3)
    year = [a for a in activities if a.day.year == end.year and a.day <= end]
    week = [a for a in activities if this_week <= a.day <= end]
    month = [a for a in activities if four_weeks <= a.day <= end]
    return [
        (f"{sum(a.distance_km for a in week):,.1f} km", f"week of {this_week:%d %b}"),
        (f"{sum(a.distance_km for a in month):,.1f} km", "last 4 weeks"),
        (f"{sum(a.distance_km for a in year):,.0f} km", f"{end.year} so far"),
        (
            f"{sum(a.moving_s for a in year) / 3600:,.0f} h · {len(year)}",
            f"moving time · activities in {end.year}",
        ),
    ]


def _recent_table(dataset: Dataset, source_of: dict[int, str]) -> str:
    rows = []
    for activity in reversed(dataset.activities[-RECENT_ROWS:]):
        gear = dataset.gear.get(activity.gear_id or "")
        gear_name = gear.name if gear else (activity.gear_id or "")
        indoor = " (indoor)" if activity.trainer else ""
        zone = "" if activity.local_time else " UTC"
        route = SOURCE_LABELS.get(source_of.get(activity.id, ""), "")
        rows.append(
            "<tr>"
            f"<td>{activity.start_local:%a %d %b %Y %H:%M}{zone}</td>"
            f"<td>{html.escape(activity.name)}</td>"
            f'<td><span class="sport" style="background:{charts.GROUP_COLOURS[activity.group]}">'
            f"</span>{html.escape(activity.sport_type)}{indoor}</td>"
            f'<td class="num">{activity.distance_km:.2f}</td>'
            f'<td class="num">{_duration(activity.moving_s)}</td>'
            f'<td class="num">{_speed_or_pace(activity)}</td>'
            f'<td class="num">{activity.elevation_m:.0f}</td>'
            f"<td>{html.escape(gear_name)}</td>"
            f"<td>{html.escape(activity.source)}</td>"
            f"<td>{html.escape(route)}</td>"
            "</tr>"
        )
    body = "\n".join(rows) or '<tr><td colspan="10">No activities loaded yet.</td></tr>'
    return (
        '<section class="recent" id="recent-activities"><h2>Recent activities</h2><table>'
        "<thead><tr><th>Start (local)</th><th>Name</th><th>Sport</th>"
        '<th class="num">km</th><th class="num">Moving</th><th class="num">Pace / speed</th>'
        '<th class="num">Climb m</th><th>Gear</th><th>Source</th><th>Route from</th>'
        "</tr></thead>"
        f"<tbody>\n{body}\n</tbody></table></section>"
    )


def _figure(chart: charts.Chart, wide: bool, png_href: str | None) -> str:
    data = base64.b64encode(chart.png).decode("ascii")
    link = f'<a href="{html.escape(png_href)}" download>PNG</a>' if png_href else ""
    return (
        f'<figure id="chart-{chart.slug}" class="{"wide" if wide else ""}">'
        f"<figcaption>{html.escape(chart.title)}{link}</figcaption>"
        f'<img alt="{html.escape(chart.alt)}" src="data:image/png;base64,{data}">'
        "</figure>"
    )


def _count(number: int, what: str) -> str:
    return f"{number:,} {what}{'' if number == 1 else 's'}"


def _routes_caption(routes: Routes) -> str:
    """Where the routes came from, what is outside the frame, what privacy hid."""
    by_source = ", ".join(
        f"{routes.sources[s]:,} from {SOURCE_LABELS[s]}s"
        for s in SOURCE_LABELS
        if routes.sources.get(s)
    )
    parts = [f"{_count(sum(routes.sources.values()), 'route')} ({by_source or 'none'})"]
    if routes.outside_frame:
        parts.append(f"{_count(routes.outside_frame, 'route')} far from the others not shown")
    if routes.zones:
        parts.append(
            f"privacy: {_count(routes.zones, 'zone')}, "
            f"{_count(routes.hidden_points, 'point')} hidden"
        )
    else:
        parts.append("no privacy zone set")
    return " · ".join(parts)


def heatmap_chart(routes: Routes) -> charts.Chart | None:
    """The heatmap as a chart of the page (and its PNG export), None without a route."""
    if routes.heatmap_png is None:
        return None
    return charts.Chart(
        slug="route-heatmap",
        title="Where you train: every route, brighter where more of them pass",
        alt=f"Heatmap of {routes.in_frame} routes",
        png=routes.heatmap_png,
    )


def _heatmap_figure(routes: Routes, chart: charts.Chart | None, png_href: str | None) -> str:
    caption = f'<p class="note" id="route-sources">{html.escape(_routes_caption(routes))}</p>'
    if chart is None:
        return (
            '<figure id="chart-route-heatmap" class="wide"><figcaption>Where you train'
            f"</figcaption>{caption}<p>No routes loaded: archive tracks (export_tracks), API "
            "streams (activity_streams) or the activity list's summary polylines.</p></figure>"
        )
    figure = _figure(chart, True, png_href)
    return figure.replace("</figcaption>", f"</figcaption>{caption}", 1)


def _routes_section(routes: Routes, dataset: Dataset) -> str:
    by_id = {a.id: a for a in dataset.activities}
    items = []
    for route in routes.maps:
        activity = by_id[route.activity_id]
        label = SOURCE_LABELS[route.source]
        zone = "" if activity.local_time else " UTC"
        if route.png is None:
            picture = '<div class="route-hidden">route hidden: inside a privacy zone</div>'
        else:
            data = base64.b64encode(route.png).decode("ascii")
            picture = (
                f'<img alt="Route of {html.escape(activity.name)}" '
                f'src="data:image/png;base64,{data}">'
            )
        items.append(
            f'<figure class="route" id="route-{activity.id}" data-source="{route.source}">'
            f"{picture}<figcaption>{activity.start_local:%d %b %Y %H:%M}{zone} · "
            f"{html.escape(activity.name)} · {activity.distance_km:.1f} km<br>"
            f"route from the {html.escape(label)}</figcaption></figure>"
        )
    body = "\n".join(items) or "<p>No recent activity has a route.</p>"
    return (
        '<section class="routes" id="recent-routes"><h2>Recent routes</h2>'
        f'<div class="route-grid">\n{body}\n</div></section>'
    )


def _end(dataset: Dataset, today: datetime.date | None) -> datetime.date:
    """The report's last day: ``today`` or the newest activity's."""
    activities = dataset.activities
    return today or (activities[-1].day if activities else datetime.date.today())


def coverage(dataset: Dataset, today: datetime.date | None = None) -> str:
    """Who, from which sources, over which dates (what the header says)."""
    activities = dataset.activities
    end = _end(dataset, today)
    first = activities[0].day if activities else end
    who = ""
    if dataset.athlete_id is not None:
        who = f"athlete {dataset.athlete_id}"
        who = f"{dataset.athlete_name} ({who}) · " if dataset.athlete_name else f"{who} · "
    names = {"api": "API", "archive": "export archive"}
    sources = ", ".join(f"{names[s]}: {dataset.count(s)}" for s in dataset.sources)
    times = "local times"
    in_utc = sum(1 for a in activities if not a.local_time)
    if in_utc:
        what = "activity" if in_utc == 1 else "activities"
        times = f"local times; {in_utc:,} {what} in UTC (no time zone known)"
    return (
        f"{who}{len(activities)} activities ({sources or 'no source loaded'}) from "
        f"{first:%d %b %Y} to {end:%d %b %Y} · {times}"
    )


def render(
    dataset: Dataset,
    *,
    today: datetime.date | None = None,
    title: str = "Strava training report",
    png_links: dict[str, str] | None = None,
    routes: Routes | None = None,
) -> Report:
    """The report as of ``today`` (default: the day of the newest activity).

    ``routes`` adds the heatmap and the recent routes (None: no map section at all).
    """
    activities = dataset.activities
    end = _end(dataset, today)
    drawn = [
        charts.weekly_distance(activities, end),
        charts.calendar_heatmap(activities, end),
        charts.pace_trend(activities, end),
        charts.monthly_elevation(activities, end),
        charts.gear_mileage(dataset.gear),
    ]
    links = png_links or {}
    wide = {"weekly-distance", "calendar-heatmap", "gear-mileage"}
    figures = "\n".join(_figure(c, c.slug in wide, links.get(c.slug)) for c in drawn)
    route_section = ""
    if routes is not None:
        heat = heatmap_chart(routes)
        figures += "\n" + _heatmap_figure(routes, heat, links.get("route-heatmap"))
        if heat is not None:
            drawn.append(heat)
        route_section = _routes_section(routes, dataset)
    tiles = "".join(
        f"<div class=tile><b>{v}</b><span>{k}</span></div>" for v, k in _tiles(activities, end)
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1>
<p id="coverage">{html.escape(coverage(dataset, today))}</p></header>
<main>
<div class="tiles">{tiles}</div>
<div class="grid">
{figures}
</div>
{route_section}
{_recent_table(dataset, routes.source_of if routes else {})}
<footer>Made by tap-strava-dashboard from the loaded tables on
{datetime.date.today():%d %b %Y}.</footer>
</main>
</body>
</html>
"""
    return Report(html=page, charts=drawn)


def index_page(title: str, pages: t.Sequence[tuple[str, str, str]]) -> str:
    """A page linking the athletes' reports: (relative href, athlete, coverage) each."""
    items = "\n".join(
        f'<li><a href="{html.escape(href)}">{html.escape(who)}</a>: {html.escape(what)}</li>'
        for href, who, what in pages
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1><p>One report per athlete</p></header>
<main><section class="recent"><ul>
{items}
</ul></section></main>
</body>
</html>
"""


def write(report: Report, out: Path, png_dir: Path | None) -> list[Path]:
    """Write the page and, when asked, each chart as its own PNG; returns the files."""
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for chart in report.charts:
            path = png_dir / f"{chart.slug}.png"
            path.write_bytes(chart.png)
            written.append(path)
    out.write_text(report.html, encoding="utf-8")
    return [out, *written]


def png_links(out: Path, png_dir: Path | None, slugs: t.Iterable[str]) -> dict[str, str]:
    """Relative links from the page to the exported PNGs (when they sit beside it)."""
    if png_dir is None:
        return {}
    try:
        relative = png_dir.resolve().relative_to(out.resolve().parent)
    except ValueError:
        return {}  # elsewhere: no link, the page must not point outside its folder
    return {s: f"{relative.as_posix()}/{s}.png" for s in slugs}
