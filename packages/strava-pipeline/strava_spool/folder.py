"""The spool folder: the files, their order, who applied what, and when a file may go.

Layout of ``spool_dir`` (one folder per Meltano environment)::

    epoch                      random id, written once with the folder
    sequence                   the last sequence number handed out
    .lock                      held while a file is committed or files are pruned
    000007-20261201T061500Z.jsonl       a committed spool: every Singer line of one run
    000008-20261202T061500Z.jsonl.part  being written (a crash leaves it; never replayed)
    consumers/postgres.json    the position that consumer's target has committed

Why a sequence number and an epoch: the replay states keep "spool 7 applied"; numbers
must never be handed out twice, also after every file was pruned (the ``sequence`` file
and the consumers' positions remember the last one), and a folder that was deleted and
created again (new epoch) must not have its new spool 1 taken for the old spool 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import typing as t
from pathlib import Path

import filelock

SPOOL_SUFFIX = ".jsonl"
PART_SUFFIX = ".part"
_SPOOL_NAME = re.compile(r"^(?P<seq>\d{6,})-(?P<label>[0-9A-Za-z._-]+)\.jsonl$")
#: Consumer names become file names and notification words: keep them plain.
CONSUMER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
CONSUMER_LABELS = {"postgres": "Postgres", "csv": "CSV"}


class SpoolError(Exception):
    """A problem with the spool folder, worded as one line with its fix."""


@dataclasses.dataclass(frozen=True, order=True)
class Spool:
    """One committed spool file; ordered by its sequence number."""

    seq: int
    label: str
    path: Path = dataclasses.field(compare=False)

    @property
    def name(self) -> str:
        """The file name without the folder (what states and messages name)."""
        return self.path.name

    def has_records(self) -> bool:
        """Whether the spool holds a RECORD (a failed tap's may hold SCHEMA and STATE only).

        A spool without records is no extraction a target lacks: it is not counted as
        behind, and the CSV replay gives it no folder. Reads up to the first record.
        """
        try:
            with self.path.open("rb") as handle:
                for line in handle:
                    if b"RECORD" not in line:
                        continue
                    with contextlib.suppress(ValueError):
                        message = json.loads(line)
                        if isinstance(message, dict) and message.get("type") == "RECORD":
                            return True
        except FileNotFoundError:
            return False
        return False


@dataclasses.dataclass(frozen=True)
class Position:
    """How far one consumer got: the spool, the line, whether that spool is complete."""

    epoch: str | None = None
    seq: int = 0
    spool: str | None = None
    line: int = 0
    complete: bool = True

    @classmethod
    def from_state(cls, value: t.Any) -> Position:
        """The position kept under ``strava_replay`` of a replay state (empty: nothing)."""
        if not isinstance(value, dict):
            return cls()
        try:
            return cls(
                epoch=str(value["epoch"]) if value.get("epoch") else None,
                seq=int(value.get("seq") or 0),
                spool=str(value["spool"]) if value.get("spool") else None,
                line=int(value.get("line") or 0),
                complete=bool(value.get("complete", True)),
            )
        except (TypeError, ValueError):
            return cls()

    def as_state(self) -> dict[str, t.Any]:
        """The JSON kept in the replay's state."""
        return dataclasses.asdict(self)

    def applied(self, spool: Spool, epoch: str) -> bool:
        """Whether ``spool`` is wholly in the consumer's target already."""
        if self.epoch != epoch:
            return False
        return spool.seq < self.seq or (spool.seq == self.seq and self.complete)


def consumer_label(name: str) -> str:
    """How a notification names a consumer: ``Postgres``, ``CSV``, else the name."""
    return CONSUMER_LABELS.get(name, name)


class SpoolFolder:
    """The folder of one environment's spools (created on first use)."""

    def __init__(self, path: Path) -> None:
        """Nothing is touched until a method needs the folder."""
        self.path = Path(path).expanduser()

    # -- set-up and lock ------------------------------------------------------------------
    def ensure(self) -> None:
        """Create the folder (0700: spools hold the athlete's private activities)."""
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.path / "consumers").mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            msg = (
                f"cannot create the spool folder {self.path} ({exc.strerror}): "
                "set STRAVA_SPOOL_DIR to a writable folder"
            )
            raise SpoolError(msg) from exc

    def lock(self) -> filelock.BaseFileLock:
        """The folder's lock (blocking): committing a spool and pruning never overlap."""
        self.ensure()
        return filelock.FileLock(str(self.path / ".lock"), timeout=120)

    def epoch(self) -> str:
        """The folder's id, created with it; replay states carry it (see module doc)."""
        self.ensure()
        path = self.path / "epoch"
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text(encoding="utf-8").strip()
            if text:
                return text
        value = secrets.token_hex(8)
        _write(path, value + "\n")
        return value

    # -- spools ---------------------------------------------------------------------------
    def spools(self) -> list[Spool]:
        """The committed spools, oldest first (``.part`` files are not spools)."""
        if not self.path.is_dir():
            return []
        found = []
        for entry in self.path.iterdir():
            match = _SPOOL_NAME.match(entry.name)
            if match and entry.is_file():
                found.append(Spool(int(match["seq"]), match["label"], entry))
        return sorted(found)

    def next_seq(self) -> int:
        """A number above every one handed out before (call with the lock held)."""
        seen = [spool.seq for spool in self.spools()]
        seen += [position.seq for position in self.positions().values()]
        with contextlib.suppress(OSError, ValueError):
            seen.append(int((self.path / "sequence").read_text(encoding="utf-8").strip()))
        seq = max(seen, default=0) + 1
        _write(self.path / "sequence", f"{seq}\n")
        return seq

    def unique_label(self, stamp: str) -> str:
        """The run stamp, or ``<stamp>-2``... when a pending spool has it already.

        The label names the CSV folder of the spool (``output/<label>/``): two spools of
        one stamp (a forced retry within the same second) must not share files.
        """
        taken = {spool.label for spool in self.spools()}
        label, n = stamp, 1
        while label in taken:
            n += 1
            label = f"{stamp}-{n}"
        return label

    def remove_stale_parts(self) -> list[Path]:
        """Delete ``.part`` files: a killed spool target's, whose state was never passed on."""
        removed = []
        for entry in self.path.glob(f"*{SPOOL_SUFFIX}{PART_SUFFIX}"):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
        return removed

    # -- consumers ------------------------------------------------------------------------
    def positions(self) -> dict[str, Position]:
        """Each consumer's committed position, as its replay recorded it when it started."""
        result: dict[str, Position] = {}
        folder = self.path / "consumers"
        if not folder.is_dir():
            return result
        for entry in sorted(folder.glob("*.json")):
            try:
                result[entry.stem] = Position.from_state(json.loads(entry.read_text("utf-8")))
            except (OSError, ValueError):
                continue
        return result

    def record_position(self, consumer: str, position: Position) -> None:
        """Write what ``consumer``'s target has committed (its replay's input state).

        The input state is what Meltano saved when the target printed it: committed. So
        this file lags a run behind at worst, which only delays pruning, never loses data.
        """
        self.ensure()
        _write(self.path / "consumers" / f"{consumer}.json", json.dumps(position.as_state()))

    def pending(self, consumer: str, epoch: str) -> list[Spool]:
        """The spools ``consumer``'s target does not have yet, by its recorded position."""
        position = self.positions().get(consumer, Position())
        return [spool for spool in self.spools() if not position.applied(spool, epoch)]

    def prune(self, consumers: t.Sequence[str]) -> list[Spool]:
        """Delete the spools every consumer has applied (call with the lock held).

        A consumer that never recorded a position keeps every spool: pruning waits for it.
        """
        epoch = self.epoch()
        positions = self.positions()
        if not consumers or any(name not in positions for name in consumers):
            return []
        gone = []
        for spool in self.spools():
            if all(positions[name].applied(spool, epoch) for name in consumers):
                with contextlib.suppress(FileNotFoundError):
                    spool.path.unlink()
                gone.append(spool)
        return gone


def _write(path: Path, text: str) -> None:
    """Small bookkeeping file: temporary name, fsync, rename (never half written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry is data too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
