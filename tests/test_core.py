"""The SDK's standard tap tests, run against a simulated Strava account."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from strava_simulator import StravaSimulator
from tap_strava.tap import TapStrava

_SIMULATOR = StravaSimulator(
    seed=11,
    activity_count=60,
    read_limit_15min=100_000,
    read_limit_daily=1_000_000,
    overall_limit_15min=100_000,
    overall_limit_daily=1_000_000,
).start()
atexit.register(_SIMULATOR.stop)
_TOKENS = Path(tempfile.mkdtemp(prefix="tap-strava-core-")) / "tokens.json"

SAMPLE_CONFIG = {
    "client_id": _SIMULATOR.client_id,
    "client_secret": _SIMULATOR.client_secret,
    "refresh_token": _SIMULATOR.refresh_token,
    "api_url": _SIMULATOR.api_url,
    "token_url": _SIMULATOR.token_url,
    "token_store_path": str(_TOKENS),
    "activity_details_per_run": 20,
    "laps_per_run": 20,
    "zones_per_run": 20,
    "streams_per_run": 20,
}

TestTapStrava = get_tap_test_class(
    tap_class=TapStrava,
    config=SAMPLE_CONFIG,
    suite_config=SuiteConfig(max_records_limit=None),
)
