"""Helpers shared by the tests: run the tap in-process and collect its Singer output."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import subprocess
import typing as t
from pathlib import Path

from tap_strava.tap import TapStrava


@dataclasses.dataclass
class SyncResult:
    """What one tap run wrote to stdout."""

    messages: list[dict[str, t.Any]]
    error: BaseException | None = None
    #: The lines as written (the messages above are these, decoded).
    lines: list[str] = dataclasses.field(default_factory=list)

    def records(self, stream: str) -> list[dict[str, t.Any]]:
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    @property
    def states(self) -> list[dict[str, t.Any]]:
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    @property
    def final_state(self) -> dict[str, t.Any]:
        return self.states[-1] if self.states else {}

    def ids(self, stream: str = "activities") -> list[int]:
        return [r["id"] for r in self.records(stream)]


def run_tap(
    config: dict[str, t.Any],
    state: dict[str, t.Any] | None = None,
    streams: t.Iterable[str] | None = None,
    *,
    allow_failure: bool = False,
) -> SyncResult:
    """Run a whole sync in this process, as `tap-strava --config --state` would.

    With ``allow_failure`` an exception is kept in the result with what was written
    before it, the way a target would have received it.
    """
    tap = TapStrava(config=config, state=state or {}, validate_config=True)
    if streams is not None:
        wanted = set(streams)
        for stream in tap.streams.values():
            stream.selected = stream.name in wanted
    buffer = io.StringIO()
    error: BaseException | None = None
    with contextlib.redirect_stdout(buffer):
        try:
            tap.sync_all()
        except Exception as exc:
            if not allow_failure:
                raise
            error = exc
    lines = [line for line in buffer.getvalue().splitlines() if line]
    return SyncResult([json.loads(line) for line in lines], error, lines)


def bookmark(state: dict[str, t.Any], stream: str = "activities") -> str | None:
    """The replication_key_value of the (single-athlete) partition of a stream."""
    partitions = state.get("bookmarks", {}).get(stream, {}).get("partitions", [])
    for partition in partitions:
        if "replication_key_value" in partition:
            return t.cast("str", partition["replication_key_value"])
    return None


def next_quota_window(sim: t.Any, config: t.Mapping[str, t.Any]) -> None:
    """Strava's next window (or day) for a test: the simulator's counts reset, and the tap's
    saved quota reading (facts.json beside the token store) is forgotten, as the clock
    would have made it: a run must not ask while it knows the quota is spent.
    """
    import pathlib

    sim.reset_rate_limits()
    facts = pathlib.Path(config["token_store_path"]).with_name("facts.json")
    if facts.exists():
        document = json.loads(facts.read_text(encoding="utf-8"))
        document.pop("quota", None)
        facts.write_text(json.dumps(document), encoding="utf-8")


def quota_stops(state: t.Mapping[str, t.Any]) -> list[str]:
    """Every quota stop of a state, at stream and partition level."""
    return [
        part["quota_stop"]
        for stream in state.get("bookmarks", {}).values()
        for part in [stream, *stream.get("partitions", [])]
        if part.get("quota_stop")
    ]


def run_tap_cli(config: t.Mapping[str, t.Any], tmp_path: t.Any, *args: str) -> t.Any:
    """``python -m tap_strava.tap --config ...`` as a process: its exit code and last lines."""
    import subprocess
    import sys

    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "tap_strava.tap", "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


#: The project's target-postgres (``make setup`` installs it as a Meltano plugin).
TARGET_POSTGRES = (
    Path(__file__).resolve().parent.parent
    / ".meltano/loaders/target-postgres/venv/bin/target-postgres"
)


def load_into_postgres(
    messages: list[dict[str, t.Any]],
    url: str,
    schema: str,
    workdir: Path,
    *,
    batch_size_rows: int | None = None,
    timeout: float = 300,
) -> None:
    """Pipe Singer messages into the project's target-postgres, configured as meltano.yml."""
    settings: dict[str, t.Any] = {
        "sqlalchemy_url": url,
        "default_target_schema": schema,
        "add_record_metadata": True,
        "use_copy": True,
        "validate_records": False,
    }
    if batch_size_rows is not None:
        settings["batch_size_rows"] = batch_size_rows
    config = workdir / "target-postgres.json"
    config.write_text(json.dumps(settings))
    proc = subprocess.run(
        [str(TARGET_POSTGRES), "--config", str(config)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
