"""The HTTP layer: a threading ``http.server`` that hands each request to the simulator.

Only socket-level matters live here: reading the request, writing status, headers and body,
the ``Date`` header from the simulator's clock (so a fake clock shows in ``Date`` too), and
closing the connection without an answer for the ``reset`` fault. One request per
connection (HTTP/1.0 style, ``Connection: close``) keeps the server simple and predictable.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from strava_simulator import timeutil
from strava_simulator.messages import Request

if TYPE_CHECKING:
    from strava_simulator.simulator import StravaSimulator

MAX_BODY = 1 << 20


class SimHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its simulator; daemon threads so stop never hangs."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: StravaSimulator) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.simulator = simulator


class _Handler(BaseHTTPRequestHandler):
    server: SimHTTPServer
    server_version = "nginx"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        now = self.server.simulator.now() if timestamp is None else timestamp
        return timeutil.http_date(now)

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default access log (the CLI logs with tokens redacted instead)."""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        request = Request(
            method=self.command,
            path=split.path or "/",
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        response = self.server.simulator.handle(request)
        if response.reset:
            self._reset()
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no answer at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def finish(self) -> None:
        # The client may have gone away, or we reset the connection ourselves.
        with contextlib.suppress(OSError):
            super().finish()

    do_GET = _dispatch
    do_HEAD = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_PATCH = _dispatch
    do_DELETE = _dispatch


def make_server(simulator: StravaSimulator, host: str, port: int) -> SimHTTPServer:
    """Bind a server for ``simulator`` (port 0 picks a free port)."""
    return SimHTTPServer((host, port), simulator)
