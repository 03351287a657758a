"""``tap-strava-replay``: a Singer tap that applies pending spools, in order, to one target.

``tap-strava-replay target-postgres`` and ``tap-strava-replay-csv target-csv-replay`` are
two blocks of the daily job; each has its own Meltano state id, and in it the position its
target has committed (``strava_replay``: the spool folder's epoch, the spool's sequence
number and name, the line reached, whether that spool is complete) merged into the
original tap state of that point. Keeping the tap's ``bookmarks`` at the top of the state
is what lets ``mapper-strava-tally`` count new and updated activities exactly as it did
when it sat behind the tap itself.

Why this order and these rules:

* **strictly in order**, oldest spool first, so a target always receives Strava's states
  in the order they were read, and the last record per key is the newest;
* a spool the target committed only **partly** (a target that printed a STATE mid-load,
  then failed) is replayed **whole**: a CSV file of a spool is written whole by each
  replay (``output/<label>/<stream>-<label>.csv``, overwritten, never added to), and
  a repeated record is a no-op for Postgres upserts;
* the position the target had committed when this run started (the input state, which
  Meltano saved only after the target printed it) goes to ``consumers/<name>.json``, and
  spools every configured consumer has applied are deleted: the folder stays bounded
  while every target keeps up, and keeps whatever one target still lacks.

Lines are streamed from the file: memory does not depend on the spool's size.

Every record is replayed under the tap's rule for strings (``tap_strava.storable_text``:
NUL and lone surrogates become U+FFFD, one warning per record): spools written before the
tap applied it hold ``\u0000`` and lone surrogate escapes that would fail target-postgres
(and the CSV path's UTF-8 encoding) on every run, and spools are replayed strictly in
order, so one such line would hold back every later spool. A byte search finds such lines
(most have none); only those are rewritten.
"""

from __future__ import annotations

import json
import re
import sys
import typing as t

import filelock

from strava_spool.cli import (
    UsageError,
    load_config,
    parser,
    read_json_file,
    run_main,
    setup_logging,
    spool_dir,
)
from strava_spool.folder import CONSUMER_NAME, Position, Spool, SpoolFolder, consumer_label
from tap_strava.storable_text import forget_warnings, make_record_storable

PROG = "tap-strava-replay"
POSITION_KEY = "strava_replay"
DEFAULT_CONSUMERS = ("csv", "postgres")
#: Messages whose ``stream`` names a stream (renamed for CSV folders).
STREAM_MESSAGES = {"SCHEMA", "RECORD", "ACTIVATE_VERSION", "BATCH"}
#: A JSON escape of NUL or of a surrogate: a line that may break the rule for strings.
UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
ABOUT = {
    "name": PROG,
    "description": "Replays the pending spools of target-strava-spool, in order, into "
    "one target, with that target's own state "
    "(see docs/operations.md, 'One extraction, two targets').",
    "capabilities": ["state", "about"],
    "settings": [
        {"name": "spool_dir", "description": "The spool folder (one per environment)."},
        {"name": "consumer", "description": "This target's name in the folder (postgres)."},
        {"name": "consumers", "description": "Every target that must apply a spool."},
        {"name": "csv_folders", "description": "Stream names <label>/<stream>-<label>."},
    ],
}


def csv_stream_name(stream: str, label: str) -> str:
    """Stream ``activities`` of spool ``R`` -> ``R/activities-R`` (R: the spool's label).

    target-csv-replay writes ``{stream_name}.csv`` under ``output/``: each spool gets its
    own folder, and replaying a spool again rewrites exactly its own files.
    """
    return f"{label}/{stream}-{label}"


def consumers_setting(config: t.Mapping[str, t.Any]) -> list[str]:
    """The consumers that must apply every spool before it is pruned."""
    raw = config.get("consumers")
    if raw in (None, "", []):
        names = list(DEFAULT_CONSUMERS)
    elif isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.split(",")
        names = [str(n).strip() for n in (parsed if isinstance(parsed, list) else [parsed])]
    elif isinstance(raw, list):
        names = [str(n).strip() for n in raw]
    else:
        names = []
    names = [n for n in names if n]
    bad = [n for n in names if not CONSUMER_NAME.match(n)]
    if bad or not names:
        msg = f'consumers {raw!r} is not a list of plain names: set e.g. ["csv", "postgres"]'
        raise UsageError(msg)
    return names


class Replay:
    """One run: record, prune, then emit every pending spool."""

    def __init__(
        self,
        folder: SpoolFolder,
        consumer: str,
        consumers: t.Sequence[str],
        state: t.Mapping[str, t.Any],
        *,
        csv_folders: bool = False,
    ) -> None:
        """``state`` is this consumer's input state (what its target committed)."""
        self.folder = folder
        self.consumer = consumer
        self.consumers = list(consumers)
        self.csv_folders = csv_folders
        self.position = Position.from_state(state.get(POSITION_KEY))
        # The tap's own state at the committed point: carried on until a spool has one.
        self.tap_state = {k: v for k, v in state.items() if k != POSITION_KEY}
        self.logger = setup_logging(PROG)
        self.lines_out = 0

    def run(self, output: t.BinaryIO) -> list[Spool]:
        """Emit the pending spools to ``output``; returns them."""
        forget_warnings()  # a replay is a run: its records warn, whatever ran before
        epoch = self.folder.epoch()
        if self.position.seq and self.position.epoch != epoch:
            self.logger.warning(
                "the spool folder %s was created anew since %s last replayed (its state "
                "names spool %s of another folder): replaying every spool in it",
                self.folder.path,
                consumer_label(self.consumer),
                self.position.spool,
            )
        self.folder.record_position(self.consumer, self.position)
        self._prune()
        pending = [s for s in self.folder.spools() if not self.position.applied(s, epoch)]
        if not pending:
            self.logger.info(
                "nothing to replay from %s into %s", self.folder.path, consumer_label(self.consumer)
            )
            if self.tap_state or self.position.seq:
                self._state(output, self.position)
            return []
        self.logger.info(
            "replaying %d spool(s) from %s into %s, in order: %s",
            len(pending),
            self.folder.path,
            consumer_label(self.consumer),
            ", ".join(s.name for s in pending),
        )
        for spool in pending:
            self._replay(spool, epoch, output)
        return pending

    def _prune(self) -> None:
        try:
            with self.folder.lock().acquire(timeout=10):
                gone = self.folder.prune(self.consumers)
        except filelock.Timeout:
            self.logger.warning("spool folder locked by another run: pruning skipped")
            return
        if gone:
            self.logger.info(
                "pruned %d spool(s) every target has applied: %s",
                len(gone),
                ", ".join(s.name for s in gone),
            )

    def _replay(self, spool: Spool, epoch: str, output: t.BinaryIO) -> None:
        """Every line of one spool; STATE lines carry this consumer's position.

        For CSV folders a spool without records (a tap that failed before its first one)
        passes only its states: no folder of header-only files that looks like a run.
        """
        number = 0
        folderless = self.csv_folders and not spool.has_records()
        if folderless:
            self.logger.info("%s holds no records: no CSV folder for it", spool.name)
        with spool.path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError as exc:
                    msg = (
                        f"spool {spool.path} line {number} is not JSON ({exc}): the file is "
                        f"damaged; move it out of {self.folder.path} to skip it (its data is "
                        f"then missing from {consumer_label(self.consumer)}), then run again"
                    )
                    raise UsageError(msg) from exc
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "RECORD" and UNSTORABLE_ESCAPE.search(line):
                    line = self._storable(message, line)
                if kind == "STATE":
                    value = message.get("value")
                    self.tap_state = dict(value) if isinstance(value, dict) else {}
                    self.tap_state.pop(POSITION_KEY, None)
                    position = Position(epoch, spool.seq, spool.name, number, complete=False)
                    self._state(output, position)
                elif folderless:
                    continue
                elif self.csv_folders and kind in STREAM_MESSAGES and "stream" in message:
                    message["stream"] = csv_stream_name(str(message["stream"]), spool.label)
                    self._write(output, json.dumps(message, ensure_ascii=False).encode())
                else:
                    self._write(output, line.rstrip(b"\n"))
        self._state(output, Position(epoch, spool.seq, spool.name, number, complete=True))
        self.logger.info("replayed %s (%d lines)", spool.name, number)

    def _storable(self, message: dict[str, t.Any], line: bytes) -> bytes:
        """The RECORD line under the tap's rule for strings (itself if nothing changed)."""
        record = message.get("record")
        if not isinstance(record, dict):
            return line
        if not make_record_storable(record, logger=self.logger, stream=str(message["stream"])):
            return line  # an escaped backslash before "u0000": nothing to replace
        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()

    def _state(self, output: t.BinaryIO, position: Position) -> None:
        value = {**self.tap_state, POSITION_KEY: position.as_state()}
        self._write(output, json.dumps({"type": "STATE", "value": value}).encode())

    def _write(self, output: t.BinaryIO, line: bytes) -> None:
        output.write(line + b"\n")
        self.lines_out += 1


def main(argv: t.Sequence[str] | None = None) -> None:
    """Console entry point ``tap-strava-replay``."""
    options = parser(PROG, "Replay pending spools, in order, into one target.", state=True)
    args = options.parse_args(argv)

    def body() -> int:
        if args.about:
            print(json.dumps(ABOUT, indent=2))
            return 0
        if args.discover:
            print(json.dumps({"streams": []}))
            return 0
        config = load_config(args.config)
        consumer = str(config.get("consumer") or "").strip()
        if not CONSUMER_NAME.match(consumer):
            msg = f"consumer {consumer!r} is not a plain name: set consumer, e.g. postgres"
            raise UsageError(msg)
        consumers = consumers_setting(config)
        if consumer not in consumers:
            msg = (
                f"consumer {consumer!r} is not in consumers {consumers}: add it, or its "
                "spools would be pruned before it applied them"
            )
            raise UsageError(msg)
        state = read_json_file(args.state, "state") if args.state else {}
        csv_folders = str(config.get("csv_folders", "")).lower() in {"true", "1", "yes"}
        replay = Replay(
            SpoolFolder(spool_dir(config)), consumer, consumers, state, csv_folders=csv_folders
        )
        replay.run(sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0

    run_main(PROG, body)


if __name__ == "__main__":
    main()
