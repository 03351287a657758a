"""The ``target-xml`` command: settings, and the hooks that keep every document closed."""

from __future__ import annotations

import datetime
import typing as t
from pathlib import Path

from singer_sdk import Target
from singer_sdk import typing as th

from target_xml.documents import DocumentSet
from target_xml.sinks import XMLSink

if t.TYPE_CHECKING:
    from types import FrameType

    from singer_sdk.sinks import Sink

DEFAULT_NAMING_SCHEME = "{stream_name}-{timestamp}"


class TargetXML(Target):
    """Singer target: one XML file and its XSD per stream per run."""

    name = "target-xml"
    default_sink_class = XMLSink

    config_jsonschema = th.PropertiesList(
        th.Property(
            "output_path",
            th.StringType,
            default="output",
            title="Output Path",
            description="Folder the files are written to (created if missing); one per run "
            "in this project (output/$STRAVA_RUN_STAMP).",
        ),
        th.Property(
            "file_naming_scheme",
            th.StringType,
            default=DEFAULT_NAMING_SCHEME,
            title="File Naming Scheme",
            description="Name of a stream's files without .xml/.xsd: {stream_name} and "
            "{timestamp} (the run's start, UTC, 20261201T060000Z). A taken name gets -2, "
            "-3, ...: an existing file is never overwritten.",
        ),
    ).to_dict()

    _documents: DocumentSet | None = None

    @property
    def documents(self) -> DocumentSet:
        """The run's documents (created on first use: the config is parsed by then)."""
        if self._documents is None:
            self._documents = DocumentSet(
                Path(self.config.get("output_path") or "output"),
                self.config.get("file_naming_scheme") or DEFAULT_NAMING_SCHEME,
                self.logger,
                self.initialized_at_datetime,
            )
        return self._documents

    @property
    def initialized_at_datetime(self) -> datetime.datetime:
        """The target's start as a UTC datetime (the SDK keeps milliseconds since 1970)."""
        return datetime.datetime.fromtimestamp(self.initialized_at / 1000, tz=datetime.timezone.utc)

    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: t.Sequence[str] | None = None,
    ) -> Sink:
        """The stream's sink; when a new one replaces it, the old one's documents finish.

        The SDK retires a stream's sink when its schema or keys change and never calls
        that sink's ``clean_up()`` if a drain came in between: finish its documents now
        (it gets no more records; the new sink writes new files).
        """
        previous = self._sinks_active.get(stream_name)
        sink = super().get_sink(
            stream_name, record=record, schema=schema, key_properties=key_properties
        )
        if previous is not None and sink is not previous:
            self.documents.finish_stream(stream_name)
        return sink

    def _write_state_message(self, state: dict) -> None:
        """Flush every document to the disk before the STATE goes out.

        Meltano saves the bookmark as soon as the STATE line arrives: the records it
        covers must be on the disk by then.
        """
        self.documents.flush_all()
        super()._write_state_message(state)

    def process_endofpipe(self) -> None:
        """Finish every document (also those of retired sinks), then the SDK's drain."""
        self.documents.finish_all()
        super().process_endofpipe()

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """On SIGTERM the SDK drains and exits: finish the documents first."""
        self.documents.finish_all()
        super()._handle_termination(signum, frame)


if __name__ == "__main__":
    TargetXML.cli()
