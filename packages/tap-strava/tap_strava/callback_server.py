"""The one-shot HTTP listener on ``127.0.0.1`` that receives Strava's OAuth redirect.

After consent, Strava sends the browser to ``redirect_uri`` with ``code``, ``scope`` and
``state`` in the query. Listening locally lets ``tap-strava-auth`` take the code itself
instead of asking the user to copy it out of the address bar. The server answers one
redirect, never logs a request (the query holds the authorization code) and gives up
after a timeout so that a run without a browser does not hang forever.
"""

from __future__ import annotations

import errno
import html
import time
import typing as t
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

from tap_strava.errors import AuthorizeError

if t.TYPE_CHECKING:
    from collections.abc import Callable

CALLBACK_HOST = "127.0.0.1"
CALLBACK_PATH = "/exchange_token"
# While waiting for the browser, a reminder this often (a silent terminal looks hung).
WAIT_REMINDER_SECONDS = 60.0

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>tap-strava</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>{title}</h1>
<p>{text}</p></body></html>"""


class CallbackServer(HTTPServer):
    """Answers the browser's redirect once and keeps its query for the command.

    With ``on_redirect`` set, the page is only sent once that has run (the code exchanged,
    the token written): the browser says "authorized" only when it is true.
    """

    expected_path: str = CALLBACK_PATH
    result: dict[str, str] | None = None
    on_redirect: Callable[[dict[str, str]], tuple[str, str]] | None = None


class _CallbackHandler(BaseHTTPRequestHandler):
    server: CallbackServer
    # A browser's speculative connection that never sends a request must not block us.
    timeout = 5

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the default access log would print the authorization code."""

    def do_GET(self) -> None:
        """The browser's redirect (any other path gets a 404 and we keep waiting)."""
        split = urlsplit(self.path)
        if split.path != self.server.expected_path:
            self._page(404, "Not here", "This is tap-strava-auth's one-time callback.")
            return
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if self.server.on_redirect is not None:
            title, text = self.server.on_redirect(query)
            self._page(200, title, text)
        elif query.get("error"):
            self._page(
                200,
                "Access not granted",
                "Strava did not authorize the app. Return to the terminal.",
            )
        else:
            self._page(
                200,
                "Authorization received",
                "You can close this tab and return to the terminal.",
            )
        self.server.result = query

    def _page(self, status: int, title: str, text: str) -> None:
        body = PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def open_callback_server(port: int) -> CallbackServer:
    """Listen on ``127.0.0.1:port`` (0 = any free port) before the user is sent away."""
    try:
        return CallbackServer((CALLBACK_HOST, port), _CallbackHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            msg = (
                f"Port {port} on {CALLBACK_HOST} is already in use: pass --port with a free "
                "port (any port works; Strava only checks the callback domain)"
            )
        else:
            msg = f"Cannot listen on {CALLBACK_HOST}:{port} ({exc.strerror}): pass --port"
        raise AuthorizeError(msg) from exc


def wait_for_redirect(
    server: CallbackServer,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Serve requests until the redirect arrives or ``timeout`` seconds have passed.

    With ``say``, a reminder every ``WAIT_REMINDER_SECONDS``: a terminal that shows
    nothing for minutes looks hung.
    """
    deadline = clock() + timeout
    next_reminder = clock() + WAIT_REMINDER_SECONDS
    while server.result is None:
        remaining = deadline - clock()
        if say is not None and clock() >= next_reminder and remaining > 0:
            say(f"Still waiting for Strava's redirect ({remaining:.0f} s left)")
            next_reminder += WAIT_REMINDER_SECONDS
        if remaining <= 0:
            msg = (
                f"No redirect from Strava within {timeout:.0f} s: open the URL above in a "
                "browser on this machine (or forward the port with ssh -L) and approve, or "
                "run again with a longer --timeout"
            )
            raise AuthorizeError(msg)
        server.timeout = min(remaining, 0.5)
        server.handle_request()
    return server.result
