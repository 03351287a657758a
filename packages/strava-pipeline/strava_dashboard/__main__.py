"""``python -m strava_dashboard``: the same as ``tap-strava-dashboard``."""

from strava_dashboard.cli import main

main()
