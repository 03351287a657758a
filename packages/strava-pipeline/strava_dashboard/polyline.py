"""Google's encoded polyline, as Strava sends it in ``map.summary_polyline``.

Decoded here (twenty lines) rather than with a library: none is a dependency of the
project yet, and the format is small and fixed (precision 1e-5; each value a zig-zag
varint in 5-bit chunks offset by 63, latitude and longitude as deltas from the previous
point). https://developers.google.com/maps/documentation/utilities/polylinealgorithm
"""

from __future__ import annotations


class PolylineError(ValueError):
    """The text is not an encoded polyline (cut short or holding other characters)."""


def decode(encoded: str, precision: int = 5) -> list[tuple[float, float]]:
    """``[(lat, lng), ...]`` of an encoded polyline; ``[]`` for ``""``."""
    factor = 10**precision
    points: list[tuple[float, float]] = []
    index, lat, lng = 0, 0, 0
    length = len(encoded)
    while index < length:
        deltas = []
        for _ in range(2):
            shift, result = 0, 0
            while True:
                if index >= length:
                    msg = "encoded polyline ends inside a value"
                    raise PolylineError(msg)
                byte = ord(encoded[index]) - 63
                index += 1
                if not 0 <= byte < 64:
                    msg = f"not an encoded polyline character: {encoded[index - 1]!r}"
                    raise PolylineError(msg)
                result |= (byte & 0x1F) << shift
                shift += 5
                if byte < 0x20:
                    break
            deltas.append(~(result >> 1) if result & 1 else result >> 1)
        lat += deltas[0]
        lng += deltas[1]
        points.append((lat / factor, lng / factor))
    return points
