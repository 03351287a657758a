"""``strava-forget-athlete`` and ``strava-apply-deletions``: data Strava says must go."""
