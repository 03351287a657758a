"""Keys the tap writes into its Singer state beside the SDK's bookmarks.

Downstream reads them too: the run-tally mapper and ``strava-job`` report a run with a
quota stop or skipped athletes as *partial*.
"""

# Set in a stream's (partition) state when a spent quota ended it early; removed when a
# later run completes it.
QUOTA_STOP_KEY = "quota_stop"
# With a quota stop: the partition got no request at all in that run (it goes first next).
QUOTA_STARVED_KEY = "quota_starved"
# Set in the ``activities`` stream state when some athletes were skipped (several athletes):
# label -> reason.
SKIPPED_ATHLETES_KEY = "skipped_athletes"
