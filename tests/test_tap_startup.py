"""What the tap loads when it starts (issue 27: start-up is a third of a daily run's CPU).

The SDK imports joblib, which imports numpy whenever it is installed (timezonefinder and
the dashboard extra install it): about 0.2 s of every start for a library the tap never
calls. ``tap_strava/__init__.py`` hides numpy while the SDK loads; these tests check it
stays out of a start, and that numpy still works for the archive's time zones afterwards.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("numpy")
pytest.importorskip("timezonefinder")


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_starting_the_tap_does_not_import_numpy():
    loaded = _python(
        "import sys, tap_strava.tap\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'numpy'))"
    )
    assert loaded == "[]"


def test_the_archive_time_zones_still_get_numpy_after_the_tap_started():
    zone = _python(
        "import tap_strava.tap\n"
        "from timezonefinder import TimezoneFinder\n"
        "print(TimezoneFinder().timezone_at(lng=2.3522, lat=48.8566))"
    )
    assert zone == "Europe/Paris"


def test_a_host_that_loaded_numpy_first_keeps_it():
    same = _python(
        "import numpy, sys\n"
        "before = numpy\n"
        "import tap_strava.tap\n"
        "print(sys.modules['numpy'] is before)"
    )
    assert same == "True"
