"""``python -m strava_simulator`` runs the ``strava-sim`` command."""

from strava_simulator.cli import main

raise SystemExit(main())
