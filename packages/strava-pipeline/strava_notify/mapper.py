"""``mapper-strava-tally``: a Singer mapper that passes everything through and tallies it.

Sits between a tap and a target in any Singer pipeline (``tap-strava | mapper-strava-tally
--config c.json | target-x``). Every input line goes to stdout exactly as it came (no
re-serialization: numbers, key order and time stamps stay byte-for-byte what the tap
wrote), and a tally of the run (records per stream; new, updated and unchanged activities;
a quota stop) is written to ``tally_path`` when the input ends.

The mapper deliberately never notifies anyone: its end of input comes *before* the target
has committed, and it also comes when the tap crashed, so it cannot know the outcome. The
job wrapper (``strava-job``) reads the tally after Meltano exits and posts once.
"""

from __future__ import annotations

import json
import logging
import sys
import typing as t
from collections import Counter
from pathlib import Path

from singer_sdk import InlineMapper
from singer_sdk import typing as th
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.io_base import SingerReader

from strava_notify.tally import RunTally, write_tally

if t.TYPE_CHECKING:
    from singer_sdk.helpers.capabilities import CapabilitiesEnum
    from singer_sdk.singerlib import Message

logger = logging.getLogger(__name__)


class PassThroughReader(SingerReader):
    """Reads Singer lines, forwards each one verbatim, then hands it on for tallying.

    Forwarding comes first and does not depend on parsing: a line the tally cannot make
    sense of (an unknown message type, even broken JSON) still reaches the target, which
    is the component entitled to reject it.
    """

    def __init__(self, output: t.TextIO | None = None, *, csv_values: bool = False) -> None:
        """Forward to ``output`` (standard output unless a test passes a buffer)."""
        super().__init__()
        self.output = output
        self.csv_values = csv_values
        # Per stream: the properties a flattening target expands (objects with properties).
        self._expanded: dict[str, set[str]] = {}

    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> t.Counter[str]:
        """Forward and dispatch every line; count them by message type."""
        output = self.output or sys.stdout
        stats: t.Counter[str] = Counter()
        for line in file_input or self.default_input:
            self._current_message = line
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            message_type = message.get("type") if isinstance(message, dict) else None
            output.write(self._csv_line(message, line) if self.csv_values else line)
            # Flushed per line like the SDK's own writer: a target sees each message as
            # soon as the tap sent it, so a slow (rate-paced) tap is not held back here.
            output.flush()
            if message is None:
                stats["UNPARSEABLE"] += 1
                continue
            callback = callbacks.get(str(message_type))
            if callback is not None:
                callback(message)
            stats[str(message_type)] += 1
        return stats

    def _csv_line(self, message: t.Any, line: str) -> str:
        """A RECORD with its values as a CSV file should hold them; anything else verbatim.

        target-csv writes Python's ``True``/``False`` and, for lists and objects below the
        flattened level, ``json.dumps`` text with backslash-u escapes, while the rest of the file
        is plain UTF-8. Here booleans become ``true``/``false`` (what JSON, PostgreSQL's
        text form, pandas, Excel and LibreOffice read as booleans) and nested values
        become UTF-8 JSON text, so that target-csv has nothing left to convert.
        """
        if not isinstance(message, dict):
            return line
        stream = str(message.get("stream"))
        if message.get("type") == "SCHEMA":
            properties = (message.get("schema") or {}).get("properties") or {}
            self._expanded[stream] = {
                name
                for name, spec in properties.items()
                if isinstance(spec, dict) and spec.get("properties")
            }
            return line
        record = message.get("record")
        if message.get("type") != "RECORD" or not isinstance(record, dict):
            return line
        expanded = self._expanded.get(stream, set())
        converted = {
            key: (
                {inner: csv_value(v) for inner, v in value.items()}
                if isinstance(value, dict) and key in expanded
                else csv_value(value)
            )
            for key, value in record.items()
        }
        return json.dumps({**message, "record": converted}, ensure_ascii=False) + "\n"


def csv_value(value: t.Any) -> t.Any:
    """One value as target-csv should write it (see :meth:`PassThroughReader._csv_line`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


class TallyMapper(InlineMapper):
    """Passes SCHEMA, RECORD, STATE, ACTIVATE_VERSION and BATCH through; tallies the run."""

    name = "mapper-strava-tally"
    package_name = "singer-tap-strava"  # the distribution this mapper ships in
    message_reader_class = PassThroughReader
    # No stream maps or flattening: this mapper must not change a single byte.
    capabilities: t.ClassVar[list[CapabilitiesEnum]] = [PluginCapabilities.ABOUT]

    config_jsonschema = th.PropertiesList(
        th.Property(
            "tally_path",
            th.StringType,
            description=(
                "JSON file written atomically when the input ends. Empty, in a missing "
                "folder or in the filesystem root (what an unset $STRAVA_TALLY_DIR "
                "expands to) means no tally."
            ),
        ),
        th.Property(
            "target_label",
            th.StringType,
            default="",
            description="The target this tally describes, e.g. CSV or Postgres.",
        ),
        th.Property(
            "new_activities_cap",
            th.IntegerType,
            default=10,
            description="How many new activities are described; the rest are only counted.",
        ),
        th.Property(
            "csv_values",
            th.BooleanType,
            default=False,
            description=(
                "In front of target-csv (flattening one level): records are rewritten with "
                "booleans as true/false and nested lists and objects as UTF-8 JSON text. "
                "Off: every line passes byte for byte."
            ),
        ),
    ).to_dict()

    def __init__(self, **kwargs: t.Any) -> None:
        """Set up the pass-through reader and an empty tally."""
        super().__init__(**kwargs)
        if isinstance(self.message_reader, PassThroughReader):
            self.message_reader.csv_values = bool(self.config.get("csv_values"))
        self.tally = RunTally(
            target_label=str(self.config.get("target_label") or ""),
            new_activities_cap=int(self.config.get("new_activities_cap", 10)),
            rows_written=bool(self.config.get("csv_values")),
        )
        self._warned = False

    def _tally(self, method: t.Callable[[t.Mapping[str, t.Any]], None], message: dict) -> None:
        """Feed the tally; a tally problem is logged once and never stops the data."""
        self.tally.seen(message.get("type"))
        try:
            method(message)
        except Exception:  # the load matters more than its statistics
            self.tally.tally_errors += 1
            if not self._warned:
                self._warned = True
                self.logger.warning("Could not tally a message; counts may be low", exc_info=True)

    def map_schema_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Tally the schema; nothing to emit, the line was already forwarded verbatim."""
        self._tally(self.tally.on_schema, message_dict)
        return ()

    def map_record_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Tally the record; nothing to emit, the line was already forwarded verbatim."""
        self._tally(self.tally.on_record, message_dict)
        return ()

    def map_state_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Tally the state; nothing to emit, the line was already forwarded verbatim."""
        self._tally(self.tally.on_state, message_dict)
        return ()

    def map_activate_version_message(self, message_dict: dict) -> t.Iterable[Message]:
        """Nothing to count; the line was already forwarded verbatim."""
        self.tally.seen(message_dict.get("type"))
        return ()

    def map_batch_message(self, message_dict: dict) -> t.Iterable[Message]:
        """BATCH manifests pass through too (the SDK's default refuses them)."""
        self.tally.seen(message_dict.get("type"))
        return ()

    def tally_path(self) -> Path | None:
        """Where to write the tally, or None when this run is not meant to keep one."""
        raw = str(self.config.get("tally_path") or "").strip()
        if not raw:
            return None
        path = Path(raw).expanduser().absolute()
        parent = path.parent
        if parent == Path(parent.anchor) or not parent.is_dir():
            return None
        return path

    def process_endofpipe(self) -> None:
        """Write the tally. This is *not* the outcome: the target may still fail."""
        path = self.tally_path()
        summary = self.tally.as_dict()
        counts = ", ".join(f"{name}: {c['records']}" for name, c in summary["streams"].items())
        if path is None:
            self.logger.info("Input ended (%s); no tally_path folder, tally not kept", counts)
            return
        try:
            write_tally(path, summary)
        except OSError as exc:
            # A missing tally makes the notification vaguer, never the load fail.
            self.logger.warning("Could not write the tally to %s: %s", path, exc)
            return
        self.logger.info("Input ended (%s); tally written to %s", counts, path)


def main() -> None:
    """Console entry point ``mapper-strava-tally``."""
    TallyMapper.cli()


if __name__ == "__main__":
    main()
