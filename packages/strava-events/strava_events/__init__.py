"""strava-events: the receiver of Strava's push events and the app's push subscription."""
