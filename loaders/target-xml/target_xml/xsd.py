"""The XML Schema (XSD 1.0, as libxml2 validates) of a stream, from its Singer schema.

Declared fields are elements in schema order (``xs:sequence``, each optional unless
the Singer schema requires it, ``nillable`` where it allows null). Where the Singer
schema allows undeclared keys, content is open: a bare object (a catch-all such as
``_unknown_fields``) holds ``xs:any``; an object with declared properties takes
``<_ key="...">`` entries after them (XSD 1.0 forbids a wildcard beside optional
declared elements: the content model would not be deterministic). Loose values
(several types, or none) are open too. The Singer schema itself is kept in
``xs:appinfo``, so :mod:`target_xml.reader` needs nothing but the two files.
"""

from __future__ import annotations

import json
import typing as t

from lxml import etree

from target_xml.schema import ENTRY, ITEM, RECORD, ROOT, Node
from target_xml.values import escape

XS = "http://www.w3.org/2001/XMLSchema"
LOOSE_TYPE = "value"
ENTRY_TYPE = "entry"
CATCHALL_TYPE = "open-object"
TYPE_ATTRIBUTE_TYPE = "value-type"
LOOSE_KINDS = (
    "string",
    "integer",
    "number",
    "boolean",
    "date-time",
    "date",
    "time",
    "object",
    "array",
)
_SIMPLE = {
    "integer": "xs:integer",
    "number": "xs:decimal",
    "boolean": "xs:boolean",
    "string": "xs:string",
    "date-time": "xs:dateTime",
    "date": "xs:date",
    "time": "xs:time",
}


def _xs(parent: etree._Element, tag: str, **attributes: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{XS}}}{tag}", attributes)


def _wildcard(parent: etree._Element) -> None:
    # skip, not lax: an undeclared key named like a global element ("records") must not
    # be validated as one.
    _xs(parent, "any", processContents="skip", minOccurs="0", maxOccurs="unbounded")


def _declare(
    parent: etree._Element, name: str, node: Node, *, min_occurs: str, max_occurs: str = "1"
) -> None:
    """An ``xs:element`` for a value of ``node`` (``parent``: a sequence)."""
    element = _xs(parent, "element", name=name, minOccurs=min_occurs, maxOccurs=max_occurs)
    if node.nullable:
        element.set("nillable", "true")
    kind = node.kind
    if kind in _SIMPLE:
        element.set("type", _SIMPLE[kind])
    elif kind == "loose":
        element.set("type", LOOSE_TYPE)
    elif kind == "catchall":
        element.set("type", CATCHALL_TYPE)
    elif kind == "object":
        _object_type(element, node)
    else:  # array
        sequence = _xs(_xs(element, "complexType"), "sequence")
        assert node.items is not None
        _declare(sequence, ITEM, node.items, min_occurs="0", max_occurs="unbounded")


def _object_type(element: etree._Element, node: Node) -> None:
    sequence = _xs(_xs(element, "complexType"), "sequence")
    for prop in node.props:
        if prop.plain:
            _declare(sequence, prop.key, prop.node, min_occurs="1" if prop.required else "0")
    if node.has_entries:
        _xs(
            sequence,
            "element",
            name=ENTRY,
            type=ENTRY_TYPE,
            nillable="true",
            minOccurs="0",
            maxOccurs="unbounded",
        )


def _open_type(schema: etree._Element, name: str, *, key: bool) -> None:
    complex_type = _xs(schema, "complexType", name=name, mixed="true")
    _wildcard(_xs(complex_type, "sequence"))
    _xs(complex_type, "attribute", name="type", type=TYPE_ATTRIBUTE_TYPE)
    if key:
        _xs(complex_type, "attribute", name="key", type="xs:string", use="required")


def generate(stream_name: str, singer_schema: dict[str, t.Any], node: Node) -> bytes:
    """The XSD document of a stream whose records follow ``node`` (its plan)."""
    schema = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    schema.set("elementFormDefault", "unqualified")
    annotation = _xs(schema, "annotation")
    _xs(annotation, "documentation").text = (
        f"Records of the Singer stream {json.dumps(stream_name)}, written by target-xml. "
        "null is xsi:nil; an empty element is the empty string (or an empty array or "
        "object); keys that are no XML names are <_ key=...> entries; characters XML 1.0 "
        "cannot carry are written as U+241B and four hex digits (U+241B itself too)."
    )
    info = _xs(annotation, "appinfo")
    # ensure_ascii: control characters in descriptions become JSON escapes, not XML.
    kept = etree.SubElement(info, "singer-schema", stream=escape(stream_name))
    kept.text = json.dumps(singer_schema, default=str)

    root = _xs(schema, "element", name=ROOT)
    root_type = _xs(root, "complexType")
    records = _xs(_xs(root_type, "sequence"), "element", name=RECORD)
    records.set("minOccurs", "0")
    records.set("maxOccurs", "unbounded")
    _object_type(records, node)
    _xs(root_type, "attribute", name="stream", type="xs:string", use="required")

    kinds = _xs(schema, "simpleType", name=TYPE_ATTRIBUTE_TYPE)
    restriction = _xs(kinds, "restriction", base="xs:token")
    for kind in LOOSE_KINDS:
        _xs(restriction, "enumeration", value=kind)
    _open_type(schema, LOOSE_TYPE, key=False)
    _open_type(schema, ENTRY_TYPE, key=True)
    catchall = _xs(schema, "complexType", name=CATCHALL_TYPE)
    _wildcard(_xs(catchall, "sequence"))
    return t.cast(
        "bytes",
        etree.tostring(schema, xml_declaration=True, encoding="utf-8", pretty_print=True),
    )
