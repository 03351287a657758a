"""The tap in a plain Singer pipeline (no Meltano): state in, state out, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tap_config_for
from tests.support import run_tap_cli


def _messages(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _assert_ends_with_a_state(messages: list[dict]) -> dict:
    """What a target that keeps only a state no record follows (target-jsonl) keeps."""
    assert messages[-1]["type"] == "STATE", [m["type"] for m in messages[-3:]]
    last_record = max(i for i, m in enumerate(messages) if m["type"] == "RECORD")
    assert any(m["type"] == "STATE" for m in messages[last_record:])
    return messages[-1]["value"]


def test_the_last_message_is_a_state_and_it_round_trips(simulator, tmp_path):
    """Issue 13.4: docs/singer.md's `--state state.json | target-jsonl` round trip."""
    config = tap_config_for(simulator, tmp_path)
    first = run_tap_cli(config, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    state = _assert_ends_with_a_state(_messages(first.stdout))
    (tmp_path / "state.json").write_text(json.dumps(state))
    # Unchanged since its start: the SDK alone would end this run on an athlete record.
    second = run_tap_cli(config, tmp_path, "--state", str(tmp_path / "state.json"))
    assert second.returncode == 0, second.stderr[-2000:]
    messages = _messages(second.stdout)
    assert _assert_ends_with_a_state(messages) == state
    activities = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "activities"]
    assert 0 < len(activities) < len(simulator.activities), "only the look-back window"


@pytest.mark.parametrize(
    ("content", "says"),
    [("", "is empty"), ("{not json", "is not valid JSON"), ("[1, 2]", "holds a list")],
)
def test_an_empty_or_broken_state_file_is_one_line(simulator, tmp_path, content, says):
    (tmp_path / "state.json").write_text(content)
    proc = run_tap_cli(
        tap_config_for(simulator, tmp_path), tmp_path, "--state", str(tmp_path / "state.json")
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tap-strava: error: the --state file"), proc.stderr[-1500:]
    assert says in last
    assert "Traceback" not in proc.stderr
    assert not proc.stdout.strip(), "nothing was synced"


def test_a_whole_state_message_is_accepted_as_state(simulator, tmp_path):
    config = tap_config_for(simulator, tmp_path)
    first = run_tap_cli(config, tmp_path)
    last_line = first.stdout.strip().splitlines()[-1]
    (tmp_path / "state.json").write_text(last_line)  # `tail -1` of a tap's output
    second = run_tap_cli(config, tmp_path, "--state", str(tmp_path / "state.json"))
    assert second.returncode == 0, second.stderr[-2000:]
    assert _assert_ends_with_a_state(_messages(second.stdout)) == json.loads(last_line)["value"]


TARGET_JSONL = (
    Path(__file__).resolve().parents[1] / ".meltano/loaders/target-jsonl/venv/bin/target-jsonl"
)


@pytest.mark.extras
@pytest.mark.skipif(not TARGET_JSONL.exists(), reason="target-jsonl: make setup-extras")
def test_the_readme_round_trip_with_target_jsonl_keeps_a_state(simulator, tmp_path):
    """Issue 13.4: with target-jsonl no state survived a run whose state had not changed."""
    config = tap_config_for(simulator, tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    catalog = run_tap_cli(config, tmp_path, "--discover")
    (tmp_path / "catalog.json").write_text(catalog.stdout)
    (tmp_path / "state.json").write_text("{}")
    script = (
        f"{sys.executable} -m tap_strava.tap --config config.json --catalog catalog.json "
        f"--state state.json | {TARGET_JSONL} > states.out && "
        "[ -s states.out ] && tail -n 1 states.out > state.json"
    )
    for _ in range(2):  # the second run's state equals its input: still one to keep
        proc = subprocess.run(
            ["/bin/sh", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["bookmarks"]["activities"]["partitions"], state
