"""A faithful local simulator of the Strava API v3, for tests, demos and users' own tests.

It behaves like Strava rather than like what a client hopes for: rotating refresh tokens
that die at once, exclusive ``after``/``before`` with Strava's changing sort orders, a
``per_page`` silently capped at 200, milliseconds rejected, "Only You" activities hidden
without ``activity:read_all``, shared 15-minute and daily quotas answered with 429, and
injectable network and server faults. Data come from a seeded generator.

Quick start::

    from strava_simulator import StravaSimulator

    with StravaSimulator(seed=1, activity_count=300) as sim:
        ...  # point a client at sim.api_url and sim.token_url
"""

from strava_simulator.faults import Fault
from strava_simulator.ratelimits import Limits
from strava_simulator.records import RequestRecord
from strava_simulator.simulator import StravaSimulator

__all__ = ["Fault", "Limits", "RequestRecord", "StravaSimulator"]
