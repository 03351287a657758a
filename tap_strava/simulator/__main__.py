"""``python -m tap_strava.simulator`` runs the ``strava-sim`` command."""

from tap_strava.simulator.cli import main

raise SystemExit(main())
