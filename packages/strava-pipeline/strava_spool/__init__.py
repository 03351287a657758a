"""One extraction for every target: the spool target, the replay tap and their folder.

``tap-strava target-strava-spool`` writes a run's Singer messages verbatim to one file
per run (fsynced and renamed before the tap's state is passed on); ``tap-strava-replay``
applies the pending files in order into each target, with a state of its own per target.
See docs/operations.md, "One extraction, two targets".
"""
