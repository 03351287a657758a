"""Route pictures on Web-Mercator pixels, drawn with numpy and Pillow: a heatmap, a route.

As geo-activity-playground does: each track is drawn as lines on its own small canvas
(``ImageDraw.line``), the canvases are added into one count per pixel (so a pixel counts
the activities that passed it, not the samples), and the counts are coloured on a log
scale. No tiles and no network: the background is a flat colour, so the picture renders
offline and inlines into the report as a PNG. Pillow comes with matplotlib (the
``dashboard`` extra); datashader would add hundreds of MB and seconds of JIT.

Coordinates are Web-Mercator world units (0..1, see :func:`strava_dashboard.privacy.mercator`)
scaled to the picture; the scale is continuous (not a tile zoom level) so that the area
fills the picture, capped at :data:`MAX_PIXELS_PER_WORLD` (about a metre per pixel).
"""

from __future__ import annotations

import dataclasses
import io
import math
import typing as t

import numpy as np
from PIL import Image, ImageDraw

if t.TYPE_CHECKING:
    from collections.abc import Sequence

#: Parts of one track: ``(n, 2)`` arrays of world x, y.
Parts = t.Sequence[np.ndarray]

HEAT_BACKGROUND = (17, 24, 39)
ROUTE_BACKGROUND = (248, 250, 252)
#: Colour stops of the heat scale (fraction of log(count) / log(max count), RGB).
HEAT_STOPS = (
    (0.0, (190, 60, 40)),
    (0.45, (249, 115, 22)),
    (0.8, (253, 224, 71)),
    (1.0, (255, 255, 235)),
)
#: Zoom 17 of the tile pyramid (256 px per tile): about 1.2 m per pixel at the equator.
MAX_PIXELS_PER_WORLD = 256 * 2**17


@dataclasses.dataclass(frozen=True)
class Frame:
    """Which part of the world a picture shows: top-left corner, pixels per world unit."""

    x0: float
    y0: float
    scale: float
    width: int
    height: int

    def pixels(self, world: np.ndarray) -> np.ndarray:
        """World ``(n, 2)`` x, y as picture pixels (x right, y down)."""
        return (np.asarray(world, dtype=float) - (self.x0, self.y0)) * self.scale


def frame_for(
    bounds: tuple[float, float, float, float], width: int, height: int, margin: int = 8
) -> Frame:
    """The frame showing ``(xmin, ymin, xmax, ymax)`` whole and centred, ``margin`` px free."""
    xmin, ymin, xmax, ymax = bounds
    span_x, span_y = max(xmax - xmin, 1e-12), max(ymax - ymin, 1e-12)
    scale = min((width - 2 * margin) / span_x, (height - 2 * margin) / span_y)
    scale = min(scale, MAX_PIXELS_PER_WORLD)
    cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
    return Frame(cx - width / 2 / scale, cy - height / 2 / scale, scale, width, height)


def bounds_of(tracks: Sequence[Parts]) -> tuple[float, float, float, float] | None:
    """The box around every point of the tracks (None without a point)."""
    points = [p for parts in tracks for p in parts if len(p)]
    if not points:
        return None
    stacked = np.concatenate(points)
    (xmin, ymin), (xmax, ymax) = stacked.min(axis=0), stacked.max(axis=0)
    return float(xmin), float(ymin), float(xmax), float(ymax)


def _draw_into(counts: np.ndarray, parts: Parts, frame: Frame, width: int) -> None:
    """Add 1 to every pixel one track's lines cover (once per track, however often)."""
    pixel_parts = [frame.pixels(p) for p in parts if len(p) >= 2]
    if not pixel_parts:
        return
    stacked = np.concatenate(pixel_parts)
    lo = np.floor(stacked.min(axis=0)).astype(int) - width
    hi = np.ceil(stacked.max(axis=0)).astype(int) + width + 1
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), frame.width), min(int(hi[1]), frame.height)
    if x1 <= x0 or y1 <= y0:
        return  # wholly outside the picture
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    for part in pixel_parts:
        draw.line((part - (x0, y0)).ravel().tolist(), fill=1, width=width)
    counts[y0:y1, x0:x1] += np.asarray(canvas, dtype=counts.dtype)


def heat_counts(tracks: Sequence[Parts], frame: Frame, width: int = 1) -> np.ndarray:
    """How many tracks pass each pixel of the frame (``height x width``)."""
    counts = np.zeros((frame.height, frame.width), dtype=np.uint32)
    for parts in tracks:
        _draw_into(counts, parts, frame, width)
    return counts


def _heat_lut(levels: int = 256) -> np.ndarray:
    stops = np.array([s for s, _ in HEAT_STOPS])
    colours = np.array([c for _, c in HEAT_STOPS], dtype=float)
    grid = np.linspace(0.0, 1.0, levels)
    return np.stack([np.interp(grid, stops, colours[:, i]) for i in range(3)], axis=1).astype(
        np.uint8
    )


def colour_counts(counts: np.ndarray) -> np.ndarray:
    """An RGB picture: the background where no track passed, the heat scale elsewhere."""
    rgb = np.empty((*counts.shape, 3), dtype=np.uint8)
    rgb[:] = HEAT_BACKGROUND
    seen = counts > 0
    if seen.any():
        top = float(counts.max())
        level = np.log1p(counts[seen].astype(float)) / math.log1p(top) if top > 1 else 0.0
        lut = _heat_lut()
        rgb[seen] = lut[np.clip(np.asarray(level) * (len(lut) - 1), 0, len(lut) - 1).astype(int)]
    return rgb


def png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB array."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def heatmap_png(tracks: Sequence[Parts], frame: Frame, width: int = 1) -> bytes:
    """The heatmap of the tracks in the frame, as PNG."""
    return png(colour_counts(heat_counts(tracks, frame, width)))


def route_png(parts: Parts, frame: Frame, colour: str, width: int = 2) -> bytes:
    """One route in its colour (``#rrggbb``) on a light background, as PNG."""
    image = Image.new("RGB", (frame.width, frame.height), ROUTE_BACKGROUND)
    draw = ImageDraw.Draw(image)
    for part in parts:
        if len(part) >= 2:
            draw.line(frame.pixels(part).ravel().tolist(), fill=colour, width=width, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
