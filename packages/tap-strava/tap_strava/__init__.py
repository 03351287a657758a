"""tap-strava: a Singer tap for the Strava API, built with the Meltano Singer SDK."""
