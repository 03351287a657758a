"""The report's charts, drawn with matplotlib into PNG bytes.

matplotlib installs from the package index as wheels and draws without a browser or a
display (plotly's PNG export needs kaleido, which downloads a Chrome of its own). Figures
are made with ``matplotlib.figure.Figure`` directly, not pyplot, so nothing depends on a
GUI backend or global state. Every chart also draws with no data (a note instead of
bars), because a new account or a narrow period is a normal case, not an error.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import io
import statistics
import typing as t

from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from strava_dashboard.data import Activity, Gear

if t.TYPE_CHECKING:
    from matplotlib.axes import Axes

GROUP_COLOURS = {
    "Ride": "#2563eb",
    "Run": "#f97316",
    "Swim": "#06b6d4",
    "Walk": "#16a34a",
    "Other": "#a855f7",
}
GROUPS = tuple(GROUP_COLOURS)
INK = "#1f2937"
GRID = "#e5e7eb"
DPI = 100


@dataclasses.dataclass(frozen=True)
class Chart:
    """One chart: its file name stem, heading, description for screen readers, PNG."""

    slug: str
    title: str
    alt: str
    png: bytes


def week_start(day: datetime.date) -> datetime.date:
    """Monday of the ISO week the day is in: the charts' axis, from the report's last day.

    Which week an activity belongs to is the model's (``Activity.week``), not this.
    """
    return day - datetime.timedelta(days=day.weekday())


def _figure(width: float = 8.0, height: float = 3.2) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    ax.spines[["top", "right"]].set_visible(False)
    ax.spines[["left", "bottom"]].set_color("#9ca3af")
    ax.tick_params(colors=INK, labelsize=8)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    return fig, ax


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white", metadata={"Software": None})
    return buffer.getvalue()


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#6b7280")
    ax.set_xticks([])
    ax.set_yticks([])


def _stacked_bars(
    ax: Axes,
    periods: list[datetime.date],
    values: dict[str, dict[datetime.date, float]],
    width: float,
) -> None:
    bottom = [0.0] * len(periods)
    for group in GROUPS:
        heights = [values[group].get(p, 0.0) for p in periods]
        if not any(heights):
            continue
        ax.bar(
            periods,  # type: ignore[arg-type]
            heights,
            width=width,
            bottom=bottom,
            color=GROUP_COLOURS[group],
            label=group,
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.legend(frameon=False, fontsize=8, ncols=5, loc="upper left")


def weekly_distance(activities: list[Activity], end: datetime.date, weeks: int = 52) -> Chart:
    """Distance per ISO week and sport group, the last ``weeks`` weeks up to ``end``."""
    last = week_start(end)
    periods = [last - datetime.timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    values: dict[str, dict[datetime.date, float]] = {
        g: collections.defaultdict(float) for g in GROUPS
    }
    for activity in activities:
        monday = activity.week
        if periods[0] <= monday <= last:
            values[activity.group][monday] += activity.distance_km
    fig, ax = _figure(width=12.0, height=3.0)
    if any(sum(v.values()) for v in values.values()):
        _stacked_bars(ax, periods, values, width=5.5)
        ax.set_ylabel("km per week", color=INK, fontsize=9)
    else:
        _no_data(ax, "No activities with a distance in these weeks")
    return Chart(
        "weekly-distance",
        f"Weekly distance by sport (last {weeks} weeks)",
        "Stacked bars of kilometres per week, coloured by sport",
        _png(fig),
    )


def calendar_heatmap(activities: list[Activity], end: datetime.date, weeks: int = 53) -> Chart:
    """Moving time per day, one column per week (Monday on top), a year up to ``end``."""
    first = week_start(end) - datetime.timedelta(weeks=weeks - 1)
    minutes: dict[datetime.date, float] = collections.defaultdict(float)
    for activity in activities:
        if first <= activity.day <= end:
            minutes[activity.day] += activity.moving_s / 60
    grid: list[list[float]] = [[float("nan")] * weeks for _ in range(7)]
    for column in range(weeks):
        for row in range(7):
            day = first + datetime.timedelta(weeks=column, days=row)
            if day <= end:
                grid[row][column] = minutes.get(day, 0.0)
    fig = Figure(figsize=(12.0, 2.0), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    colours = LinearSegmentedColormap.from_list(
        "effort", ["#f3f4f6", "#fed7aa", "#fb923c", "#ea580c", "#9a3412"]
    )
    colours.set_bad("white")
    # The scale ends at the 95th percentile: one epic day must not wash out the rest.
    busy = sorted(v for v in minutes.values() if v > 0)
    top = busy[int(0.95 * (len(busy) - 1))] if busy else 0.0
    image = ax.imshow(grid, aspect="equal", cmap=colours, vmin=0, vmax=max(top, 60.0))
    ax.set_yticks([0, 2, 4, 6], ["Mon", "Wed", "Fri", "Sun"], fontsize=7, color=INK)
    months = [
        (column, (first + datetime.timedelta(weeks=column)).strftime("%b"))
        for column in range(weeks)
        if (first + datetime.timedelta(weeks=column)).day <= 7
    ]
    ax.set_xticks([c for c, _ in months], [m for _, m in months], fontsize=7, color=INK)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    # White gaps between the days, like a wall calendar.
    ax.set_xticks([c - 0.5 for c in range(1, weeks)], minor=True)
    ax.set_yticks([r - 0.5 for r in range(1, 7)], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(image, ax=ax, shrink=0.8, pad=0.01)
    bar.ax.tick_params(labelsize=7)
    bar.set_label("minutes", fontsize=7)
    return Chart(
        "calendar-heatmap",
        "Training calendar (moving time per day)",
        "A year of days as squares, darker for more moving time",
        _png(fig),
    )


def mm_ss(value: float, _position: float | None = None) -> str:
    """Minutes as m:ss, how runners read a pace (also a matplotlib tick formatter)."""
    minutes, seconds = divmod(round(value * 60), 60)
    return f"{minutes}:{seconds:02d}"


def pace_trend(activities: list[Activity], end: datetime.date, days: int = 365) -> Chart:
    """Pace of each run (min/km, faster is higher) and the median of the last five."""
    start = end - datetime.timedelta(days=days)
    runs = [
        a
        for a in activities
        if a.group == "Run" and start <= a.day <= end and a.pace_min_per_km is not None
    ]
    # Walking breaks and GPS glitches make paces beyond 15 min/km noise, not running.
    runs = [a for a in runs if 2.0 <= t.cast("float", a.pace_min_per_km) <= 15.0]
    fig, ax = _figure()
    if runs:
        days_ = [a.day for a in runs]
        paces = [t.cast("float", a.pace_min_per_km) for a in runs]
        ax.scatter(days_, paces, s=14, color=GROUP_COLOURS["Run"], alpha=0.55, label="run")  # type: ignore[arg-type]
        trend = [statistics.median(paces[max(0, i - 4) : i + 1]) for i in range(len(paces))]
        ax.plot(days_, trend, color="#9a3412", linewidth=2, label="median of the last 5 runs")  # type: ignore[arg-type]
        ax.invert_yaxis()
        ax.yaxis.set_major_formatter(FuncFormatter(mm_ss))
        ax.set_ylabel("pace (min/km)", color=INK, fontsize=9)
        ax.legend(frameon=False, fontsize=8, loc="upper left")
    else:
        _no_data(ax, "No runs in the last year")
    return Chart(
        "pace-trend",
        "Running pace trend (last 12 months)",
        "Dots for each run's pace in minutes per kilometre, with a median line",
        _png(fig),
    )


def monthly_elevation(activities: list[Activity], end: datetime.date, months: int = 12) -> Chart:
    """Elevation gain per month and sport group, the last ``months`` months."""
    first = end.replace(day=1)
    periods = [first]
    for _ in range(months - 1):
        periods.insert(0, (periods[0] - datetime.timedelta(days=1)).replace(day=1))
    values: dict[str, dict[datetime.date, float]] = {
        g: collections.defaultdict(float) for g in GROUPS
    }
    for activity in activities:
        month = activity.month
        if periods[0] <= month <= first:
            values[activity.group][month] += activity.elevation_m
    fig, ax = _figure()
    if any(sum(v.values()) for v in values.values()):
        _stacked_bars(ax, periods, values, width=22)
        ax.set_ylabel("metres climbed", color=INK, fontsize=9)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _p: _month_label(x)))
    else:
        _no_data(ax, "No climbing in these months")
    return Chart(
        "elevation",
        f"Elevation gain per month (last {months} months)",
        "Stacked bars of metres climbed per month, coloured by sport",
        _png(fig),
    )


def _month_label(value: float) -> str:
    from matplotlib.dates import num2date

    return num2date(value).strftime("%b %y")


def gear_mileage(gear: dict[str, Gear]) -> Chart:
    """Kilometres per bike and pair of shoes (the ``gear_mileage`` model), Strava's as a tick."""
    km = {g: item.km for g, item in gear.items()}
    ids = sorted(gear, key=lambda g: km[g])
    fig, ax = _figure(width=12.0, height=max(1.6, 0.32 * len(ids) + 0.8))
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", color=GRID, linewidth=0.8)
    if ids:
        labels = [gear[g].name for g in ids]
        colours = [
            GROUP_COLOURS["Ride"] if gear[g].kind == "bike" else GROUP_COLOURS["Run"] for g in ids
        ]
        ax.barh(labels, [km[g] for g in ids], color=colours, height=0.6)
        strava = [(label, gear[g].strava_km) for label, g in zip(labels, ids, strict=True)]
        if any(value is not None for _, value in strava):
            ax.scatter(
                [v for _, v in strava if v is not None],
                [label for label, v in strava if v is not None],
                marker="|",
                s=300,
                color=INK,
                label="Strava's total for the gear",
                zorder=3,
            )
            ax.legend(frameon=False, fontsize=8, loc="lower right")
        ax.set_xlabel("km in the loaded activities", color=INK, fontsize=9)
    else:
        _no_data(ax, "No gear recorded")
    return Chart(
        "gear-mileage",
        "Gear mileage",
        "Horizontal bars of kilometres per bike (blue) and pair of shoes (orange)",
        _png(fig),
    )
