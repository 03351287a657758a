"""What ``strava-job`` needs from the spool: who is behind, and the one-time state upgrade.

**Behind.** A target is behind when its replay block is a task of this job, did not
complete in this run, and the spool folder holds spools with records it has not
committed. Its position is the one its replay recorded when it started (its committed
input state), moved to the newest spool by the job whenever the block completes
(:func:`record_caught_up`). The notification names it, and says that the next run loads
them from the spool, without asking Strava again.

**Upgrade.** Before 0.2 the daily job ran the tap once per target, under
``<env>:tap-strava-to-target-postgres`` and ``<env>:tap-strava-to-target-csv``; now the tap
runs once, under ``<env>:tap-strava-to-target-strava-spool``. An install that has an old
daily state and no new one gets the old Postgres state copied (``meltano state copy``;
the CSV one if there is no Postgres one), so its first run with the spool reads from its
bookmark instead of the whole history again, but only when both targets hold what that
bookmark covers (checked in the targets themselves, :mod:`strava_spool.holdings`): one
spool feeds both, and ``meltano run tap-strava target-postgres`` writes that very state
id without any CSV. Otherwise the first run reads the history once for both. Done once
per environment (marker files in the spool folder), only for projects whose jobs spool;
an install upgraded by the unchecked copy of 0.2 is checked once and repaired.
"""

from __future__ import annotations

import dataclasses
import datetime
import subprocess
import typing as t
from pathlib import Path

import yaml

from strava_spool.folder import Position, SpoolFolder, consumer_label
from strava_spool.holdings import HoldingsError

SPOOL_LOADER = "target-strava-spool"
#: The daily job's consumers: the extractor and loader of each one's replay block.
CONSUMER_BLOCKS = {
    "csv": ("tap-strava-replay-csv", "target-csv-replay"),
    "postgres": ("tap-strava-replay", "target-postgres"),
}
CONSUMER_LOADERS = {name: loader for name, (_extractor, loader) in CONSUMER_BLOCKS.items()}
MIGRATED_MARKER = "state-migrated"
#: Written once the upgrade was checked against what the targets hold (issue 23).
CHECKED_MARKER = "state-checked"
#: Activities older than this are "settled": every consumer of the daily job has them.
SETTLED_AFTER = datetime.timedelta(days=14)


def default_spool_dir(project_dir: Path, environment: str) -> Path:
    """meltano.yml's default: ``<project>/spool/<environment>``."""
    return project_dir / "spool" / environment


def spool_dir_from(settings: t.Mapping[str, str], project_dir: Path, environment: str) -> Path:
    """``STRAVA_SPOOL_DIR`` (environment or ``.env``), else the default, as the plugins do."""
    raw = (settings.get("STRAVA_SPOOL_DIR") or "").strip()
    if not raw:
        return default_spool_dir(project_dir, environment)
    for name, value in (
        ("MELTANO_PROJECT_ROOT", str(project_dir)),
        ("MELTANO_ENVIRONMENT", environment),
    ):
        raw = raw.replace(f"${{{name}}}", value).replace(f"${name}", value)
    return Path(raw).expanduser()


def job_blocks(project_dir: Path, job: str) -> list[list[str]] | None:
    """The plugins of each task of ``job`` in meltano.yml (None: the job is not there)."""
    try:
        document = yaml.safe_load((project_dir / "meltano.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    jobs = document.get("jobs") if isinstance(document, dict) else None
    for entry in jobs if isinstance(jobs, list) else []:
        if isinstance(entry, dict) and entry.get("name") == job:
            tasks = entry.get("tasks") or []
            return [str(task).split() for task in (tasks if isinstance(tasks, list) else [tasks])]
    return None


def job_has_task(project_dir: Path, job: str, plugin: str) -> bool:
    """Whether ``plugin`` is in one of ``job``'s tasks."""
    return any(plugin in block for block in job_blocks(project_dir, job) or [])


def job_consumers(project_dir: Path, job: str) -> list[str]:
    """The consumers whose replay block is a task of ``job`` in meltano.yml.

    The events job replays into Postgres only: CSV is never behind *in it*. A job that
    meltano.yml does not list (or a file that cannot be read) has every consumer.
    """
    blocks = job_blocks(project_dir, job)
    if blocks is None:
        return list(CONSUMER_BLOCKS)
    return [
        consumer
        for consumer, (extractor, _loader) in CONSUMER_BLOCKS.items()
        if any(extractor in block for block in blocks)
    ]


def record_caught_up(folder: SpoolFolder, consumer: str) -> None:
    """``consumer``'s replay block completed in this run: every spool is in its target.

    Its replay wrote ``consumers/<name>.json`` when it *started* (its committed input
    state), so the file would lag a run, and every later run without that block (the
    events job) would count the last spool as missing. Only the job knows the block
    completed (the target committed), so the job moves the file to the newest spool.
    """
    spools = folder.spools()
    if not spools:
        return
    last = spools[-1]
    folder.record_position(
        consumer, Position(folder.epoch(), last.seq, last.name, line=0, complete=True)
    )


def behind_lines(
    folder: SpoolFolder, consumers: t.Sequence[str], completed: t.Collection[str]
) -> list[str]:
    """One line per consumer of this job whose block did not complete and that lacks records.

    ``completed``: the plugins of the blocks that completed. Spools without records (a
    failed tap's SCHEMA and STATE lines) are nothing a target lacks: not counted.
    """
    if not folder.path.is_dir() or not folder.spools():
        return []
    epoch = folder.epoch()
    lines = []
    for consumer in consumers:
        extractor, _loader = CONSUMER_BLOCKS[consumer]
        if extractor in completed:
            continue
        pending = [spool for spool in folder.pending(consumer, epoch) if spool.has_records()]
        if not pending:
            continue
        count = len(pending)
        names = ", ".join(spool.name for spool in pending)
        lines.append(
            f"{consumer_label(consumer)} is behind: {count} "
            f"{'extraction' if count == 1 else 'extractions'} not loaded yet "
            f"(spool folder {folder.path}: {names}); the next run loads "
            f"{'it' if count == 1 else 'them'} from the spool, without asking Strava again."
        )
    return lines


def project_spools(project_dir: Path) -> bool:
    """Whether this project's meltano.yml has the spool target (the job shape of 0.2+)."""
    try:
        return SPOOL_LOADER in (project_dir / "meltano.yml").read_text(encoding="utf-8")
    except OSError:
        return False


@dataclasses.dataclass(frozen=True)
class Holdings:
    """The activities each consumer of the spool holds: PostgreSQL's with their start."""

    postgres: dict[int, datetime.datetime | None]
    csv: set[int]

    def lacking(self, consumer: str, now: datetime.datetime) -> set[int]:
        """Settled activities the other consumer holds and ``consumer`` lacks.

        Settled: started before the look-back margin. A newer one (an event loaded it
        into Postgres only) reaches the CSV through the daily job's look-back anyway.
        """
        cutoff = now - SETTLED_AFTER
        settled = {i for i, start in self.postgres.items() if start is None or start < cutoff}
        if consumer == "csv":
            return settled - self.csv
        return self.csv - set(self.postgres)


def migrate_daily_state(
    meltano: t.Callable[[list[str]], subprocess.CompletedProcess[str]],
    environment: str,
    folder: SpoolFolder,
    holdings: t.Callable[[], Holdings],
    now: datetime.datetime | None = None,
) -> str | None:
    """Copy an old daily state to the spool's state id once, if the targets allow it.

    ``meltano(args)`` runs ``meltano --environment=<env> <args>`` in the project;
    ``holdings()`` reads what PostgreSQL and the CSV folders hold (it raises
    :class:`~strava_spool.holdings.HoldingsError` when one cannot be read). The spool
    feeds both consumers, so an old bookmark is copied only when *both* hold what it
    covers: a state id existing proves nothing (``meltano run tap-strava target-postgres``,
    the user's own command, writes ``<env>:tap-strava-to-target-postgres``). Otherwise
    nothing is copied and the spool's first run reads the history once for both (a
    one-off backfill: PostgreSQL updates the rows it has, the CSV folder gets them all).
    An install marked as upgraded by the copy of 0.2 is checked once the same way, and
    its spool state cleared when CSV lacks the history (the repair). Returns the one line
    saying which, or None when there was nothing to do. Raises RuntimeError with one
    line when Meltano cannot list, copy or clear.
    """
    moment = now or datetime.datetime.now(datetime.timezone.utc)
    marker = folder.path / MIGRATED_MARKER
    new = f"{environment}:tap-strava-to-{SPOOL_LOADER}"
    if marker.exists():
        return _repair(meltano, folder, marker, new, holdings, moment)
    listed = meltano(["state", "list"])
    if listed.returncode != 0:
        msg = f"meltano state list failed (exit {listed.returncode}): {_last(listed)}"
        raise RuntimeError(msg)
    ids = {line.strip() for line in listed.stdout.splitlines() if line.strip()}
    done: str | None = None
    olds = [f"{environment}:tap-strava-to-{target}" for target in ("target-postgres", "target-csv")]
    old = next((state_id for state_id in olds if state_id in ids), None)
    if new not in ids and old is not None:
        fed = "postgres" if old.endswith("target-postgres") else "csv"
        other = "csv" if fed == "postgres" else "postgres"
        reason = _why_not(holdings, fed, other, moment)
        if reason is None:
            _meltano_ok(meltano, ["state", "copy", "--force", old, new], old, new)
            done = (
                f"Upgraded the daily job to one extraction: the bookmark of {old} was "
                f"copied to {new} (once; CSV and Postgres hold what it covers), so no "
                "history is read again."
            )
        else:
            done = (
                f"The bookmark of {old} was not copied to {new}: {reason}; this run reads "
                "the whole history once for both (Postgres updates the rows it has)."
            )
    folder.ensure()
    marker.write_text((done or "nothing to copy") + "\n", encoding="utf-8")
    (folder.path / CHECKED_MARKER).write_text("checked with the copy\n", encoding="utf-8")
    return done


def _why_not(
    holdings: t.Callable[[], Holdings], fed: str, other: str, now: datetime.datetime
) -> str | None:
    """Why a bookmark of ``fed``'s old pipeline cannot feed both (None: it can)."""
    try:
        held = holdings()
    except (HoldingsError, OSError) as exc:
        return f"what the targets hold could not be read ({exc})"
    count = len(held.postgres) if fed == "postgres" else len(held.csv)
    if not count:
        return f"{consumer_label(fed)} holds no activity"
    lacking = held.lacking(other, now)
    if lacking:
        return (
            f"{consumer_label(other)} lacks {len(lacking)} of the {count} activities "
            f"{consumer_label(fed)} holds"
        )
    return None


def _repair(
    meltano: t.Callable[[list[str]], subprocess.CompletedProcess[str]],
    folder: SpoolFolder,
    marker: Path,
    new: str,
    holdings: t.Callable[[], Holdings],
    now: datetime.datetime,
) -> str | None:
    """An install whose 0.2 upgrade copied a bookmark without checking CSV: once, check.

    If the CSV folders lack PostgreSQL's settled activities, the spool's state is cleared
    so that this run reads the history once for both.
    """
    checked = folder.path / CHECKED_MARKER
    if checked.exists():
        return None
    if not marker.read_text(encoding="utf-8").startswith("Upgraded"):
        checked.write_text("no bookmark was copied\n", encoding="utf-8")
        return None
    try:
        held = holdings()
    except (HoldingsError, OSError):
        return None  # checked again next run
    lacking = held.lacking("csv", now)
    if not lacking:
        checked.write_text("CSV holds the history\n", encoding="utf-8")
        return None
    _meltano_ok(meltano, ["state", "clear", "--force", new], new, new)
    done = (
        f"Repaired the upgrade to one extraction: CSV lacked {len(lacking)} of the "
        f"{len(held.postgres)} activities Postgres holds, so {new} was cleared and this "
        "run reads the whole history once for both (Postgres updates the rows it has)."
    )
    checked.write_text(done + "\n", encoding="utf-8")
    return done


def _meltano_ok(
    meltano: t.Callable[[list[str]], subprocess.CompletedProcess[str]],
    args: list[str],
    source: str,
    target: str,
) -> None:
    proc = meltano(args)
    if proc.returncode != 0:
        what = " ".join(["meltano", *args[:2], source] + ([target] if target != source else []))
        msg = (
            f"{what} failed (exit {proc.returncode}): {_last(proc)}; run it by hand, then "
            "strava-job again"
        )
        raise RuntimeError(msg)


def _last(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"
