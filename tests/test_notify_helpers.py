"""Helpers of the notification tests: a webhook that records posts, a fake ``meltano``.

(No tests in here; the name keeps it among the ``test_notify_*`` files.)
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class WebhookServer:
    """A real HTTP server on 127.0.0.1 (port 0) that records every request it gets.

    ``statuses`` are answered in order (then 200), ``delay`` seconds before each answer:
    enough to play a service that is down, refuses, or is slow.
    """

    def __init__(self, statuses: t.Sequence[int] = (), delay: float = 0.0) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.requests: list[dict[str, t.Any]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    status = server.statuses.pop(0) if server.statuses else 200
                    parts = urlsplit(self.path)
                    server.requests.append(
                        {
                            "path": parts.path,
                            "query": parse_qs(parts.query),
                            "headers": dict(self.headers),
                            "raw": raw.decode("utf-8", "replace"),
                            "status": status,
                        }
                    )
                if server.delay:
                    time.sleep(server.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up (a timeout test)

            def log_message(self, *_args: t.Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def posts(self) -> list[dict[str, t.Any]]:
        """The requests answered 2xx, their JSON bodies decoded."""
        with self._lock:
            done = [r for r in self.requests if 200 <= r["status"] < 300]
        return [{**r, "json": json.loads(r["raw"])} for r in done]


def closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


FAKE_MELTANO = r'''#!{python}
"""A stand-in for meltano: plays the attempts of a script, one per invocation."""
import json, os, pathlib, sys, time
if sys.argv[2:5] == ["config", "--unsafe", "print"]:
    # Where a loader is (strava-job reads PostgreSQL's keys): not one of the runs played.
    print(os.environ.get("FAKE_MELTANO_CONFIG", "{{}}"))
    sys.exit(0)
script = json.loads(pathlib.Path(os.environ["FAKE_MELTANO_SCRIPT"]).read_text())
calls = pathlib.Path(os.environ["FAKE_MELTANO_SCRIPT"] + ".calls")
with calls.open("a") as handle:
    handle.write(json.dumps({{"argv": sys.argv[1:], "cwd": os.getcwd(),
        "stamp": os.environ.get("STRAVA_RUN_STAMP"),
        "tally_dir": os.environ.get("STRAVA_TALLY_DIR")}}) + "\n")
number = len(calls.read_text().splitlines()) - 1
attempt = script[min(number, len(script) - 1)]
tally_dir = pathlib.Path(os.environ["STRAVA_TALLY_DIR"])
for name, tally in attempt.get("tallies", {{}}).items():
    (tally_dir / name).write_text(json.dumps(tally))
for line in attempt.get("lines", []):
    print(line if isinstance(line, str) else json.dumps(line), flush=True)
time.sleep(attempt.get("sleep", 0))
sys.exit(attempt.get("exit", 0))
'''


def write_fake_meltano(folder: Path) -> Path:
    path = folder / "fake-meltano"
    path.write_text(FAKE_MELTANO.format(python=sys.executable))
    path.chmod(0o755)
    return path


def tally(
    label: str,
    *,
    new: int = 0,
    updated: int = 0,
    unchanged: int = 0,
    facts: t.Sequence[dict[str, t.Any]] = (),
    more: int = 0,
    partial: str | None = None,
) -> dict[str, t.Any]:
    """A tally as mapper-strava-tally writes it."""
    return {
        "version": 1,
        "target_label": label,
        "state_messages": 3,
        "ended_after_state": True,
        "ended_with_state": True,
        "streams": {
            "activities": {
                "records": new + updated + unchanged,
                "new": new,
                "updated": updated,
                "unchanged": unchanged,
            },
            "athlete": {"records": 1, "new": 0, "updated": 0, "unchanged": 0},
        },
        "new_activities": list(facts),
        "new_activities_more": more,
        "partial": {"reason": partial, "stops": []} if partial else None,
    }


def plugin_line(name: str, event: str, *, role: str, state_id: str) -> dict[str, t.Any]:
    """A plugin's stderr line as ``meltano --log-format=json run`` prints it."""
    flags = {"tap": (True, False), "mapper": (True, True), "target": (False, True)}[role]
    return {
        "stdio": "stderr",
        "producer": flags[0],
        "consumer": flags[1],
        "string_id": name,
        "cmd_type": "elb",
        "job_name": state_id,
        "name": name,
        "event": event,
        "level": "info",
    }


def meltano_line(event: str, **fields: t.Any) -> dict[str, t.Any]:
    """One of meltano's own log lines, JSON-formatted."""
    return {"event": event, "level": fields.pop("level", "info"), **fields}
