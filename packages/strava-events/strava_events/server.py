"""Serving the receiver: Hypercorn, two listeners, one event loop.

Why Hypercorn (and not uvicorn, which served it before): the receiver must keep answering
Strava while strangers hold connections open. uvicorn 0.54/0.55 arms no timer when a
connection opens (its keep-alive timeout starts only after a response), so a connection
that never sends a byte, or sends its headers one byte at a time, stays open for ever, and
its ``limit_concurrency`` counts those connections: 2,000 idle ones made it answer 503 to
Strava. Hypercorn (0.18) starts its ``keep_alive_timeout`` when a connection opens
(``TCPServer.run`` restarts the idle task before the first read) and stops it only once a
request's headers are complete (``H11Protocol`` sends ``Updated(idle=False)`` on
``h11.Request``); trickling bytes do not restart it. So ``keep_alive_timeout`` is the
deadline for a request's headers, and Hypercorn has no connection cap that idle
connections could fill: what bounds them is that deadline and the open-files limit, which
``raise_open_files_limit`` lifts to its hard limit.

Granian (2.8.9) was measured too: its HTTP in Rust costs about a fifth of Hypercorn's CPU
for a burst, but its ``header_read_timeout`` starts at a connection's first byte: a
connection that never sends one stayed open for 90 s and more with a 5 s timeout, so
silent connections would pile up until the open-files limit refuses everyone.

Two listeners in one process, one Hypercorn ``serve`` each, share the receiver's state
and nothing else: the public callback (``STRAVA_EVENTS_HOST``/``_PORT``, behind the
reverse proxy) and the tap's interface (``127.0.0.1:STRAVA_EVENTS_TAP_PORT``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
import typing as t

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

if t.TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from strava_events.receiver import Apps
    from strava_events.settings import Settings

log = logging.getLogger("strava_events.server")
#: Connections waiting to be accepted: a burst of 500 deliveries connects at once, and a
#: full backlog drops their SYNs (each retried only after a second).
BACKLOG = 4096
TAP_HOST = "127.0.0.1"


def raise_open_files_limit() -> tuple[int, int]:
    """Lift the soft limit of open files to the hard one; the limits after.

    The usual soft limit, 1,024, is reached by a thousand idle connections; the hard limit
    (often 524,288, or systemd's ``LimitNOFILE``) is what the process may use.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d (%s)", soft, exc)
        else:
            soft = target
    return soft, hard


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def hypercorn_config(settings: Settings, sock: socket.socket) -> Config:
    """Hypercorn's settings for one listener (it takes the socket over)."""
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.backlog = BACKLOG
    # The deadline for a request's complete headers, from the moment a connection opens
    # (and between two requests of a kept-alive connection).
    config.keep_alive_timeout = settings.limits.header_timeout_seconds
    config.h11_max_incomplete_size = 16 * 1024
    # The access log would print the secret callback path.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    config.graceful_timeout = 3.0
    return config


async def serve(
    apps: Apps,
    settings: Settings,
    public: socket.socket,
    tap: socket.socket,
    shutdown: Callable[[], Awaitable[object]],
) -> None:
    """Serve both listeners until ``shutdown()`` returns, then stop the receiver cleanly."""
    async with apps.receiver.running():
        await asyncio.gather(
            hypercorn_serve(
                apps.callback,  # type: ignore[arg-type]
                hypercorn_config(settings, public),
                shutdown_trigger=shutdown,
                mode="asgi",
            ),
            hypercorn_serve(
                apps.tap,  # type: ignore[arg-type]
                hypercorn_config(settings, tap),
                shutdown_trigger=shutdown,
                mode="asgi",
            ),
        )


async def run(apps: Apps, settings: Settings, host: str, port: int, tap_port: int) -> None:
    """``strava-events serve``: both listeners, until SIGINT or SIGTERM."""
    public = listen(host, port)
    tap = listen(TAP_HOST, tap_port)
    log.info(
        "listening on %s:%d (Strava's callback) and %s:%d (the tap's interface)",
        host,
        public.getsockname()[1],
        TAP_HOST,
        tap.getsockname()[1],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await serve(apps, settings, public, tap, stop.wait)
