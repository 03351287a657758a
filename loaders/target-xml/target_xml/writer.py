"""Records to XML elements, and one stream's document written record by record.

A record becomes ``<record>`` with one child per field: typed fields as their XML
Schema type's text (see :mod:`target_xml.values`), objects as nested elements, arrays
as repeated ``<item>`` children (no child: an empty array), null as
``xsi:nil="true"`` (an empty element is the empty string). Keys that are no XML
names, and keys the schema does not declare beside declared ones, follow the
declared fields as ``<_ key="...">`` entries; such loose values (and fields of
several or no types) say what they are in ``type="..."``.
"""

from __future__ import annotations

import datetime
import decimal
import os
import typing as t
import urllib.parse
from pathlib import Path

from lxml import etree

from target_xml import values
from target_xml.schema import ENTRY, ITEM, RECORD, ROOT, Node, is_plain_name

XSI = "http://www.w3.org/2001/XMLSchema-instance"
NIL = f"{{{XSI}}}nil"
NO_NS_LOCATION = f"{{{XSI}}}noNamespaceSchemaLocation"
_NSMAP = {"xsi": XSI}

_TYPED_TEXT: dict[str, t.Callable[[t.Any], str]] = {
    "integer": values.integer_text,
    "number": values.decimal_text,
    "boolean": values.boolean_text,
    "string": values.string_text,
    "date-time": values.datetime_text,
    "date": values.date_text,
    "time": values.time_text,
}


class RecordMismatchError(ValueError):
    """A record that does not fit its stream's schema, with the path of the field."""


def record_element(record: dict[str, t.Any], node: Node) -> etree._Element:
    """The ``<record>`` element of one record (``node``: its stream's plan).

    ``xmlns:xsi`` is declared on every record: lxml serializes each record on its own,
    and would otherwise repeat the declaration on every ``xsi:nil`` element.
    """
    element = etree.Element(RECORD, nsmap=_NSMAP)
    _fill_object(element, node, record, "")
    return element


def _child(parent: etree._Element, key: str, plain: bool) -> etree._Element:
    if plain:
        return etree.SubElement(parent, key)
    return etree.SubElement(parent, ENTRY, key=values.escape(key))


def _fill(element: etree._Element, node: Node, value: t.Any, path: str) -> None:
    if value is None:
        if not node.nullable:
            raise RecordMismatchError(f"{path or 'record'}: null where the schema allows none")
        element.set(NIL, "true")
        return
    kind = node.kind
    if kind == "loose":
        _fill_loose(element, value, path)
    elif kind == "object":
        if not isinstance(value, dict):
            raise RecordMismatchError(f"{path}: {value!r} is not an object")
        _fill_object(element, node, value, path)
    elif kind == "catchall":
        if not isinstance(value, dict):
            raise RecordMismatchError(f"{path}: {value!r} is not an object")
        for key, item in value.items():
            _fill_loose(_child(element, key, is_plain_name(key)), item, f"{path}.{key}")
    elif kind == "array":
        if not isinstance(value, (list, tuple)):
            raise RecordMismatchError(f"{path}: {value!r} is not an array")
        items = node.items
        assert items is not None
        for index, item in enumerate(value):
            _fill(etree.SubElement(element, ITEM), items, item, f"{path}[{index}]")
    else:
        try:
            element.text = _TYPED_TEXT[kind](value)
        except values.ValueMismatchError as exc:
            raise RecordMismatchError(f"{path}: {exc}") from None


def _fill_object(element: etree._Element, node: Node, value: dict, path: str) -> None:
    for key in node.required:
        if key not in value:
            raise RecordMismatchError(f"{path or 'record'}: required field {key!r} is missing")
    plain = node.plain_props
    written = 0
    for key, prop in plain.items():
        if key in value:
            _fill(etree.SubElement(element, key), prop.node, value[key], f"{path}.{key}")
            written += 1
    if written == len(value):
        return
    # What the schema does not declare as an element: entries, in the record's order.
    declared = {p.key for p in node.props}
    for key, item in value.items():
        if key in plain:
            continue
        if key not in declared and not node.extras:
            raise RecordMismatchError(f"{path}.{key}: not in the schema (no other keys allowed)")
        _fill_loose(_child(element, key, plain=False), item, f"{path}.{key}")


def _fill_loose(element: etree._Element, value: t.Any, path: str) -> None:
    """A value of no declared type, self-described by ``type="..."``."""
    if value is None:
        element.set(NIL, "true")
    elif isinstance(value, bool):
        element.set("type", "boolean")
        element.text = values.boolean_text(value)
    elif isinstance(value, int):
        element.set("type", "integer")
        element.text = str(value)
    elif isinstance(value, (decimal.Decimal, float)):
        element.set("type", "number")
        try:
            element.text = values.decimal_text(value)
        except values.ValueMismatchError as exc:
            raise RecordMismatchError(f"{path}: {exc}") from None
    elif isinstance(value, str):
        element.set("type", "string")
        element.text = values.escape(value)
    elif isinstance(value, datetime.datetime):
        element.set("type", "date-time")
        element.text = values.datetime_text(value)
    elif isinstance(value, datetime.date):
        element.set("type", "date")
        element.text = values.date_text(value)
    elif isinstance(value, datetime.time):
        element.set("type", "time")
        element.text = values.time_text(value)
    elif isinstance(value, dict):
        element.set("type", "object")
        for key, item in value.items():
            _fill_loose(_child(element, key, is_plain_name(key)), item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        element.set("type", "array")
        for index, item in enumerate(value):
            _fill_loose(etree.SubElement(element, ITEM), item, f"{path}[{index}]")
    else:
        raise RecordMismatchError(f"{path}: {type(value).__name__} has no XML form")


class XMLDocument:
    """One stream's ``.xml`` file, written record by record under a ``.part`` name.

    The document is open (its root element started) from the first record on. Every
    record is serialized as it comes and dropped, so memory does not grow with the
    stream. :meth:`flush` pushes what was written to the disk (before the target passes
    a STATE on); :meth:`finish` closes the root element and renames ``X.xml.part`` to
    ``X.xml``; :meth:`close_incomplete` closes the root element but keeps the ``.part``
    name (a run that failed: every record written is in a well-formed document).
    """

    def __init__(self, part: Path, final: Path, stream_name: str, xsd_name: str) -> None:
        """Create ``part`` (it must not exist) and write the root's start tag."""
        self.part = part
        self.final = final
        self.records = 0
        self._open = True
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._file = os.fdopen(fd, "wb")
        self._xmlfile = etree.xmlfile(self._file, encoding="utf-8")
        self._writer = self._xmlfile.__enter__()
        self._writer.write_declaration()
        self._root = self._writer.element(
            ROOT,
            {"stream": values.escape(stream_name), NO_NS_LOCATION: urllib.parse.quote(xsd_name)},
            nsmap={"xsi": XSI},
        )
        self._root.__enter__()
        self._writer.write("\n")

    @property
    def is_open(self) -> bool:
        """Whether records can still be written."""
        return self._open

    def write(self, element: etree._Element) -> None:
        """Serialize one record element (one line unless its values hold newlines)."""
        self._writer.write(element)
        self._writer.write("\n")
        self.records += 1

    def flush(self) -> None:
        """Everything written so far on the disk (lxml's buffer, Python's, the kernel's)."""
        if not self._open:
            return
        self._writer.flush()
        self._file.flush()
        os.fsync(self._file.fileno())

    def _close(self) -> None:
        self._open = False
        try:
            self._root.__exit__(None, None, None)
            self._xmlfile.__exit__(None, None, None)
            self._file.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()

    def finish(self) -> Path:
        """Close the document and give it its final name (idempotent)."""
        if self._open:
            self._close()
            self.part.replace(self.final)
        return self.final

    def close_incomplete(self) -> Path:
        """Close the document well-formed but keep the ``.part`` name (failed run)."""
        if self._open:
            self._close()
        return self.part if self.part.exists() else self.final
