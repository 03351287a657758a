"""Run notifications for the Strava pipeline: a tally mapper and the job wrapper cron calls."""
