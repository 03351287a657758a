"""``strava-notify``: post one message, read from standard input, to the notification URLs.

The daily job posts its own message (strava_notify.job); this command posts anyone
else's through the same delivery (apprise, the same URL forms, retries, logging of scheme
and host only), for parts of the project that run elsewhere: the club's Dagster
definitions pipe their daily message here, so that their environment needs neither
apprise nor a copy of the webhooks' handling.

Exit 0 when every URL took the message, 1 when one did not (one line each in the log),
2 when no URL is configured or the input is not a message.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from strava_notify import notify

#: A message is a few lines; anything much longer is not one.
MAX_BODY_BYTES = 64_000


def main(argv: list[str] | None = None) -> int:
    """Post stdin's text with ``--title`` and ``--type``; see the module docstring."""
    parser = argparse.ArgumentParser(prog="strava-notify", description=__doc__.split("\n")[0])
    parser.add_argument("--title", required=True, help="the message's title")
    parser.add_argument(
        "--type", choices=sorted(notify.NOTIFY_TYPES), default="info", help="default: info"
    )
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        help="a notification URL; repeatable (default: $STRAVA_NOTIFY_URLS)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="strava-notify: %(message)s")
    notify.quiet_url_loggers()
    urls = args.url or notify.split_urls(os.environ.get("STRAVA_NOTIFY_URLS"))
    if not urls:
        print(
            "strava-notify: error: no notification URL: set STRAVA_NOTIFY_URLS or pass --url",
            file=sys.stderr,
        )
        return 2
    raw = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        print(
            f"strava-notify: error: the message is over {MAX_BODY_BYTES} bytes: shorten it",
            file=sys.stderr,
        )
        return 2
    body = raw.decode("utf-8", errors="replace").strip()
    if not body:
        print("strava-notify: error: the message on standard input is empty", file=sys.stderr)
        return 2
    deliveries = notify.deliver(args.title, body, args.type, urls)
    return 0 if all(d.delivered for d in deliveries) else 1


if __name__ == "__main__":
    sys.exit(main())
