"""Helpers of the push-event receiver's tests (no tests here): the real server in a thread,
a switchable TCP path to PostgreSQL, settings from an environment."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import typing as t
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from strava_events import server
from strava_events.receiver import create_apps
from strava_events.settings import Settings, load_settings, to_libpq

VERIFY_TOKEN = "verify-token-0123456789abcdef"
CALLBACK_PATH = "cb-0123456789abcdefSECRET"
TAP_TOKEN = "tap-token-0123456789abcdef"
SUBSCRIPTION_ID = 120475
ATHLETE = 134815


def settings_for(tmp_path: Path, dsn: str | None = None, **env: str) -> Settings:
    """Settings as `strava-events serve` reads them, from STRAVA_EVENTS_* variables."""
    values = {
        "STRAVA_EVENTS_VERIFY_TOKEN": VERIFY_TOKEN,
        "STRAVA_EVENTS_CALLBACK_PATH": CALLBACK_PATH,
        "STRAVA_EVENTS_TAP_TOKEN": TAP_TOKEN,
        "STRAVA_EVENTS_SUBSCRIPTION_ID": str(SUBSCRIPTION_ID),
        "STRAVA_EVENTS_ATHLETE_IDS": str(ATHLETE),
        "STRAVA_EVENTS_SQLITE_PATH": str(tmp_path / "events.sqlite3"),
        "STRAVA_EVENTS_SPOOL_DIR": str(tmp_path / "spool"),
        "STRAVA_EVENTS_STATE_DIR": str(tmp_path / "state"),
    }
    if dsn:
        values["STRAVA_EVENTS_POSTGRES_DSN"] = dsn
        values["STRAVA_EVENTS_POSTGRES_SCHEMA"] = "strava_events_" + uuid.uuid4().hex[:10]
    values.update({f"STRAVA_EVENTS_{name.upper()}": value for name, value in env.items()})
    return load_settings(values)


def event(**fields: t.Any) -> dict[str, t.Any]:
    """Strava's documented example event, with overrides."""
    body = {
        "aspect_type": "update",
        "event_time": 1516126040,
        "object_id": 1360128428,
        "object_type": "activity",
        "owner_id": ATHLETE,
        "subscription_id": SUBSCRIPTION_ID,
        "updates": {"title": "Messy"},
    }
    body.update(fields)
    return body


class Served:
    """The receiver served as `strava-events serve` serves it (Hypercorn, both listeners),
    in a thread with its own event loop, on free ports of 127.0.0.1."""

    def __init__(self, settings: Settings, public: socket.socket | None = None) -> None:
        """``public``: a socket listening already (a test that must know the URL first)."""
        self.settings = settings
        self.apps = create_apps(settings)
        self.receiver = self.apps.receiver
        self._public = public or server.listen("127.0.0.1", 0)
        self._tap = server.listen("127.0.0.1", 0)
        self.port = self._public.getsockname()[1]
        self.tap_port = self._tap.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.tap_url = f"http://127.0.0.1:{self.tap_port}"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            await server.serve(self.apps, self.settings, self._public, self._tap, self._stop.wait)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # reported by __enter__
            self._error = exc
        finally:
            self._loop.close()

    @property
    def callback(self) -> str:
        return f"{self.url}/{CALLBACK_PATH}"

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.tap_port), timeout=1):
                return True
        except OSError:
            return False

    def __enter__(self) -> Served:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not (self._stop is not None and self._listening()):
            if time.monotonic() > deadline or not self._thread.is_alive():
                msg = f"the receiver did not start: {self._error!r}"
                raise RuntimeError(msg)
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        stop = self._stop
        if stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(20)


def wait_for(check: t.Callable[[], t.Any], timeout: float = 30.0, what: str = "") -> t.Any:
    """Poll until ``check()`` is truthy (a generous deadline, no tight sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            msg = f"timed out waiting for {what or check}"
            raise AssertionError(msg)
        time.sleep(0.05)


class Forwarder:
    """A real TCP path from 127.0.0.1 to the test PostgreSQL that can be cut and restored.

    ``down()`` closes the listening socket and every connection through it, so the
    receiver's database is unreachable exactly as when the server stops; ``up()`` listens
    again on the same port. ``stall()`` keeps connections open but forwards nothing (a hung
    database).
    """

    def __init__(self, postgres_url: str) -> None:
        params = conninfo_to_dict(to_libpq(postgres_url))
        host = str(params.get("host") or "localhost")
        port = int(params.get("port") or 5432)
        self._target: tuple[int, t.Any] = (
            (socket.AF_UNIX, str(Path(host) / f".s.PGSQL.{port}"))
            if host.startswith("/")
            else (socket.AF_INET, (host, port))
        )
        self._user = str(params.get("user") or "postgres")
        self._password = params.get("password")
        self._dbname = str(params.get("dbname") or "postgres")
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self.port = 0

    @property
    def dsn(self) -> str:
        auth = f"{self._user}:{self._password}" if self._password else self._user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{self._dbname}"

    def up(self) -> Forwarder:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._flowing.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._flowing.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stall(self) -> None:
        self._flowing.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return
            upstream = socket.socket(self._target[0], socket.SOCK_STREAM)
            try:
                upstream.connect(self._target[1])
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


def drop_schema(postgres_url: str, schema: str) -> None:
    with psycopg.connect(to_libpq(postgres_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
