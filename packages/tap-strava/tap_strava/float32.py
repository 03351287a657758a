"""Numbers Strava's exporter widened from 32-bit floats, written back as the file meant them.

``activities.csv`` prints its measures as 32-bit floats widened to doubles:
``3322.949951171875`` is the float32 nearest 3322.95, and ``1748.199951171875`` is 1748.2.
Sent on as they are, every destination shows digits the export never measured. The
rule (docs/export-archive.md, "Numbers"): a value that is *exactly* a 32-bit float is
replaced by the shortest decimal that reads back as the same 32-bit float (``3322.95``),
not rounded to a fixed number of places (that would cut 0.0001234 or keep 1748.2000).
A value that is not exactly a 32-bit float (``3322.95`` as printed by an older export,
German ``9,44``) did not come through one and is left as it is; a float32 that is already
short (``1428.0``, ``0.5``) is unchanged by the rule, and so is any whole number
(see :func:`unwiden`).
"""

from __future__ import annotations

import math
import struct

_F32 = struct.Struct("<f")
#: A float32 has at most 9 significant decimal digits that matter (FLT_DECIMAL_DIG).
_MAX_DIGITS = 9


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float, widened back (OverflowError if too big)."""
    widened: float = _F32.unpack(_F32.pack(value))[0]
    return widened


def is_float32(value: float) -> bool:
    """Whether ``value`` is exactly a finite 32-bit float."""
    if not math.isfinite(value):
        return False
    try:
        return as_float32(value) == value
    except OverflowError:
        return False


def shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 as ``value``, as a float."""
    target = as_float32(value)
    for digits in range(1, _MAX_DIGITS + 1):
        candidate = float(f"{target:.{digits}g}")
        if as_float32(candidate) == target:
            return candidate
    return target  # not reached: 9 digits always read back


def unwiden(value: float) -> float:
    """A number of the export: its shortest float32 decimal if it is a float32, else itself.

    Whole numbers are left alone: below 2**24 a whole float32 is its own shortest decimal
    already, and above it every float32 is whole, so a whole value there (epoch seconds
    such as ``Sunrise Time``, 1717213184.0) cannot be told from a widened one and is not
    moved to another whole number (1717213200.0) of the same float32.
    """
    if not is_float32(value) or value.is_integer():
        return value
    return shortest_float32(value)
