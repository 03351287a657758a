"""``strava-sim``: run the simulator as a process (for the demo and ``meltano run`` tests).

Start it with ``--port 0 --info-file sim.json`` and read the chosen port and the client
credentials from the file once it appears; it is written (atomically) only when the server
is listening. One line per request goes to stderr, without token values. SIGTERM or SIGINT
stop it cleanly with exit status 0.

``strava-sim export-archive --out PATH [...]`` writes a bulk export archive instead
(:mod:`strava_simulator.archive_cli`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from urllib.parse import urlencode

from strava_simulator.records import RequestRecord
from strava_simulator.simulator import StravaSimulator


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (defaults are Strava's own limits and lifetimes)."""
    parser = argparse.ArgumentParser(
        prog="strava-sim",
        description="Run a local, faithful Strava API v3 simulator "
        "('strava-sim export-archive --help': write a bulk export archive instead).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port, 0 = any free (8765)")
    parser.add_argument("--seed", type=int, default=1, help="data generator seed (1)")
    parser.add_argument("--activities", type=int, default=300, help="history size (300)")
    parser.add_argument("--client-id", default="12345")
    parser.add_argument("--client-secret", default="sim-client-secret")
    parser.add_argument(
        "--refresh-token",
        default=None,
        help="initial refresh token (default: derived from the seed)",
    )
    parser.add_argument("--scope", default="read,activity:read_all,profile:read_all")
    parser.add_argument(
        "--window-seconds",
        type=float,
        default=900.0,
        help="length of the '15-minute' rate-limit window (900)",
    )
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=86400.0,
        help="length of the daily rate-limit window (86400)",
    )
    parser.add_argument("--read-limit-15min", type=int, default=100)
    parser.add_argument("--read-limit-daily", type=int, default=1000)
    parser.add_argument("--overall-limit-15min", type=int, default=200)
    parser.add_argument("--overall-limit-daily", type=int, default=2000)
    parser.add_argument(
        "--access-token-lifetime",
        type=int,
        default=21600,
        help="seconds an access token lives (21600 = 6 h)",
    )
    parser.add_argument(
        "--no-rotate",
        action="store_true",
        help="keep the same refresh token on refresh (Strava rotates)",
    )
    parser.add_argument(
        "--info-file", type=Path, default=None, help="write the /_sim/info JSON here once listening"
    )
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.add_argument(
        "--hostile",
        action="store_true",
        help="Strava's worst days: unsorted answers to `after`, short pages that are not the "
        "last, activities dated 2031 and 1999, undeclared keys, uploads while listing",
    )
    return parser


def _log(record: RequestRecord) -> None:
    """Log one request: method, path (secrets in the query already redacted), status."""
    query = f"?{urlencode(record.query, safe='[],:')}" if record.query else ""
    status = "RESET" if record.status is None else str(record.status)
    fault = f" (fault: {record.fault})" if record.fault else ""
    print(f"{record.method} {record.path}{query} {status}{fault}", file=sys.stderr, flush=True)


def _write_info(path: Path, info: dict[str, object]) -> None:
    """Write atomically so a reader never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT (or, with ``export-archive``, write an archive)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["export-archive"]:
        # Imported here: the server itself stays standard library only (no FIT/GPX/TCX libs).
        from strava_simulator import archive_cli

        return archive_cli.main(arguments[1:])
    args = build_parser().parse_args(arguments)
    sim = StravaSimulator(
        seed=args.seed,
        activity_count=args.activities,
        client_id=args.client_id,
        client_secret=args.client_secret,
        access_token_lifetime=args.access_token_lifetime,
        rotate_refresh_tokens=not args.no_rotate,
        read_limit_15min=args.read_limit_15min,
        read_limit_daily=args.read_limit_daily,
        overall_limit_15min=args.overall_limit_15min,
        overall_limit_daily=args.overall_limit_daily,
        window_seconds=args.window_seconds,
        day_seconds=args.day_seconds,
        scope=args.scope,
        host=args.host,
        port=args.port,
        initial_refresh_token=args.refresh_token,
        request_log=None if args.quiet else _log,
        hostile=args.hostile,
    )
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        print(f"strava-sim: got signal {signum}, stopping", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sim.start()
    try:
        if args.info_file is not None:
            _write_info(args.info_file, sim.info())
        print(
            f"strava-sim: api_url={sim.api_url} token_url={sim.token_url} "
            f"athlete_id={sim.athlete_id} activities={len(sim.activities)}",
            file=sys.stderr,
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
