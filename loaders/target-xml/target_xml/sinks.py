"""The sink: each record written to its stream's document as it comes."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import RecordSink

from target_xml.schema import plan
from target_xml.writer import XMLDocument, record_element

if t.TYPE_CHECKING:
    from target_xml.documents import DocumentSet


class XMLSink(RecordSink):
    """Writes every record at once (no batch held), so memory does not grow with a stream.

    The document is opened with the first record (a stream without records in a run
    leaves no file) and registered with the target's :class:`DocumentSet`, which
    finishes it even when the SDK retires this sink mid-run without ``clean_up()``.
    """

    def __init__(
        self,
        target: t.Any,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        """Plan the stream's schema once (after the SDK added its metadata fields)."""
        super().__init__(target, stream_name, schema, key_properties)
        self._documents: DocumentSet = target.documents
        self._plan = plan(self.schema, top=True)
        self._document: XMLDocument | None = None

    def process_record(self, record: dict, context: dict) -> None:
        """Serialize the record into the stream's document (opened on first use)."""
        _ = context
        element = record_element(record, self._plan)
        if self._document is None:
            self._document = self._documents.open(self.stream_name, self.schema, self._plan)
        self._document.write(element)

    def clean_up(self) -> None:
        """Finish the document: close the root element, drop the ``.part`` suffix."""
        if self._document is not None:
            self._documents.finish(self._document)
        super().clean_up()
