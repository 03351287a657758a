"""``target-strava-spool``: a Singer target that keeps a run's messages in one durable file.

``tap-strava target-strava-spool`` replaces the daily job's two extractions (one per
target) by one: every line the tap writes goes, byte for byte, to
``<spool_dir>/<seq>-<stamp>.jsonl.part``; when the input ends the file is flushed,
fsynced, renamed to ``.jsonl`` and the folder fsynced, and **only then** is the tap's last
STATE printed. Meltano saves the tap's state when its target prints it, so the bookmark
never runs ahead of what is safely on disk: a crash before the rename leaves only a
``.part`` (removed by the next run) and no saved state, and the next run extracts that
stretch again. The replay tap (:mod:`strava_spool.replay`) then loads the spool into each
target. Memory stays flat: lines are streamed, only the last STATE line is kept.

SIGTERM keeps its default (the target ends, nothing is committed, no state is saved):
tried the other way, a target that went on reading for the tap's last STATE was left
waiting when strava-job stopped Meltano, its input never closed (the SIGTERM test of
tests/test_cron_first_day.py hung). The next run reads that stretch again.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import sys
import typing as t
from pathlib import Path

import filelock

from strava_spool.cli import (
    UsageError,
    load_config,
    parser,
    run_main,
    setup_logging,
    spool_dir,
)
from strava_spool.folder import PART_SUFFIX, SPOOL_SUFFIX, SpoolFolder, fsync_dir

PROG = "target-strava-spool"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
ABOUT = {
    "name": PROG,
    "description": "Writes a run's Singer messages verbatim to one fsynced spool file, "
    "then passes the last STATE on (see docs/operations.md, 'One extraction, two targets').",
    "capabilities": ["about"],
    "settings": [
        {"name": "spool_dir", "description": "The spool folder (one per environment)."},
        {"name": "run_stamp", "description": "Names the spool (and its CSV folder)."},
        {"name": "label_prefix", "description": "Put before the stamp (archive-)."},
    ],
}


def _stamp(config: t.Mapping[str, t.Any]) -> str:
    """The run stamp strava-job set (``STRAVA_RUN_STAMP``), else now in UTC.

    ``label_prefix`` goes before it: the archive job's spools and CSV folders are
    ``archive-<stamp>``, told apart from the daily job's at a glance.
    """
    raw = str(config.get("run_stamp") or os.environ.get("STRAVA_RUN_STAMP") or "").strip()
    safe = "".join(ch for ch in raw if ch.isalnum() or ch in "._-")
    stamp = safe or datetime.datetime.now(datetime.timezone.utc).strftime(STAMP_FORMAT)
    prefix = "".join(
        ch for ch in str(config.get("label_prefix") or "") if ch.isalnum() or ch in "._-"
    )
    return prefix + stamp


def spool_messages(
    lines: t.Iterable[bytes], folder: SpoolFolder, stamp: str, output: t.BinaryIO
) -> Path | None:
    """Write ``lines`` to a new spool, commit it, then print its last STATE line.

    Returns the committed spool (None for an empty input: nothing is written). A line
    that is not JSON stops the run before anything is committed, except an unfinished
    last line (a tap killed mid-write), which is dropped with a warning.
    """
    logger = setup_logging(PROG)
    with folder.lock() as _held:
        for stale in folder.remove_stale_parts():
            logger.info("removed %s: a killed run's, its state was never saved", stale.name)
        seq = folder.next_seq()
        final = folder.path / f"{seq:06d}-{folder.unique_label(stamp)}{SPOOL_SUFFIX}"
        part = final.with_name(final.name + PART_SUFFIX)
        last_state: bytes | None = None
        counts: collections.Counter[str] = collections.Counter()
        written = 0
        pending: bytes | None = None
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                for number, line in enumerate(lines, start=1):
                    if pending is not None:
                        _invalid(pending, number - 1)
                    if not line.strip():
                        continue
                    try:
                        message = json.loads(line)
                    except ValueError:
                        if not line.endswith(b"\n"):
                            pending = line  # only fatal if another line follows
                            continue
                        _invalid(line, number)
                    kind = message.get("type") if isinstance(message, dict) else None
                    if kind == "STATE":
                        last_state = line
                    elif kind == "RECORD":
                        counts[str(message.get("stream"))] += 1
                    handle.write(line if line.endswith(b"\n") else line + b"\n")
                    written += 1
                if pending is not None:
                    logger.warning(
                        "the input's last line was cut off (the tap was killed while "
                        "writing it): dropped; the saved state does not cover it"
                    )
                if not written:
                    part.unlink()
                    logger.info("no input: no spool written, no state passed on")
                    return None
                handle.flush()
                os.fsync(handle.fileno())
            part.replace(final)
            fsync_dir(folder.path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    records = ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "no records"
    logger.info(
        "spool %s committed: %d messages (%s), %d bytes",
        final,
        written,
        records,
        final.stat().st_size,
    )
    if last_state is not None:
        # Only now may Meltano save the tap's state: the spool that it covers is durable.
        # A target prints the state's value (what Meltano keeps and hands back to the tap
        # as --state), not the tap's whole STATE message.
        value = json.loads(last_state).get("value")
        output.write(json.dumps(value, separators=(",", ":")).encode() + b"\n")
        output.flush()
    else:
        logger.warning("the input had no STATE message: the tap's state does not move")
    return final


def _invalid(line: bytes, number: int) -> t.NoReturn:
    preview = line[:80].decode("utf-8", "replace").strip()
    msg = (
        f"input line {number} is not a JSON Singer message ({preview!r}): nothing was "
        "spooled and no state saved; fix the tap's output and run again"
    )
    raise UsageError(msg)


def main(argv: t.Sequence[str] | None = None) -> None:
    """Console entry point ``target-strava-spool``."""
    options = parser(PROG, "Spool a run's Singer messages to one durable file.", state=False)
    args = options.parse_args(argv)

    def body() -> int:
        if args.about:
            print(json.dumps(ABOUT, indent=2))
            return 0
        config = load_config(args.config)
        folder = SpoolFolder(spool_dir(config))
        source = args.input.open("rb") if args.input else sys.stdin.buffer
        try:
            spool_messages(source, folder, _stamp(config), sys.stdout.buffer)
        except filelock.Timeout as exc:
            msg = (
                f"the spool folder {folder.path} is locked by another run for over 2 "
                "minutes: let it finish (one daily job at a time), then run again"
            )
            raise UsageError(msg) from exc
        finally:
            if args.input:
                source.close()
        return 0

    run_main(PROG, body)


if __name__ == "__main__":
    main()
