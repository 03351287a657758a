"""``strava-forget-athlete``: remove one athlete's data, as Strava's agreement asks on revocation."""
