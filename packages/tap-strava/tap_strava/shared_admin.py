"""``tap-strava-shared``: look after the shared database of several workers.

    tap-strava-shared new-key       # print a fresh Fernet key for TAP_STRAVA_TOKEN_KEYS
    tap-strava-shared init          # create the schema and its tables (workers do it too)
    tap-strava-shared rotate-keys   # re-encrypt every token with the first key
    tap-strava-shared quota         # the ledger's recent windows, one line each

The database is ``--database-url`` or ``TAP_STRAVA_SHARED_DATABASE_URL``; the keys come
from ``TAP_STRAVA_TOKEN_KEYS`` only (never a command-line argument: it would show in the
process list). Errors are one line, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import sys

from tap_strava.errors import StravaUserError
from tap_strava.shared_database import URL_ENV, SharedDatabase, configured_url, describe
from tap_strava.token_keys import KEYS_ENV, TokenKeys, new_key


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 with one line on stderr otherwise."""
    parser = argparse.ArgumentParser(prog="tap-strava-shared", description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help=f"the shared database (default: ${URL_ENV})")
    parser.add_argument("command", choices=("new-key", "init", "rotate-keys", "quota"))
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except StravaUserError as exc:
        print(f"tap-strava-shared: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "new-key":
        print(new_key())
        return 0
    url = configured_url({"shared_database_url": args.database_url})
    if not url:
        print(
            f"tap-strava-shared: error: no database: give --database-url or set {URL_ENV}",
            file=sys.stderr,
        )
        return 2
    database = SharedDatabase(url)
    if args.command == "init":
        database.connect().close()
        print(f"The shared schema is in place in {describe(url)}")
    elif args.command == "rotate-keys":
        from tap_strava.token_store_postgres import rotate_keys

        keys = TokenKeys.from_environment()
        changed = rotate_keys(database, keys)
        print(
            f"Re-encrypted {changed} token row(s) with the first key of {KEYS_ENV}; the "
            "other keys can be dropped now"
        )
    else:
        from tap_strava.quota_ledger import QuotaLedger

        ledger = QuotaLedger(database)
        for window in ledger.windows()[:20]:
            print(
                f"{window['kind']:<6} start={window['window_start']} "
                f"length={window['window_seconds']}s used={window['used']} "
                f"reserved={window['reserved']} 429s={window['rate_limited']}"
            )
        ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
