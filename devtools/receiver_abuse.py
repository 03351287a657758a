"""Abusing the real receiver process, as an attacker on the network would (issue 24).

``strava-events serve`` runs as its own process (:class:`ReceiverProcess`, SQLite queue);
every client connects to it directly on 127.0.0.1 with plain asyncio sockets (a lean
client, so that the figures measure the receiver, not the client; one address, the same
machine, as the abuse tests and the bench want). The cases:

* ``idle``: connections that never send a byte, then valid events and the tap's request;
* ``slow_headers``: connections that send their headers one byte at a time;
* ``wrong_token``: requests to the tap's listener with a wrong bearer token, then the tap's;
* ``burst``: distinct valid events posted at once, each delivered once.

The tests (``tests/test_events_abuse.py``) run them small; ``make bench-events`` full size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import resource
import socket
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

VERIFY_TOKEN = "abuse-verify-token-0123456789"
CALLBACK_PATH = "abuse-callback-0123456789abcdef"
TAP_TOKEN = "abuse-tap-token-0123456789abcdef"
SUBSCRIPTION_ID = 120475
ATHLETE = 134815
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_open_files() -> None:
    """This client needs thousands of sockets too: its soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def event(object_id: int, **fields: t.Any) -> dict[str, t.Any]:
    """A valid event of the configured athlete and subscription."""
    return {
        "aspect_type": "create",
        "event_time": 1516126040,
        "object_id": object_id,
        "object_type": "activity",
        "owner_id": ATHLETE,
        "subscription_id": SUBSCRIPTION_ID,
        "updates": {},
        **fields,
    }


class ReceiverProcess:
    """``strava-events serve`` as a process on free ports (SQLite queue in ``folder``)."""

    def __init__(
        self,
        folder: Path,
        athlete_id: int = ATHLETE,
        subscription_id: int | None = SUBSCRIPTION_ID,
        soft_open_files: int | None = None,
        **env: str,
    ) -> None:
        self.folder = folder
        #: Start the process with this soft limit of open files (as a default 1,024 would).
        self.soft_open_files = soft_open_files
        self.port = free_port()
        self.tap_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tap_url = f"http://127.0.0.1:{self.tap_port}"
        subscription = (
            {}
            if subscription_id is None
            else {"STRAVA_EVENTS_SUBSCRIPTION_ID": str(subscription_id)}
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STRAVA_EVENTS_")},
            "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
            "STRAVA_EVENTS_CALLBACK_PATH": CALLBACK_PATH,
            "STRAVA_EVENTS_TAP_TOKEN": TAP_TOKEN,
            **subscription,
            "STRAVA_EVENTS_ATHLETE_IDS": str(athlete_id),
            "STRAVA_EVENTS_STATE_DIR": str(folder / "state"),
            "STRAVA_EVENTS_SPOOL_DIR": str(folder / "state" / "spool"),
            **{f"STRAVA_EVENTS_{name.upper()}": value for name, value in env.items()},
        }
        self.log_path = folder / "receiver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReceiverProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "strava-events"),
                    "serve",
                    "--port",
                    str(self.port),
                    "--tap-port",
                    str(self.tap_port),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self._limit_open_files if self.soft_open_files else None,
            )
        deadline = time.monotonic() + 30
        while not self._ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                msg = f"the receiver did not start: {self.log_path.read_text()[-2000:]}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        return self

    def _limit_open_files(self) -> None:
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.soft_open_files, hard))

    def open_files_limit(self) -> tuple[int, int]:
        """The running process's soft and hard limits of open files (from /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
        msg = "no open-files line in /proc/<pid>/limits"
        raise RuntimeError(msg)

    def _ready(self) -> bool:
        try:
            status, _body = self.tap("/tap/status")
        except OSError:
            return False
        return status == 200

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def tap(self, path: str, token: str = TAP_TOKEN) -> tuple[int, dict[str, t.Any]]:
        """A request of the tap's listener: its status and JSON body."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.tap_port}{path}",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return int(answer.status), dict(json.loads(answer.read()))
        except urllib.error.HTTPError as error:
            return int(error.code), {}

    def pending_object_ids(self) -> list[int]:
        """The object ids of every pending event (one page of up to 1,000)."""
        status, body = self.tap("/tap/events/pending?limit=1000")
        assert status == 200, status
        return [int(item["event"]["object_id"]) for item in body["events"]]


def _request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def exchange(port: int, raw: bytes, timeout: float = 30.0) -> tuple[int, float]:
    """One request on a new connection: the answer's status (0: none) and its latency."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return 0, time.perf_counter() - started
    try:
        writer.write(raw)
        line = await asyncio.wait_for(reader.readline(), timeout)
        latency = time.perf_counter() - started
        await asyncio.wait_for(reader.read(), timeout)  # the rest, up to the close
    except (OSError, asyncio.TimeoutError):
        return 0, time.perf_counter() - started
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    parts = line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, latency


def post_event(body: dict[str, t.Any]) -> bytes:
    """The raw POST of one event to the callback."""
    return _request("POST", f"/{CALLBACK_PATH}", json.dumps(body).encode())


def tap_get(path: str, token: str) -> bytes:
    """The raw GET of the tap's interface with a bearer token."""
    return _request("GET", path, headers={"Authorization": f"Bearer {token}"})


@dataclasses.dataclass
class Outcome:
    """What the valid requests of one case got."""

    case: str
    statuses: list[int]
    latencies: list[float]
    tap_status: int
    extra: dict[str, t.Any] = dataclasses.field(default_factory=dict)

    @property
    def all_ok(self) -> bool:
        """Every valid event answered 200, and the tap's request too."""
        return set(self.statuses) == {200} and self.tap_status == 200

    def percentile(self, share: float) -> float:
        """The latency at this share (0.99: p99) of the valid events."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def _valid_events(port: int, first_id: int, count: int) -> list[tuple[int, float]]:
    return list(
        await asyncio.gather(
            *(exchange(port, post_event(event(first_id + n))) for n in range(count))
        )
    )


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _open_idle(port: int, count: int) -> list[Connection]:
    """``count`` connections that send nothing (opened in waves, as an attacker would).

    The writers are kept with the readers: a StreamWriter that is garbage collected closes
    its connection, which would make the case measure nothing.
    """
    connections: list[Connection] = []
    for start in range(0, count, 250):
        opened = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(min(250, count - start))),
            return_exceptions=True,
        )
        connections += [pair for pair in opened if not isinstance(pair, BaseException)]
    return connections


async def _closed_by_server(
    connections: list[Connection], started: float, until: float
) -> list[float]:
    """When (seconds after ``started``) the server closed each connection it closed before
    ``until`` (a ``perf_counter`` time); this client closes every one afterwards."""

    async def closed(reader: asyncio.StreamReader) -> float | None:
        try:
            data = await asyncio.wait_for(reader.read(1), max(until - time.perf_counter(), 0.1))
        except asyncio.TimeoutError:
            return None
        except OSError:
            data = b""
        return time.perf_counter() - started if data == b"" else None

    try:
        moments = await asyncio.gather(*(closed(reader) for reader, _writer in connections))
    finally:
        for _reader, writer in connections:
            writer.close()
    return sorted(moment for moment in moments if moment is not None)


async def idle_case(
    rx: ReceiverProcess,
    connections: int,
    events: int,
    first_id: int,
    deadline: float,
    grace: float = 10.0,
) -> Outcome:
    """``connections`` idle connections held open while valid events and the tap's call go;
    then when the receiver closed them (waiting up to ``deadline`` plus ``grace`` seconds
    after the last was opened: the receiver arms each one's timer when it takes it)."""
    started = time.perf_counter()
    idle = await _open_idle(rx.port, connections)
    opened = time.perf_counter() - started
    results = await _valid_events(rx.port, first_id, events)
    tap_status, _latency = await exchange(rx.tap_port, tap_get("/tap/status", TAP_TOKEN))
    moments = await _closed_by_server(idle, started, started + opened + deadline + grace)
    return Outcome(
        "idle",
        [status for status, _ in results],
        [latency for _, latency in results],
        tap_status,
        {
            "opened": len(idle),
            "opening_took": opened,
            "closed": len(moments),
            "first_closed": moments[0] if moments else None,
            "last_closed": moments[-1] if moments else None,
        },
    )


async def _trickle(port: int, raw: bytes, every: float, limit: float) -> float | None:
    """Send ``raw`` one byte every ``every`` seconds; when the server closed (or None)."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0.0
    try:
        for byte in raw:
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(asyncio.TimeoutError):
                if await asyncio.wait_for(reader.read(1024), every) == b"":
                    return time.perf_counter() - started
            if time.perf_counter() - started > limit:
                return None
        return None
    except OSError:  # reset by the server
        return time.perf_counter() - started
    finally:
        writer.close()


async def slow_header_case(
    rx: ReceiverProcess, connections: int, events: int, first_id: int, limit: float
) -> Outcome:
    """``connections`` clients trickling headers; valid events meanwhile; when each was cut."""
    raw = post_event(event(1))
    trickles = [
        asyncio.create_task(_trickle(rx.port, raw, 0.25, limit)) for _ in range(connections)
    ]
    await asyncio.sleep(0.5)  # they are all connected and trickling
    results = await _valid_events(rx.port, first_id, events)
    tap_status, _latency = await exchange(rx.tap_port, tap_get("/tap/status", TAP_TOKEN))
    closed = await asyncio.gather(*trickles)
    cut = sorted(seconds for seconds in closed if seconds is not None)
    return Outcome(
        "slow_headers",
        [status for status, _ in results],
        [latency for _, latency in results],
        tap_status,
        {"cut": len(cut), "never_cut": len(closed) - len(cut), "cut_max": max(cut, default=0.0)},
    )


async def wrong_token_case(
    rx: ReceiverProcess, requests: int, concurrency: int, events: int, first_id: int
) -> Outcome:
    """``requests`` wrong-token calls to the tap's listener; the tap's call and events amid."""
    queue = list(range(requests))
    statuses: dict[int, int] = {}

    async def stranger() -> None:
        while queue:
            queue.pop()
            status, _latency = await exchange(
                rx.tap_port, tap_get("/tap/events/pending", "not-the-token-at-all")
            )
            statuses[status] = statuses.get(status, 0) + 1

    strangers = [asyncio.create_task(stranger()) for _ in range(concurrency)]
    await asyncio.sleep(0.2)
    tap_status, tap_latency = await exchange(
        rx.tap_port, tap_get("/tap/events/pending?limit=10", TAP_TOKEN)
    )
    results = await _valid_events(rx.port, first_id, events)
    await asyncio.gather(*strangers)
    return Outcome(
        "wrong_token",
        [status for status, _ in results],
        [latency for _, latency in results],
        tap_status,
        {"strangers": dict(sorted(statuses.items())), "tap_latency": tap_latency},
    )


async def burst_case(rx: ReceiverProcess, events: int, first_id: int) -> Outcome:
    """``events`` distinct valid events posted at once from this one address."""
    results = await _valid_events(rx.port, first_id, events)
    tap_status, _latency = await exchange(rx.tap_port, tap_get("/tap/status", TAP_TOKEN))
    return Outcome(
        "burst",
        [status for status, _ in results],
        [latency for _, latency in results],
        tap_status,
    )
