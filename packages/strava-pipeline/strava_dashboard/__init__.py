"""The training dashboard: one self-contained HTML report from the loaded Strava tables."""
