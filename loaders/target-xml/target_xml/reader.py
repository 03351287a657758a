"""Reading target-xml's files back: the records as Python values, and validation.

``read_records(path)`` streams the records of an ``.xml`` file (memory stays flat) as
dicts: integers ``int``, numbers ``Decimal``, booleans ``bool``, date-times ``datetime``
(``date``, ``time``), strings unescaped, null ``None``. It needs the ``.xsd`` beside the
file (named in ``xsi:noNamespaceSchemaLocation``), which keeps the Singer schema.
"""

from __future__ import annotations

import datetime
import decimal
import json
import typing as t
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from target_xml import values
from target_xml.schema import ENTRY, Node, plan
from target_xml.writer import NIL, NO_NS_LOCATION
from target_xml.xsd import XS


def schema_path(xml_path: Path) -> Path:
    """The XSD a document names (``xsi:noNamespaceSchemaLocation``), beside it."""
    for _, root in etree.iterparse(str(xml_path), events=("start",)):
        location = root.get(NO_NS_LOCATION)
        if not location:
            raise ValueError(f"{xml_path} names no schema")
        return xml_path.parent / urllib.parse.unquote(location)
    raise ValueError(f"{xml_path} is empty")


def singer_schema(xsd_path: Path) -> dict[str, t.Any]:
    """The Singer schema an XSD was generated from (kept in its ``xs:appinfo``)."""
    document = etree.parse(str(xsd_path))
    (kept,) = document.iterfind(f"{{{XS}}}annotation/{{{XS}}}appinfo/singer-schema")
    return t.cast("dict[str, t.Any]", json.loads(kept.text or "{}"))


def validate(xml_path: Path, xsd_path: Path | None = None) -> None:
    """Raise ``lxml.etree.DocumentInvalid`` unless the document fits its XSD."""
    xsd = etree.XMLSchema(etree.parse(str(xsd_path or schema_path(xml_path))))
    xsd.assertValid(etree.parse(str(xml_path)))


def read_records(xml_path: Path) -> Iterator[dict[str, t.Any]]:
    """The records of a document, in order, one at a time."""
    node = plan(singer_schema(schema_path(xml_path)), top=True)
    depth = 0
    for event, element in etree.iterparse(str(xml_path), events=("start", "end")):
        if event == "start":
            depth += 1
            continue
        depth -= 1
        if depth == 1:
            yield read_object(element, node)
            element.clear()
            parent = element.getparent()
            while parent is not None and element.getprevious() is not None:
                del parent[0]


def read_object(element: etree._Element, node: Node) -> dict[str, t.Any]:
    """A ``<record>`` or object element as a dict (``node``: its plan)."""
    plain = node.plain_props
    out: dict[str, t.Any] = {}
    for child in element:
        if child.tag == ENTRY:
            out[values.unescape(child.get("key", ""))] = read_loose(child)
        elif child.tag in plain and node.kind == "object":
            out[child.tag] = read_value(child, plain[child.tag].node)
        else:
            out[str(child.tag)] = read_loose(child)
    return out


def read_value(element: etree._Element, node: Node) -> t.Any:
    """The value of a typed element."""
    if element.get(NIL) in ("true", "1"):
        return None
    kind = node.kind
    text = element.text or ""
    if kind == "loose":
        return read_loose(element)
    if kind in ("object", "catchall"):
        return read_object(element, node)
    if kind == "array":
        assert node.items is not None
        return [read_value(item, node.items) for item in element]
    return _scalar(kind, text)


def _scalar(kind: str, text: str) -> t.Any:
    if kind == "integer":
        return int(text)
    if kind == "number":
        return decimal.Decimal(text)
    if kind == "boolean":
        return text.strip() in ("true", "1")
    if kind == "date-time":
        return values.parse_datetime(text.strip())
    if kind == "date":
        return datetime.date.fromisoformat(text.strip())
    if kind == "time":
        return values.parse_time(text.strip())
    return values.unescape(text)


def read_loose(element: etree._Element) -> t.Any:
    """The value of an element that says its type (``type="..."``)."""
    if element.get(NIL) in ("true", "1"):
        return None
    kind = element.get("type", "string")
    if kind == "object":
        return {
            values.unescape(child.get("key", ""))
            if child.tag == ENTRY
            else str(child.tag): read_loose(child)
            for child in element
        }
    if kind == "array":
        return [read_loose(item) for item in element]
    return _scalar(kind, element.text or "")
