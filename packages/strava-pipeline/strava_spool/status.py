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
bookmark instead of the whole history again. Postgres first: it is the table of record,
and a CSV bookmark ahead of Postgres's would leave Postgres a gap. Done once per
environment (a marker file in the spool folder), only for projects whose jobs spool.
"""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path

import yaml

from strava_spool.folder import Position, SpoolFolder, consumer_label

SPOOL_LOADER = "target-strava-spool"
#: The daily job's consumers: the extractor and loader of each one's replay block.
CONSUMER_BLOCKS = {
    "csv": ("tap-strava-replay-csv", "target-csv-replay"),
    "postgres": ("tap-strava-replay", "target-postgres"),
}
CONSUMER_LOADERS = {name: loader for name, (_extractor, loader) in CONSUMER_BLOCKS.items()}
MIGRATED_MARKER = "state-migrated"


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


def job_consumers(project_dir: Path, job: str) -> list[str]:
    """The consumers whose replay block is a task of ``job`` in meltano.yml.

    The events job replays into Postgres only: CSV is never behind *in it*. A job that
    meltano.yml does not list (or a file that cannot be read) has every consumer.
    """
    try:
        document = yaml.safe_load((project_dir / "meltano.yml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return list(CONSUMER_BLOCKS)
    jobs = document.get("jobs") if isinstance(document, dict) else None
    for entry in jobs if isinstance(jobs, list) else []:
        if not isinstance(entry, dict) or entry.get("name") != job:
            continue
        tasks = entry.get("tasks") or []
        blocks = [str(task).split() for task in (tasks if isinstance(tasks, list) else [tasks])]
        return [
            consumer
            for consumer, (extractor, _loader) in CONSUMER_BLOCKS.items()
            if any(extractor in block for block in blocks)
        ]
    return list(CONSUMER_BLOCKS)


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


def migrate_daily_state(
    meltano: t.Callable[[list[str]], subprocess.CompletedProcess[str]],
    environment: str,
    folder: SpoolFolder,
) -> str | None:
    """Copy an old daily state to the spool's state id once; returns what was done.

    ``meltano(args)`` runs ``meltano --environment=<env> <args>`` in the project. Raises
    RuntimeError with one line when Meltano cannot list or copy (the run then goes on
    without the copy only if there was nothing to copy).
    """
    marker = folder.path / MIGRATED_MARKER
    if marker.exists():
        return None
    listed = meltano(["state", "list"])
    if listed.returncode != 0:
        msg = f"meltano state list failed (exit {listed.returncode}): {_last(listed)}"
        raise RuntimeError(msg)
    ids = {line.strip() for line in listed.stdout.splitlines() if line.strip()}
    new = f"{environment}:tap-strava-to-{SPOOL_LOADER}"
    done: str | None = None
    if new not in ids:
        for old_target in ("target-postgres", "target-csv"):
            old = f"{environment}:tap-strava-to-{old_target}"
            if old in ids:
                copied = meltano(["state", "copy", "--force", old, new])
                if copied.returncode != 0:
                    msg = (
                        f"meltano state copy {old} {new} failed (exit {copied.returncode}): "
                        f"{_last(copied)}; run it by hand, then strava-job again"
                    )
                    raise RuntimeError(msg)
                done = (
                    f"Upgraded the daily job to one extraction: the bookmark of {old} was "
                    f"copied to {new} (once), so no history is read again."
                )
                break
    folder.ensure()
    marker.write_text((done or "nothing to copy") + "\n", encoding="utf-8")
    return done


def _last(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"
