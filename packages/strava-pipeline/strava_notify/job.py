"""``strava-job``: the command cron runs. It runs the Meltano job and posts ONE notification.

Why a wrapper and not a pipeline step: a mapper's input ends before the target commits
(and also when the tap crashed), and Meltano OSS has no on-success/on-failure hook; a
failing block aborts ``meltano run``, which then exits 1 whatever failed. Only the process
that started Meltano knows, after it exited, whether every target committed. So this
command:

1. takes a lock of its own (non-blocking: a second job refuses and says so);
2. creates the run stamp (``STRAVA_RUN_STAMP``, the CSV folder) and a tally folder
   (``STRAVA_TALLY_DIR``, where ``mapper-strava-tally`` writes one tally per target);
3. runs ``meltano --environment=<env> run <job>``, its whole output in
   ``logs/<job>-<stamp>.log`` (older logs beyond ``--keep-logs`` are pruned);
4. if Meltano refuses because an earlier, killed run still looks "running", retries with
   ``--force`` only when no pipeline process of this project is alive;
5. reads the tallies and the exit code, posts success / no new activities / partial /
   failure / interrupted, and exits 0 (success, no new, partial), 1 (failure), 2 (did not
   run) or 3 (interrupted by Ctrl-C or SIGTERM: Meltano is stopped gracefully first).

Delivery problems are logged and never change the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import typing as t
from pathlib import Path

import filelock

from strava_notify import notify
from strava_notify.meltano_log import MeltanoLog, step_label
from strava_notify.messages import FAILURE, INTERRUPTED, Notification, RunReport, compose
from strava_notify.processes import pipeline_processes
from strava_notify.redact import RedactingFilter, Redactor, url_secrets
from strava_notify.tally import count_against, read_tally
from strava_spool import holdings
from strava_spool import status as spool_status
from strava_spool.folder import SpoolFolder
from tap_strava.dotenv_file import project_environment
from tap_strava.errors import AuthorizeError
from tap_strava.files import write_atomically
from tap_strava.ratelimit import WAIT_MARKER

logger = logging.getLogger("strava_notify.job")

DEFAULT_JOB = "strava-daily"
DEFAULT_KEEP_LOGS = 30
EXIT_OK, EXIT_FAILED, EXIT_DID_NOT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 3
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
LOG_FORMAT = "%(asctime)s strava-job %(levelname)s %(message)s"
#: The tally counted against PostgreSQL (tally-postgres's target_label in meltano.yml).
POSTGRES_LABEL = "Postgres"


def run_stamp(now: datetime.datetime | None = None) -> str:
    """The run's UTC stamp, ``20261128T061500Z``: names the CSV folder and the log."""
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    return moment.strftime(STAMP_FORMAT)


def default_meltano() -> str:
    """The ``meltano`` next to this interpreter (the project's venv), else the one on PATH."""
    sibling = Path(sys.executable).with_name("meltano")
    if sibling.exists():
        return str(sibling)
    return shutil.which("meltano") or "meltano"


def job_lock_path(project_dir: Path) -> Path:
    """The project's job lock: every job of the project, and strava-forget-athlete, take it."""
    return project_dir / ".meltano" / "run" / "strava-job.lock"


class JobSettingError(Exception):
    """A malformed setting of the job itself: one line naming it, exit code 2."""


def number_setting(
    settings: t.Mapping[str, str], name: str, default: float, *, whole: bool = True
) -> float:
    """``settings[name]`` as a number, or :class:`JobSettingError` naming the variable.

    ``int("seven")`` ended the job in a ValueError traceback that named no setting.
    """
    raw = (settings.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        msg = f"{name} must be {kind} of at least 0, got {raw!r}"
        raise JobSettingError(msg) from None
    if value < 0:
        msg = f"{name} must be at least 0, got {raw!r}"
        raise JobSettingError(msg)
    return value


def _project_option() -> argparse.ArgumentParser:
    """``--project-dir`` alone, to find the project's ``.env`` before the other options."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    return parser


def parse_args(argv: t.Sequence[str] | None, environ: t.Mapping[str, str]) -> argparse.Namespace:
    """Options; each has an environment default so that cron lines stay short."""
    parser = argparse.ArgumentParser(
        prog="strava-job",
        description="Run the Meltano job and post one notification about its outcome.",
    )
    parser.add_argument(
        "--environment",
        default=environ.get("MELTANO_ENVIRONMENT") or "dev",
        help="Meltano environment (default: $MELTANO_ENVIRONMENT or dev).",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=Path.cwd(),
        help="The Meltano project (default: the current directory).",
    )
    parser.add_argument(
        "--job",
        default=environ.get("STRAVA_JOB") or DEFAULT_JOB,
        help=f"Meltano job to run (default: $STRAVA_JOB or {DEFAULT_JOB}).",
    )
    parser.add_argument(
        "--notify-url",
        action="append",
        default=None,
        help="Notification URL; repeatable (default: $STRAVA_NOTIFY_URLS, also read from "
        "the project's .env).",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="Per-run logs (default: <project>/logs)."
    )
    parser.add_argument(
        "--keep-logs",
        type=int,
        default=int(number_setting(environ, "STRAVA_KEEP_LOGS", DEFAULT_KEEP_LOGS)),
        help=f"How many per-run logs to keep (default: {DEFAULT_KEEP_LOGS}).",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=float(number_setting(environ, "STRAVA_WAIT_FOR_LOCK", 0)),
        metavar="SECONDS",
        help="If another job of the project holds the lock, wait up to this long for it "
        "before skipping this run with a message (default: 0, skip at once). The events "
        "job every five minutes waits, so it runs right after a daily or details job.",
    )
    parser.add_argument(
        "--meltano",
        default=environ.get("STRAVA_MELTANO") or default_meltano(),
        help="The meltano executable (default: the one installed beside strava-job).",
    )
    return parser.parse_args(argv)


class StravaJob:
    """One invocation of the job: lock, run, read, notify."""

    def __init__(self, options: argparse.Namespace, environ: t.Mapping[str, str]) -> None:
        """Resolve paths and settings; nothing is started yet."""
        self.options = options
        self.project_dir: Path = options.project_dir.resolve()
        self.log_dir: Path = (options.log_dir or self.project_dir / "logs").resolve()
        # The job's own settings may live in .env, like every other secret of the project.
        self.settings = project_environment(self.project_dir, environ)
        self.environ = dict(environ)
        urls = options.notify_url or notify.split_urls(self.settings.get("STRAVA_NOTIFY_URLS"))
        self.notify_urls: list[str] = [u for item in urls for u in notify.split_urls(item)]
        self.redact = Redactor.from_environment(self.settings, extra=self._url_secrets())
        # Checked now, before anything runs: a typo must not surface after the load.
        self.notify_tries = max(1, int(number_setting(self.settings, "STRAVA_NOTIFY_TRIES", 3)))
        self.notify_backoff = number_setting(
            self.settings, "STRAVA_NOTIFY_BACKOFF", 1.0, whole=False
        )
        self.stamp = run_stamp()
        self.log_path = self.log_dir / f"{options.job}-{self.stamp}.log"
        self.lock_path = job_lock_path(self.project_dir)
        self._child: subprocess.Popen[str] | None = None
        # The signal (SIGINT, SIGTERM) that stopped this job, once one arrived.
        self.interrupted: str | None = None

    def _url_secrets(self) -> list[str]:
        """URLs given as options are secrets too (their tokens are in path or query)."""
        return [part for url in self.notify_urls for part in url_secrets(url)]

    # -- logging ------------------------------------------------------------------------
    def _setup_logging(self) -> None:
        """Job lines go to stderr (cron's log), always redacted."""
        self._formatter = logging.Formatter(LOG_FORMAT)
        self._formatter.converter = time.gmtime  # UTC, like the run stamp and Meltano's lines
        self._redacting = RedactingFilter(self.redact)
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(self._formatter)
        stream.addFilter(self._redacting)
        root.addHandler(stream)
        self._stderr_handler = stream
        # Whatever happened to logging before: apprise and urllib3 never log URLs here.
        notify.quiet_url_loggers()

    def _open_run_log(self) -> logging.Handler:
        """Job lines also go to the run's log, once the lock is held.

        Not earlier: a refused job (same second, same stamp) must not write into the log
        of the run that holds the lock.
        """
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(self._formatter)
        handler.addFilter(self._redacting)
        logging.getLogger().addHandler(handler)
        return handler

    # -- the run ------------------------------------------------------------------------
    def run(self) -> int:
        """Everything, in order; returns the process exit code."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._setup_logging()
        lock = filelock.FileLock(str(self.lock_path), timeout=0)
        waited = max(0.0, float(self.options.wait_for_lock))
        try:
            lock.acquire(timeout=waited)
        except filelock.Timeout:
            return self._refuse(self._lock_holder(waited), log_path=None)
        try:
            self._write_lock_info()
            file_handler = self._open_run_log()
            # From here on Ctrl-C and SIGTERM stop Meltano gracefully and the run ends
            # with its one message (interrupted), never with a KeyboardInterrupt traceback.
            previous = {
                signum: signal.signal(signum, self._on_signal)
                for signum in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                return self._run_locked(file_handler)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
                logging.getLogger().removeHandler(file_handler)
                file_handler.close()
                self._prune_logs()
        finally:
            lock.release()

    def _run_locked(self, file_handler: logging.Handler) -> int:
        tally_dir = Path(tempfile.mkdtemp(prefix=f"strava-tally-{self.stamp}-"))
        try:
            logger.info(
                "Run %s: meltano --environment=%s run %s in %s (log %s)",
                self.stamp,
                self.options.environment,
                self.options.job,
                self.project_dir,
                self.log_path,
            )
            notes: list[str] = []
            upgraded = self._migrate_daily_state()
            if upgraded:
                notes.append(upgraded)
            known = self._postgres_keys(notes)
            code, log = self._meltano(tally_dir, force=False, file_handler=file_handler)
            if code != 0 and log.already_running and not self.interrupted:
                alive = pipeline_processes(self.project_dir)
                if alive:
                    reason = (
                        f"Meltano refused to start: {log.already_running.splitlines()[0]} "
                        "Pipeline processes of this project are still alive: "
                        + ", ".join(str(p) for p in alive)
                        + ". Not forcing while they may still be writing; the next run "
                        "will go ahead once they have ended."
                    )
                    return self._refuse(reason, log_path=self.log_path)
                logger.warning(
                    "Meltano reports an earlier run as still running, but no pipeline "
                    "process of this project is alive (a killed run): retrying with --force"
                )
                notes.append(
                    "An earlier run had been killed and still looked 'running' to Meltano; "
                    "no pipeline process was alive, so this run used --force."
                )
                for stale in tally_dir.glob("*.json"):
                    stale.unlink()
                code, log = self._meltano(tally_dir, force=True, file_handler=file_handler)
            tallies = self._tallies(tally_dir)
            if known is not None and POSTGRES_LABEL in tallies:
                count_against(tallies[POSTGRES_LABEL], known)
            report = RunReport(
                environment=self.options.environment,
                job=self.options.job,
                stamp=self.stamp,
                exit_code=code,
                tallies=tallies,
                log_path=self.log_path,
                notes=notes,
                interrupted=self.interrupted,
            )
            if self.interrupted:
                report.committed = [step_label("target", name) for name in log.completed_loaders()]
            elif code != 0:
                step = log.failed_step()
                if step.kind == "already_running":
                    # Still refused after --force: let the notification say it plainly.
                    step.kind = "meltano"
                if code < 0:
                    killed = f"meltano was killed by {signal.Signals(-code).name}"
                    if step.kind == "meltano":
                        step.cause = killed
                    else:
                        report.notes.append(killed + ".")
                report.step = step
                report.committed = [step_label("target", name) for name in log.completed_loaders()]
            if "target-csv" in log.completed_loaders():
                self._mark_csv_folder(report.tallies)
            if spool_status.CONSUMER_LOADERS["csv"] in log.completed_loaders():
                self._mark_replayed_csv_folders(report.tallies)
            report.notes.extend(self._behind(log))
            return self._finish(report)
        finally:
            shutil.rmtree(tally_dir, ignore_errors=True)

    def _meltano(
        self, tally_dir: Path, *, force: bool, file_handler: logging.Handler
    ) -> tuple[int, MeltanoLog]:
        """Run Meltano; its output goes (redacted) to the run's log and to the parser."""
        command = [
            self.options.meltano,
            f"--environment={self.options.environment}",
            "--log-format=json",  # machine-readable: which plugin wrote what, and exit codes
            "run",
            self.options.job,
        ]
        if force:
            command.append("--force")
        env = {
            **self.environ,
            "STRAVA_RUN_STAMP": self.stamp,
            "STRAVA_TALLY_DIR": str(tally_dir),
        }
        log = MeltanoLog()
        file_handler.flush()
        try:
            child = subprocess.Popen(
                command,
                cwd=self.project_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as exc:
            message = f"strava-job: error: could not start {self.options.meltano}: {exc}"
            log.feed(message)
            logger.error("%s", message)
            return 127, log
        self._child = child
        if self.interrupted:  # the signal came before Meltano was started
            child.send_signal(signal.SIGTERM)
        try:
            with self.log_path.open("a", encoding="utf-8") as out:
                assert child.stdout is not None
                for line in child.stdout:
                    out.write(self.redact(line))
                    # Line by line: a reader of the log (tail -f) sees a wait as it starts,
                    # not when a 4 KiB buffer fills or the run ends.
                    out.flush()
                    log.feed(line)
                    if WAIT_MARKER in line:
                        self._relay_wait(line)
                code = child.wait()
        finally:
            self._child = None
        logger.info("meltano exited with code %d", code)
        return code, log

    def _relay_wait(self, line: str) -> None:
        """A quota wait of the tap also goes to cron's log (stderr), as it happens.

        cron's log gets only the job's own few lines; during a 15-minute wait it would
        otherwise say nothing at all. Only to stderr: the per-run log has the line already.
        """
        try:
            event = json.loads(line)
            text = str(event.get("event") or "") if isinstance(event, dict) else line
            plugin = str(event.get("name") or "tap") if isinstance(event, dict) else "tap"
        except ValueError:
            text, plugin = line, "tap"
        text = text.strip()
        if WAIT_MARKER in text:
            text = text[text.index(WAIT_MARKER) :]
        record = logger.makeRecord(
            logger.name, logging.WARNING, __file__, 0, "%s: %s", (plugin, text), None
        )
        self._stderr_handler.handle(record)

    def _on_signal(self, signum: int, _frame: types.FrameType | None) -> None:
        """Ctrl-C or SIGTERM: stop Meltano gracefully; the run is reported as interrupted.

        Meltano gets SIGTERM (the tap then writes its state and exits; a Ctrl-C in a
        terminal reaches Meltano and the plugins by itself too). The job goes on reading
        Meltano's output until it exits, then posts one message: a second Ctrl-C does not
        cut that short.
        """
        name = signal.Signals(signum).name
        if self.interrupted is None:
            self.interrupted = name
            logger.warning("strava-job received %s: stopping meltano, then reporting", name)
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGTERM)

    def csv_folder(self) -> Path:
        """The CSV folder of the run: ``TARGET_CSV_OUTPUT_PATH`` if set, else meltano.yml's."""
        configured = self.settings.get("TARGET_CSV_OUTPUT_PATH")
        if not configured:
            return self.project_dir / "output" / self.stamp
        expanded = configured.replace("$STRAVA_RUN_STAMP", self.stamp).replace(
            "${STRAVA_RUN_STAMP}", self.stamp
        )
        expanded = expanded.replace("$MELTANO_PROJECT_ROOT", str(self.project_dir))
        return Path(expanded).expanduser()

    def spool_folder(self) -> SpoolFolder:
        """The daily job's spool folder (``STRAVA_SPOOL_DIR``, else ``spool/<env>``)."""
        return SpoolFolder(
            spool_status.spool_dir_from(self.settings, self.project_dir, self.options.environment)
        )

    def _behind(self, log: MeltanoLog) -> list[str]:
        """Which consumer of this job's spool lacks committed records (strava_spool.status).

        A replay block that completed has committed every spool: its position moves to
        the newest one now, so that no later run (the events job) counts it as missing.
        """
        if not spool_status.project_spools(self.project_dir):
            return []
        folder = self.spool_folder()
        completed = log.completed_plugins()
        consumers = spool_status.job_consumers(self.project_dir, self.options.job)
        try:
            for consumer in consumers:
                if spool_status.CONSUMER_BLOCKS[consumer][0] in completed:
                    spool_status.record_caught_up(folder, consumer)
            return spool_status.behind_lines(folder, consumers, completed)
        except OSError as exc:
            logger.warning("Could not read the spool folder %s: %s", folder.path, exc)
            return []

    def _meltano_command(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        """``meltano --environment=<env> <args>`` in the project, its output captured."""
        return subprocess.run(
            [self.options.meltano, f"--environment={self.options.environment}", *args],
            cwd=self.project_dir,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def _postgres_keys(self, notes: list[str]) -> set[int] | None:
        """The activity ids PostgreSQL holds before the run (this job tallies Postgres).

        Read under the job's lock, so no other job of the project loads meanwhile: an id
        of the run absent from it is a new activity, present an update. None when the job
        has no Postgres tally, or PostgreSQL cannot be read (a note then says the counts
        are the pipeline's own, against its last run).
        """
        if not spool_status.job_has_task(self.project_dir, self.options.job, "tally-postgres"):
            return None
        try:
            return holdings.postgres_activity_ids(holdings.postgres_place(self._meltano_command))
        except (holdings.HoldingsError, OSError, subprocess.SubprocessError) as exc:
            note = f"New and updated activities are counted against the pipeline's last run: {exc}."
            logger.warning("%s", self.redact(note))
            notes.append(note)
            return None

    def _holdings(self) -> spool_status.Holdings:
        """What PostgreSQL and the CSV folders hold (the state upgrade checks it)."""
        place = holdings.postgres_place(self._meltano_command)
        return spool_status.Holdings(
            postgres=holdings.postgres_activities(place),
            csv=holdings.csv_activity_ids(self.csv_root()),
        )

    def csv_root(self) -> Path:
        """The folder the CSV runs write their folders in (``output/`` by default)."""
        configured = self.settings.get("TARGET_CSV_REPLAY_OUTPUT_PATH") or str(
            self.project_dir / "output"
        )
        return Path(configured.replace("$MELTANO_PROJECT_ROOT", str(self.project_dir))).expanduser()

    def _migrate_daily_state(self) -> str | None:
        """Once per environment: the old daily state becomes the spool's (strava_spool.status).

        Only for a project whose meltano.yml spools. A failure is one line in the log and
        in the message, and the run goes on: without the copy the spool's first run reads
        the whole history, which costs requests but loses nothing. Returns the note.
        """
        if not spool_status.project_spools(self.project_dir):
            return None
        try:
            done = spool_status.migrate_daily_state(
                self._meltano_command,
                self.options.environment,
                self.spool_folder(),
                self._holdings,
            )
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            note = (
                f"The daily state could not be upgraded to the spool's state id ({exc}); "
                "this run read Strava from the start again (nothing is lost)."
            )
            logger.warning("%s", self.redact(note))
            return note
        if done:
            logger.info("%s", done)
        return done

    def _mark_replayed_csv_folders(self, tallies: t.Mapping[str, t.Mapping[str, t.Any]]) -> None:
        """``_SUCCESS`` in every spool folder target-csv-replay wrote in this run."""
        root = self.csv_root()
        folders = (tallies.get("CSV") or {}).get("folders") or {}
        for label, counts in sorted(folders.items()):
            if not any(counts.values()):
                # No records (a failed tap's spool): not a run's output, no marker.
                logger.info("CSV folder %s received no records: no _SUCCESS marker", label)
                continue
            records = {name: {"records": n} for name, n in counts.items()}
            self._mark_csv_folder(tallies, folder=root / label, counts=records)

    def _mark_csv_folder(
        self,
        tallies: t.Mapping[str, t.Mapping[str, t.Any]],
        *,
        folder: Path | None = None,
        counts: t.Mapping[str, t.Mapping[str, t.Any]] | None = None,
    ) -> None:
        """Write ``_SUCCESS`` (JSON: files and their rows) once target-csv has committed.

        A failed or interrupted run leaves a folder too (target-csv creates its files with
        the header first), and "take the newest folder" would pick it: a consumer takes
        the newest folder that has ``_SUCCESS``. The rows are counted in the files
        themselves (what a reader will find), the records in the tally (what arrived).
        """
        run = folder.name if folder is not None else self.stamp
        folder = folder or self.csv_folder()
        if not folder.is_dir():
            logger.warning("No CSV folder %s: no _SUCCESS marker written", folder)
            return
        files: dict[str, int] = {}
        streams: dict[str, int] = {}
        for path in sorted(folder.glob("*.csv")):
            with path.open(newline="", encoding="utf-8") as handle:
                files[path.name] = max(0, sum(1 for _ in csv.reader(handle)) - 1)
            stream = path.name.rsplit("-", 1)[0]
            streams[stream] = streams.get(stream, 0) + files[path.name]
        if counts is None:
            counts = (tallies.get("CSV") or {}).get("streams") or {}
        marker = {
            "run": run,
            "job": self.options.job,
            "environment": self.options.environment,
            "finished_at": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "rows": streams,
            "files": files,
            "records_sent": {name: c.get("records", 0) for name, c in sorted(counts.items())},
        }
        try:
            write_atomically(
                folder / "_SUCCESS", json.dumps(marker, indent=2, sort_keys=True) + "\n", mode=0o644
            )
        except OSError as exc:
            logger.warning("Could not write %s: %s", folder / "_SUCCESS", exc)
            return
        logger.info("CSV folder complete: %s (%s)", folder / "_SUCCESS", streams)

    def _tallies(self, tally_dir: Path) -> dict[str, dict[str, t.Any]]:
        """The tallies the mappers wrote, in the order the blocks ran."""
        tallies: dict[str, dict[str, t.Any]] = {}
        for path in sorted(tally_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns):
            tally = read_tally(path)
            if tally is not None:
                tallies[str(tally.get("target_label") or path.stem)] = tally
        return tallies

    # -- outcome ------------------------------------------------------------------------
    def _refuse(self, reason: str, log_path: Path | None) -> int:
        """The job did not run the pipeline: say why, as a failure notification."""
        report = RunReport(
            environment=self.options.environment,
            job=self.options.job,
            stamp=self.stamp,
            exit_code=None,
            tallies={},
            log_path=log_path,
            did_not_run=reason,
        )
        self._finish(report)
        return EXIT_DID_NOT_RUN

    def _finish(self, report: RunReport) -> int:
        message = compose(report)
        message = Notification(
            outcome=message.outcome,
            title=self.redact(message.title),
            body=self.redact(message.body),
            notify_type=message.notify_type,
        )
        level = logging.ERROR if message.outcome == FAILURE else logging.INFO
        logger.log(level, "Outcome %s: %s", message.outcome, message.title)
        for line in message.body.splitlines():
            logger.log(level, "  %s", line)
        if self.notify_urls:
            notify.deliver(
                message.title,
                message.body,
                message.notify_type,
                self.notify_urls,
                tries=self.notify_tries,
                backoff=self.notify_backoff,
            )
        else:
            logger.info("No STRAVA_NOTIFY_URLS configured: the outcome is not posted")
        if message.outcome == INTERRUPTED:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if message.outcome == FAILURE else EXIT_OK

    # -- lock and logs ------------------------------------------------------------------
    @property
    def _lock_info_path(self) -> Path:
        return self.lock_path.with_suffix(".json")

    def _write_lock_info(self) -> None:
        """Who holds the lock, for the message of a job that finds it taken."""
        info = {"pid": os.getpid(), "stamp": self.stamp, "log": str(self.log_path)}
        with contextlib.suppress(OSError):
            self._lock_info_path.write_text(json.dumps(info), encoding="utf-8")

    def _lock_holder(self, waited: float = 0.0) -> str:
        try:
            info = json.loads(self._lock_info_path.read_text(encoding="utf-8"))
            holder = f" (pid {info['pid']}, run {info['stamp']}, log {info['log']})"
        except (OSError, ValueError, KeyError, TypeError):
            holder = ""
        after = f" after waiting {waited:g} s" if waited else ""
        return (
            f"Another strava-job of this project is still running{holder}: it holds "
            f"{self.lock_path}. This run was skipped{after} so that two runs never load at "
            "once."
        )

    def _prune_logs(self) -> None:
        """Keep the newest ``--keep-logs`` per-run logs of this job (names sort by time)."""
        logs = sorted(self.log_dir.glob(f"{self.options.job}-*.log"))
        for old in logs[: max(0, len(logs) - max(1, self.options.keep_logs))]:
            with contextlib.suppress(OSError):
                old.unlink()


def main(argv: t.Sequence[str] | None = None) -> None:
    """Console entry point ``strava-job``."""
    try:
        # The defaults of the options may live in .env too (STRAVA_KEEP_LOGS, ...).
        where, _ = _project_option().parse_known_args(argv)
        settings = project_environment(where.project_dir, os.environ)
        options = parse_args(argv, settings)
        code = StravaJob(options, os.environ).run()
    except (JobSettingError, AuthorizeError) as exc:
        print(f"strava-job: error: {exc}; nothing was run", file=sys.stderr)
        code = EXIT_DID_NOT_RUN
    except KeyboardInterrupt:
        # Only before the lock (nothing started yet) or after the message was sent.
        print("strava-job: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    main()
