"""Strava's answers are read with a size cap (issue 24): a decompression bomb is refused.

The simulator's ``oversized`` fault answers with the real answer followed by spaces,
gzipped: about a megabyte on the wire, valid JSON once inflated. Read whole (as the SDK's
request path did), 256 MiB of it cost the tap over half a gigabyte and then parsed fine;
read under the cap, the tap stops at 64 MiB with one line and its memory stays bounded.
The tap runs as its own process, so its peak memory is the kernel's (``wait4``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as t

import pytest

from strava_simulator import StravaSimulator
from tests.conftest import tap_config_for
from tests.support import run_tap

BOMB = 256 * 2**20


def _tap_process(config: dict[str, t.Any], tmp_path: t.Any) -> tuple[int, str, int]:
    """Run ``tap-strava`` as a process: exit code, stderr and peak memory in MiB."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with (tmp_path / "stderr.txt").open("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tap_strava.tap", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        return proc.returncode, stderr.read(), usage.ru_maxrss // 1024


@pytest.fixture
def sim() -> t.Iterator[StravaSimulator]:
    with StravaSimulator(seed=71, activity_count=30) as simulator:
        yield simulator


def test_a_decompression_bomb_is_refused_with_one_line_and_bounded_memory(sim, tmp_path):
    sim.inject_fault(r"^/api/v3/athlete/activities$", "oversized", size=BOMB)
    code, stderr, peak_mib = _tap_process(tap_config_for(sim, tmp_path), tmp_path)
    assert code == 1, stderr[-2000:]
    errors = [line for line in stderr.splitlines() if "tap-strava: error:" in line]
    assert len(errors) == 1, stderr[-2000:]
    assert (
        "the answer to /api/v3/athlete/activities is above the tap's cap of 64 MiB" in (errors[0])
    )
    assert "max_answer_mib" in errors[0]
    assert "Traceback" not in stderr
    # The cap (64 MiB of chunks, then joined) plus the interpreter: far below the bomb.
    assert peak_mib < 250, peak_mib  # 113 MiB measured; 1,387 MiB without the cap


def test_an_answer_under_the_cap_is_read_and_a_lower_cap_refuses_it(sim, tmp_path):
    sim.inject_fault(r"^/api/v3/athlete/activities$", "oversized", size=2 * 2**20)
    padded = run_tap(tap_config_for(sim, tmp_path), streams=["activities"])
    assert {r["id"] for r in padded.records("activities")} == {a["id"] for a in sim.activities}

    sim.inject_fault(r"^/api/v3/athlete/activities$", "oversized", size=2 * 2**20)
    config = tap_config_for(sim, tmp_path / "capped", max_answer_mib=1)
    refused = run_tap(config, streams=["activities"], allow_failure=True)
    assert "is above the tap's cap of 1 MiB" in str(refused.error)
    assert refused.records("activities") == []


def test_a_declared_length_above_the_cap_is_refused_before_any_body_is_read():
    # A server that declares 100 MiB and then sends nothing: refused at the headers, at
    # once (read whole, the client would wait for the body until its timeout).
    import http.server
    import threading
    import time

    import requests

    from tap_strava.answer_size import AnswerTooLarge, cap_answer_size

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(100 * 2**20))
            self.end_headers()
            self.wfile.flush()
            time.sleep(3)

        def log_message(self, *args: t.Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = cap_answer_size(requests.Session(), 1)
        assert cap_answer_size(session, 1).hooks["response"] == session.hooks["response"]
        started = time.monotonic()
        with pytest.raises(AnswerTooLarge, match=r"104,857,600 bytes long, above the tap's cap"):
            session.get(f"http://127.0.0.1:{server.server_address[1]}/api/v3/x", timeout=10)
        assert time.monotonic() - started < 2
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_answer_above_the_cap_is_refused_too(sim, tmp_path):
    sim.inject_fault(r"/oauth/token$", "oversized", size=BOMB)
    result = run_tap(tap_config_for(sim, tmp_path), streams=["activities"], allow_failure=True)
    assert "the answer to /oauth/token is above the tap's cap of 64 MiB" in str(result.error)
    assert result.records("activities") == []
