"""One athlete's sync: tap-strava restricted to that athlete, piped into target-postgres.

The club's events run is the same pipe with the tap's events mode instead of the
restriction (:func:`sync_events`), under the club's one events state. The details backfill
(:func:`sync_athlete` with ``job="details"``: the per-activity streams) and the archive import
(:func:`sync_archive`: the tap's archive mode, no request) are the same pipe for one
athlete, each under a state of the athlete's own for that job.

No Meltano here: ``meltano run`` writes each run's catalog and config under fixed names in
the project's ``.meltano/run``, so two of them in one project at once overwrite each
other's, and its start-up costs seconds per run. The tap and the target are run directly,
with the athlete's own state id (``athlete-<id>``, strava_club.states: a row of the shared
database, else a file), the restriction in a second ``--config`` file and nothing else
written locally but the run's temporary folder: no CSV, no shared spool.

Secrets stay in the configuration files: the runs' own files hold only the athlete id and
the catalog.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import typing as t
from pathlib import Path

from strava_club.states import EVENTS_STATE_ID, athlete_state_id

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from strava_club.settings import ClubSettings
    from strava_club.states import StateStore

#: Parts of tap-strava's one-line errors for which a retry cannot help: the athlete
#: revoked or must authorize again, the app's credentials or a setting are wrong
#: (tap_strava/errors.py, auth.py). Anything else (a killed process, a network failure,
#: a 5xx after the tap's own retries) is worth a run retry.
NOT_RETRYABLE = (
    "Strava rejected the refresh token",
    "Strava rejected the app credentials",
    "Strava refused the token refresh",
    "Application Status Inactive",
    "authorize the app again",
    "tap-strava-auth",
    "athlete_ids:",
    "invalid configuration",
    "reconcile refused",
    # The archive import's (tap_strava/export_archive.py): not an export, damaged, a zip
    # bomb, another athlete's, unreadable header. Every such line names the setting or
    # tells to download the archive again; a worker that died does neither.
    "export_archive_path",
    "not a Strava export",
    "not an unpacked Strava export",
    "again from Strava",
    "switch the Strava account's language",
)
#: target-postgres's batch for the archive's streams: a track is up to a few MB, and the
#: default 10,000 records would hold gigabytes (meltano.yml's target-postgres-archive).
ARCHIVE_BATCH_ROWS = 50
#: How long the tap may take to stop after SIGTERM (it writes its state and exits 0).
STOP_SECONDS = 30.0
ERROR_PREFIX = "tap-strava: error: "


@dataclasses.dataclass
class SyncOutcome:
    """What one run did: exit codes, the tap's error line, quota stops.

    ``athlete_id`` is 0 for the events run (every athlete's events).
    """

    athlete_id: int
    tap_exit: int
    target_exit: int
    error: str = ""
    quota_stops: list[str] = dataclasses.field(default_factory=list)
    #: A crashed tap's exception line, when it ended without its one-line error.
    crash: str = ""

    @property
    def ok(self) -> bool:
        """Whether both processes ended well (a quota stop is a success)."""
        return self.tap_exit == 0 and self.target_exit == 0

    @property
    def retryable(self) -> bool:
        """Whether running it again could end differently (not a revoked token, ...)."""
        return not any(part in self.error for part in NOT_RETRYABLE)

    @property
    def reason(self) -> str:
        """One line for the report: the tap's own error, else the exit codes."""
        if self.error:
            return self.error
        codes = f"tap exited {self.tap_exit}, target-postgres exited {self.target_exit}"
        return f"{codes} ({self.crash})" if self.crash else codes


def selected_catalog(discovered: dict[str, t.Any], streams: t.Iterable[str]) -> dict[str, t.Any]:
    """The discovered catalog with ``streams`` selected and every other stream not."""
    wanted = set(streams)
    catalog = json.loads(json.dumps(discovered))
    for entry in catalog.get("streams", []):
        chosen = entry.get("tap_stream_id") in wanted
        for item in entry.get("metadata", []):
            if not item.get("breadcrumb"):
                item.setdefault("metadata", {})["selected"] = chosen
    return catalog


def schema_messages(catalog: dict[str, t.Any]) -> list[str]:
    """SCHEMA lines for the selected streams: target-postgres creates their tables."""
    lines = []
    for entry in catalog.get("streams", []):
        root: dict[str, t.Any] = next(
            (m["metadata"] for m in entry.get("metadata", []) if not m["breadcrumb"]), {}
        )
        if not root.get("selected"):
            continue
        message = {
            "type": "SCHEMA",
            "stream": entry["tap_stream_id"],
            "schema": entry["schema"],
            "key_properties": entry.get("key_properties") or root.get("table-key-properties", []),
        }
        lines.append(json.dumps(message))
    return lines


def discover(settings: ClubSettings, *configs: Path) -> dict[str, t.Any]:
    """The tap's catalog (no request to Strava: accounts are built on first use).

    With the events run's config among ``configs``: the events mode's streams
    (``activity_deletions``, ``event_receipts``) exist only with ``events_url`` set.
    """
    extra = [arg for path in configs for arg in ("--config", str(path))]
    proc = subprocess.run(
        [settings.tap, "--config", str(settings.tap_config), *extra, "--discover"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        msg = f"tap-strava --discover failed: {last_error(proc.stderr) or proc.returncode}"
        raise RuntimeError(msg)
    return t.cast("dict[str, t.Any]", json.loads(proc.stdout))


def create_tables(settings: ClubSettings, catalog: dict[str, t.Any]) -> None:
    """Feed target-postgres the SCHEMA messages alone: it creates the tables, loads nothing.

    target-postgres's ``CREATE TABLE`` races when several first runs start at once; the
    caller holds an advisory lock and does this once, before any athlete's load.
    """
    proc = subprocess.run(
        [settings.target, "--config", str(settings.target_config)],
        input="\n".join(schema_messages(catalog)) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.strip().splitlines()[-1:])[:300]
        msg = f"target-postgres could not create the tables: {tail}"
        raise RuntimeError(msg)


def last_error(stderr: str) -> str:
    """The tap's one-line error (``tap-strava: error: ...``) without its prefix, if any."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX) :].strip()
    return ""


#: The last line of a Python traceback: ``SomeError: message`` (a crash, not a tap error).
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b.{0,300}")


def crash_line(stderr: str) -> str:
    """A crashed tap's exception line (its traceback's last), cut short; "" if none.

    The tap ends every failure it foresees with its one line (:func:`last_error`); a run
    that ends without one crashed, and this line is what says why in the run's reason.
    """
    for line in reversed(stderr.splitlines()):
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return match.group(0)
    return ""


def quota_stops(state: dict[str, t.Any]) -> list[str]:
    """Every ``quota_stop`` of a state (the tap stopped cleanly on a spent quota)."""
    return [
        str(part["quota_stop"])
        for stream in (state.get("bookmarks") or {}).values()
        if isinstance(stream, dict)
        for part in [stream, *(stream.get("partitions") or [])]
        if isinstance(part, dict) and part.get("quota_stop")
    ]


@contextlib.contextmanager
def run_files(name: str | int) -> Iterator[Path]:
    """The run's own folder, named after the athlete (or ``events``): config, catalog."""
    with tempfile.TemporaryDirectory(prefix=f"strava-club-{name}-") as folder:
        yield Path(folder)


def sync_athlete(
    settings: ClubSettings,
    athlete_id: int,
    catalog: dict[str, t.Any],
    log: Callable[[str], None],
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    *,
    job: str = "",
) -> SyncOutcome:
    """Run ``tap-strava --config CLUB --config {athlete_ids: [id]} | target-postgres``.

    The state goes in from the athlete's own state id and out from the target's last STATE
    line, kept even when the run fails later (the target committed that far). If the
    caller is interrupted (Dagster terminates the run), the tap gets SIGTERM, writes its
    state and ends; the target drains and the state is kept.

    ``job`` names a state of the athlete's other than the daily poll's: ``details`` for
    the per-activity streams (``catalog`` selects them), whose bookmarks and
    fetched-digests a poll's state never moves; their budgets (``<stream>_per_run``) are
    the tap configuration's, and a quota stop is a success the next backfill resumes.
    """
    with run_files(athlete_id) as root:
        restriction = root / "athlete.json"
        restriction.write_text(json.dumps({"athlete_ids": [athlete_id]}), encoding="utf-8")
        outcome = run_pipe(
            settings,
            root,
            [restriction],
            athlete_state_id(athlete_id, job),
            catalog,
            log,
            started,
        )
    outcome.athlete_id = athlete_id
    return outcome


def archive_config(folder: Path, athlete_id: int, archive: Path) -> Path:
    """The archive import's second tap config: the archive, and whose it must be.

    ``athlete_ids`` in archive mode binds the archive to the athlete: rows of an archive
    naming no athlete are theirs, and an archive naming another athlete stops the tap
    with one line before any record.
    """
    path = folder / "archive.json"
    config = {"export_archive_path": str(archive), "athlete_ids": [athlete_id]}
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def archive_catalog(settings: ClubSettings, athlete_id: int, archive: Path) -> dict[str, t.Any]:
    """The archive mode's catalog (discovery never opens the archive)."""
    with run_files(f"{athlete_id}-discover") as root:
        return discover(settings, archive_config(root, athlete_id, archive))


def sync_archive(
    settings: ClubSettings,
    athlete_id: int,
    archive: Path,
    catalog: dict[str, t.Any],
    log: Callable[[str], None],
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> SyncOutcome:
    """Import one athlete's export archive (the tap's archive mode) into target-postgres.

    No request to Strava. Under the athlete's own archive state (``athlete-<id>-archive``):
    the export streams keep a digest per row there, so the same archive again emits
    nothing and a newer one only what is new or changed.
    """
    with run_files(athlete_id) as root:
        batches = root / "target-batches.json"
        batches.write_text(json.dumps({"batch_size_rows": ARCHIVE_BATCH_ROWS}), encoding="utf-8")
        outcome = run_pipe(
            settings,
            root,
            [archive_config(root, athlete_id, archive)],
            athlete_state_id(athlete_id, "archive"),
            catalog,
            log,
            started,
            target_configs=[batches],
        )
    outcome.athlete_id = athlete_id
    return outcome


def sync_events(
    settings: ClubSettings,
    events_config: Path,
    catalog: dict[str, t.Any],
    log: Callable[[str], None],
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> SyncOutcome:
    """Run the tap's events mode (``--config CLUB --config EVENTS``) into target-postgres.

    Not partitioned: the receiver's pending events have no owner filter, so one run
    handles every athlete's events, one run at a time, under the club's one events state
    (state id ``events``): each run acknowledges what the last committed run handled.
    """
    with run_files("events") as root:
        return run_pipe(settings, root, [events_config], EVENTS_STATE_ID, catalog, log, started)


def run_pipe(
    settings: ClubSettings,
    root: Path,
    configs: list[Path],
    state_id: str,
    catalog: dict[str, t.Any],
    log: Callable[[str], None],
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
    target_configs: t.Sequence[Path] = (),
) -> SyncOutcome:
    """``tap-strava --config CLUB --config ... | target-postgres`` under one state id.

    ``target_configs``: more ``--config`` files for the target, after the club's.
    """
    states = settings.states()
    catalog_path = root / "catalog.json"
    catalog_path.write_text(json.dumps(catalog), encoding="utf-8")
    tap_args = [settings.tap, "--config", str(settings.tap_config)]
    for extra in configs:
        tap_args += ["--config", str(extra)]
    tap_args += ["--catalog", str(catalog_path)]
    state_in = states.read(state_id)
    if state_in is not None:
        state_path = root / "state.json"
        state_path.write_text(json.dumps(state_in), encoding="utf-8")
        tap_args += ["--state", str(state_path)]
    stderr_path = root / "tap.stderr"
    with stderr_path.open("wb") as tap_stderr:
        tap = subprocess.Popen(tap_args, stdout=subprocess.PIPE, stderr=tap_stderr)
        target_args = [settings.target, "--config", str(settings.target_config)]
        for extra in target_configs:
            target_args += ["--config", str(extra)]
        target = subprocess.Popen(
            target_args,
            stdin=tap.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if tap.stdout is not None:
            tap.stdout.close()  # the target owns the pipe now: the tap sees it close
        if started is not None:
            started(tap)
        reader = OutputReader(target)
        try:
            out, err = reader.wait()
            tap.wait()
        except BaseException:
            # Interrupted (Dagster terminates the run): the tap writes its state and
            # ends, the target drains; what it committed is kept, then the error goes on.
            stop(tap)
            target.wait(timeout=STOP_SECONDS * 2)
            out, _err = reader.wait()
            kept = keep_last_state(states, state_id, out) is not None
            log(
                f"interrupted: the tap stopped (exit {tap.returncode}), target-postgres "
                f"ended (exit {target.returncode}), state {'kept' if kept else 'unchanged'}"
            )
            raise
    tap_text = stderr_path.read_text(encoding="utf-8", errors="replace")
    outcome = SyncOutcome(0, tap.returncode, target.returncode, last_error(tap_text))
    if tap.returncode != 0 and not outcome.error:
        outcome.crash = crash_line(tap_text)
    state_out = keep_last_state(states, state_id, out)
    if state_out is not None:
        outcome.quota_stops = quota_stops(state_out)
    if target.returncode != 0:
        log(f"target-postgres: {' '.join(err.decode('utf-8', 'replace').splitlines()[-1:])}")
    return outcome


class OutputReader:
    """A process's output, read in a thread so that an interruption reaches the caller.

    ``communicate()`` in the caller's thread would hold Dagster's interruption until the
    target ends; here the caller waits in short joins, between which it can be
    interrupted.
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._result: dict[str, tuple[bytes, bytes]] = {}
        self._thread = threading.Thread(
            target=lambda: self._result.update(out=process.communicate()), daemon=True
        )
        self._thread.start()

    def wait(self) -> tuple[bytes, bytes]:
        """The process's stdout and stderr once it has ended."""
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)
        return self._result.get("out", (b"", b""))


def keep_last_state(states: StateStore, state_id: str, out: bytes) -> dict[str, t.Any] | None:
    """Store the target's last STATE line (what it committed) under ``state_id``; the state.

    None when the target emitted no state (nothing committed: the stored state stays).
    """
    lines = [line for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return None
    message = json.loads(lines[-1])
    value = message.get("value", message) if isinstance(message, dict) else message
    if not isinstance(value, dict):
        return None
    states.write(state_id, value)
    return value


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the tap writes its state and exits 0), SIGKILL if it does not end."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
