"""tap-strava: a Singer tap for the Strava API, built with the Meltano Singer SDK.

The SDK is imported here first, with numpy hidden while it loads (:func:`_import_sdk`).
"""

from __future__ import annotations

import sys


def _import_sdk() -> None:
    """Import ``singer_sdk`` without letting joblib pull in numpy.

    ``singer_sdk`` imports ``target_base``, which imports joblib (for a target's parallel
    sink drains), and joblib imports numpy whenever it is installed: about 0.15-0.3 s of
    every tap start-up (issue 27's bench: a sixth of the tap's CPU over 10,000 activities)
    for a library the tap never calls. numpy is installed beside the tap by timezonefinder
    (the archive's local times) and by the dashboard extra. A ``None`` in ``sys.modules``
    makes ``import numpy`` raise ImportError for the length of the SDK's import only, so
    joblib takes its no-numpy path; afterwards numpy imports normally (timezonefinder,
    imported lazily by :mod:`tap_strava.archive_local_time`, gets the real one).
    Nothing is done when numpy or the SDK is already loaded (a test process, a host
    program that imported them first).
    """
    if "singer_sdk" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]
    try:
        import singer_sdk  # noqa: F401
    finally:
        if sys.modules.get("numpy", 0) is None:
            del sys.modules["numpy"]


_import_sdk()
