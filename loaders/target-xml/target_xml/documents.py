"""Every document a run opened: names, flushing before STATE, finishing on every exit."""

from __future__ import annotations

import atexit
import datetime
import logging
import re
import typing as t
import weakref
from pathlib import Path

from target_xml import xsd
from target_xml.schema import Node
from target_xml.writer import XMLDocument

_UNSAFE_IN_FILE_NAMES = re.compile(r"[/\\\x00-\x1f]")


class DocumentSet:
    """The open documents of one target process, by stream.

    The SDK calls ``clean_up()`` only on the sinks it still holds at the end: a sink it
    retired earlier (a stream's schema changed, then a drain) is never told. So the
    target itself finishes a stream's documents when a new sink replaces the old one,
    and all of them at the end of the input; if the process exits any other way (an
    error), documents still open are closed well-formed but keep their ``.part`` name.
    """

    def __init__(
        self, folder: Path, naming_scheme: str, logger: logging.Logger, started: datetime.datetime
    ) -> None:
        """Nothing is created until the first record of a stream."""
        self.folder = folder
        self.naming_scheme = naming_scheme
        self.logger = logger
        self.timestamp = started.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self._open: dict[str, list[XMLDocument]] = {}
        atexit.register(_close_at_exit, weakref.ref(self))

    def _stem(self, stream_name: str) -> str:
        safe = _UNSAFE_IN_FILE_NAMES.sub("_", stream_name)
        try:
            return self.naming_scheme.format(stream_name=safe, timestamp=self.timestamp)
        except (KeyError, IndexError, ValueError) as exc:
            msg = (
                f"file_naming_scheme {self.naming_scheme!r}: only {{stream_name}} and "
                f"{{timestamp}} can be used ({exc!r})"
            )
            raise ValueError(msg) from None

    def open(self, stream_name: str, schema: dict[str, t.Any], node: Node) -> XMLDocument:
        """A new document for the stream, under a name no earlier run or sink has used.

        ``<stem>.xml`` (written as ``<stem>.xml.part`` until finished) and ``<stem>.xsd``;
        ``<stem>-2`` and so on when a name is taken (a second schema of the stream in
        this run, or a run in the same second), so an existing file is never touched.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        base = self._stem(stream_name)
        number = 1
        while True:
            stem = base if number == 1 else f"{base}-{number}"
            number += 1
            final = self.folder / f"{stem}.xml"
            schema_file = self.folder / f"{stem}.xsd"
            part = self.folder / f"{stem}.xml.part"
            if final.exists() or schema_file.exists():
                continue
            try:
                document = XMLDocument(part, final, stream_name, schema_file.name)
            except FileExistsError:
                continue
            break
        temporary = schema_file.with_name(schema_file.name + ".part")
        temporary.write_bytes(xsd.generate(stream_name, schema, node))
        temporary.replace(schema_file)
        self._open.setdefault(stream_name, []).append(document)
        self.logger.info("Writing stream '%s' to %s", stream_name, final)
        return document

    def finish(self, document: XMLDocument) -> None:
        """Close one document under its final name."""
        if document.is_open:
            document.finish()
            self.logger.info("Wrote %d records to %s", document.records, document.final)
        for documents in self._open.values():
            if document in documents:
                documents.remove(document)

    def finish_stream(self, stream_name: str) -> None:
        """Finish the documents of a stream whose sink is being replaced."""
        for document in list(self._open.get(stream_name, ())):
            self.finish(document)

    def finish_all(self) -> None:
        """Finish every open document (the input ended, or the target was told to stop)."""
        for stream_name in list(self._open):
            self.finish_stream(stream_name)

    def flush_all(self) -> None:
        """Every record received so far on the disk: called before a STATE is passed on."""
        for documents in self._open.values():
            for document in documents:
                document.flush()

    def close_incomplete_all(self) -> None:
        """At an exit without the end of the input: well-formed, but still ``.part``."""
        for stream_name, documents in self._open.items():
            for document in documents:
                if document.is_open:
                    path = document.close_incomplete()
                    self.logger.warning(
                        "The run did not finish: %d records of stream '%s' are in %s",
                        document.records,
                        stream_name,
                        path,
                    )
        self._open.clear()


def _close_at_exit(ref: weakref.ReferenceType[DocumentSet]) -> None:
    """The process exits without the end of the input (an error): close what is open."""
    documents = ref()
    if documents is not None:
        documents.close_incomplete_all()
