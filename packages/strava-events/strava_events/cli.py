"""``strava-events``: serve, manage the push subscription, look at the queue.

Every failure an operator can fix is one line on stderr (``strava-events: ...``) and exit
code 2; nothing here prints a secret.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import typing as t

from strava_events import subscription_record, subscriptions
from strava_events.queue import StoreError, open_store
from strava_events.settings import SettingsError, load_settings, load_strava_app

if t.TYPE_CHECKING:
    from collections.abc import Sequence

#: Below this many open files, a few hundred idle connections can refuse valid ones.
MIN_OPEN_FILES = 8192


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strava-events",
        description="Receiver of Strava push events and the app's push subscription "
        "(settings: STRAVA_EVENTS_* environment variables, see docs/events.md)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the receiver (Hypercorn)")
    serve.add_argument("--host", help="listen address (default STRAVA_EVENTS_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default STRAVA_EVENTS_PORT, 8787)")
    serve.add_argument(
        "--tap-port",
        type=int,
        help="port of the tap's interface on 127.0.0.1 (default STRAVA_EVENTS_TAP_PORT, 8788)",
    )
    subscription = commands.add_parser("subscription", help="the app's push subscription")
    actions = subscription.add_subparsers(dest="action", required=True)
    actions.add_parser("create", help="create it (the receiver must be reachable)")
    actions.add_parser("show", help="show it")
    delete = actions.add_parser("delete", help="delete it")
    delete.add_argument(
        "--id", type=int, help="the subscription id (default: the one `show` finds)"
    )
    pending = commands.add_parser("pending", help="print the pending events, one JSON a line")
    pending.add_argument("--limit", type=int, default=100)
    return parser


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from strava_events import server
    from strava_events.receiver import create_apps

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    soft, hard = server.raise_open_files_limit()
    if soft < MIN_OPEN_FILES:
        logging.getLogger("strava_events.server").warning(
            "only %d open files allowed (hard limit %d): idle connections can exhaust them; "
            "set LimitNOFILE=65536 in the systemd unit (docs/events.md)",
            soft,
            hard,
        )
    apps = create_apps(settings)
    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    tap_port = args.tap_port if args.tap_port is not None else settings.tap_port
    try:
        asyncio.run(server.run(apps, settings, host, port, tap_port))
    except OSError as exc:
        print(
            f"strava-events: cannot listen on {host}:{port} or 127.0.0.1:{tap_port}: "
            f"{exc.strerror or exc} (is another receiver running? set "
            "STRAVA_EVENTS_PORT / STRAVA_EVENTS_TAP_PORT)",
            file=sys.stderr,
        )
        return 2
    return 0


def _subscription(args: argparse.Namespace) -> int:
    app = load_strava_app()
    if args.action == "create":
        identifier = subscriptions.create(app)
        subscription_record.record(app.subscription_file, identifier)
        print(f"created push subscription {identifier}")
        print(f"recorded in {app.subscription_file}: a running `strava-events serve` uses it")
        return 0
    found = subscriptions.show(app)
    if args.action == "show":
        if not found:
            print("no push subscription")
        for item in found:
            same = ""
            if app.callback_url:
                same = (
                    " (this receiver)"
                    if item.callback_url == app.callback_url
                    else (" (NOT STRAVA_EVENTS_CALLBACK_URL)")
                )
            print(
                f"subscription {item.id}: {subscriptions.mask_url(item.callback_url)}{same}, "
                f"created {item.created_at or '?'}"
            )
        return 0
    identifier = args.id
    if identifier is None:
        if not found:
            print("no push subscription to delete")
            return 0
        identifier = found[0].id
    subscriptions.delete(app, identifier)
    subscription_record.forget(app.subscription_file, identifier)
    print(f"deleted push subscription {identifier}")
    return 0


def _pending(args: argparse.Namespace) -> int:
    from strava_events.receiver import iso

    settings = load_settings()
    store = open_store(settings)
    try:
        store.setup()
        for stored in store.pending(max(1, min(args.limit, 10_000))):
            line = {
                "key": stored.key,
                "received_at": iso(stored.received_at),
                "event": stored.event.as_dict(),
            }
            print(json.dumps(line, sort_keys=True))
    finally:
        store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "subscription":
            return _subscription(args)
        return _pending(args)
    except (SettingsError, subscriptions.SubscriptionError, StoreError) as exc:
        print(f"strava-events: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(
            f"strava-events: {exc.name or 'a module'} is not installed: install "
            "strava-events with its extra (pip install 'strava-events[token-store]') or "
            "set STRAVA_EVENTS_ATHLETE_IDS instead of STRAVA_EVENTS_TOKEN_STORE",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
