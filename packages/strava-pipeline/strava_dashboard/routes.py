"""One athlete's routes for the report: read, hidden where private, framed, drawn.

Every track is read once (:mod:`strava_dashboard.tracks`), passed through the privacy
zones (:func:`strava_dashboard.privacy.hide`) and kept only as the visible parts in
Web-Mercator coordinates; nothing downstream sees a hidden point. The heatmap frames the
area most tracks are in, not a box around every trip: the tracks whose centre lies within
:data:`FRAME_RADIUS_KM` of the median centre (a holiday abroad would otherwise shrink the
home area to a dot); the caption says how many are outside.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import typing as t

import numpy as np

from strava_dashboard import heatmap, privacy
from strava_dashboard import tracks as track_reader
from strava_dashboard.data import Database, Dataset

if t.TYPE_CHECKING:
    from collections.abc import Sequence

HEATMAP_SIZE = (1200, 720)
ROUTE_SIZE = (260, 200)
RECENT_MAPS = 12
#: Line widths in pixels: the heatmap's (each track counts once per pixel it covers) and
#: a route map's.
HEAT_LINE = 2
ROUTE_LINE = 2
FRAME_RADIUS_KM = 80.0


@dataclasses.dataclass(frozen=True)
class RouteMap:
    """A recent activity's map: its PNG, or None when every point was in a zone."""

    activity_id: int
    source: str
    png: bytes | None
    frame: heatmap.Frame | None = None


@dataclasses.dataclass
class Routes:
    """What the report shows of the routes."""

    heatmap_png: bytes | None = None
    frame: heatmap.Frame | None = None
    maps: list[RouteMap] = dataclasses.field(default_factory=list)
    #: Tracks per source (``api-stream``, ``archive-track``, ``api-polyline``).
    sources: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Activity id to the source its route came from.
    source_of: dict[int, str] = dataclasses.field(default_factory=dict)
    in_frame: int = 0
    outside_frame: int = 0
    hidden_points: int = 0
    zones: int = 0


def to_world(parts: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Lat/lon parts as Web-Mercator world x, y."""
    world = []
    for part in parts:
        x, y = privacy.mercator(part[:, 0], part[:, 1])
        world.append(np.column_stack((x, y)))
    return world


def _centre(parts: Sequence[np.ndarray]) -> tuple[float, float]:
    box = heatmap.bounds_of([parts])
    assert box is not None
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def main_area(visible: dict[int, list[np.ndarray]]) -> list[int]:
    """The tracks whose centre is within FRAME_RADIUS_KM of the median centre."""
    if not visible:
        return []
    centres = {ident: _centre(parts) for ident, parts in visible.items()}
    mx = float(np.median([c[0] for c in centres.values()]))
    my = float(np.median([c[1] for c in centres.values()]))
    # World units to km at the median's latitude (Mercator stretches by 1/cos(lat)).
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * my))))
    km_per_world = 2 * math.pi * privacy.EARTH_RADIUS_M / 1000 * math.cos(math.radians(lat))
    return [
        ident
        for ident, (x, y) in centres.items()
        if math.hypot(x - mx, y - my) * km_per_world <= FRAME_RADIUS_KM
    ]


def build(
    db: Database,
    dataset: Dataset,
    zones: Sequence[privacy.Zone],
    *,
    recent: int = RECENT_MAPS,
    colour_of: t.Callable[[int], str] = lambda _ident: "#ea580c",
) -> Routes:
    """Read every route of the dataset's activities once and draw the report's maps."""
    result = Routes(zones=len(zones))
    visible: dict[int, list[np.ndarray]] = {}
    counts: collections.Counter[str] = collections.Counter()
    ids = [a.id for a in dataset.activities]
    for track in track_reader.tracks(db, dataset.athlete_id, ids):
        counts[track.source] += 1
        result.source_of[track.activity_id] = track.source
        parts, hidden = privacy.hide_and_count(track.points, zones)
        result.hidden_points += hidden
        if parts:
            visible[track.activity_id] = to_world(parts)
    result.sources = dict(counts)
    framed = main_area(visible)
    result.in_frame, result.outside_frame = len(framed), len(visible) - len(framed)
    box = heatmap.bounds_of([visible[i] for i in framed])
    if box is not None:
        result.frame = heatmap.frame_for(box, *HEATMAP_SIZE)
        result.heatmap_png = heatmap.heatmap_png(
            [visible[i] for i in framed], result.frame, HEAT_LINE
        )
    with_route = [a.id for a in reversed(dataset.activities) if a.id in result.source_of]
    for ident in with_route[:recent]:
        shown = visible.get(ident)
        picture, frame = None, None
        if shown:
            route_box = heatmap.bounds_of([shown])
            assert route_box is not None
            frame = heatmap.frame_for(route_box, *ROUTE_SIZE)
            picture = heatmap.route_png(shown, frame, colour_of(ident), ROUTE_LINE)
        result.maps.append(RouteMap(ident, result.source_of[ident], picture, frame))
    return result
