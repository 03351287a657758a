"""What a Singer (JSON) schema means for XML: one plan per schema node.

The writer, the XSD generator and the reader all walk the same plan, so the three can
never disagree about how a property is represented. A property is either *typed* (one
JSON type besides ``null``: the XSD gives it an XML Schema type and the text is that
type's lexical form) or *loose* (several types, ``anyOf``, no type at all: the element
carries ``type="..."`` so the value can be read back without guessing).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing as t

from lxml import etree

#: Element name of a key that cannot be an element name (or is undeclared where declared
#: properties are): ``<_ key="the key">``. A key literally named ``_`` is written so too.
ENTRY = "_"
#: Children of an array, and of the root: fixed names, never keys.
ITEM = "item"
RECORD = "record"
ROOT = "records"

Kind = t.Literal[
    "integer",
    "number",
    "boolean",
    "string",
    "date-time",
    "date",
    "time",
    "object",
    "catchall",
    "array",
    "loose",
]

_FORMATS = {"date-time": "date-time", "date": "date", "time": "time"}

# XML 1.0 (fifth edition) names without a colon (NCName).
_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff"
    "\u200c-\u200d\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd"
    "\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
_NCNAME = re.compile(f"[{_NAME_START}][{_NAME_CHAR}]*")


@functools.lru_cache(maxsize=4096)
def is_plain_name(key: str) -> bool:
    """True if ``key`` can be an element's name as it is (else it goes in ``key="..."``).

    Names starting with ``xml`` (any case) are reserved by XML, and ``_`` is the entry
    element itself. The final check asks lxml, whose rules are the ones that count when
    the element is created and when the document is validated.
    """
    if key == ENTRY or key[:3].lower() == "xml" or not _NCNAME.fullmatch(key):
        return False
    try:
        etree.Element(key)
    except ValueError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Prop:
    """A declared property of an object."""

    key: str
    node: Node
    required: bool

    @property
    def plain(self) -> bool:
        """Written as ``<key>`` in schema order (else as an ``<_ key="...">`` entry)."""
        return is_plain_name(self.key)


@dataclasses.dataclass(frozen=True)
class Node:
    """How the values of one schema node are written, declared and read."""

    kind: Kind
    nullable: bool = True
    #: object: the declared properties, in schema order.
    props: tuple[Prop, ...] = ()
    #: object: undeclared keys allowed (JSON Schema's default unless additionalProperties
    #: is false), written as ``<_ key="...">`` entries after the declared elements.
    extras: bool = True
    #: array: the items' node.
    items: Node | None = None

    @functools.cached_property
    def plain_props(self) -> dict[str, Prop]:
        """Declared properties written as elements of their own name."""
        return {p.key: p for p in self.props if p.plain}

    @functools.cached_property
    def required(self) -> tuple[str, ...]:
        """Keys every value of this object must have."""
        return tuple(p.key for p in self.props if p.required)

    @property
    def has_entries(self) -> bool:
        """Whether ``<_>`` entries may follow the declared elements."""
        return self.extras or any(not p.plain for p in self.props)


LOOSE = Node("loose")


def _types(schema: dict[str, t.Any]) -> tuple[list[str], bool]:
    declared = schema.get("type")
    if declared is None:
        return [], True
    names = [declared] if isinstance(declared, str) else list(declared)
    return [n for n in names if n != "null"], "null" in names


def plan(schema: t.Any, *, top: bool = False) -> Node:
    """The plan of a JSON schema node (``top``: a stream's record, always an object)."""
    if not isinstance(schema, dict):
        return LOOSE
    if top:
        return _object(schema, nullable=False)
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema and "type" not in schema:
            options = [o for o in schema[combinator] if o != {"type": "null"}]
            nullable = len(options) < len(schema[combinator])
            if len(options) == 1 and isinstance(options[0], dict):
                inner = plan(options[0])
                return dataclasses.replace(inner, nullable=inner.nullable or nullable)
            return LOOSE
    types, nullable = _types(schema)
    if len(types) != 1:
        return LOOSE
    (kind,) = types
    if kind == "object":
        return _object(schema, nullable=nullable)
    if kind == "array":
        return Node("array", nullable, items=plan(schema.get("items")))
    if kind == "string":
        return Node(t.cast("Kind", _FORMATS.get(schema.get("format", ""), "string")), nullable)
    if kind in ("integer", "number", "boolean"):
        return Node(t.cast("Kind", kind), nullable)
    return LOOSE


def _object(schema: dict[str, t.Any], *, nullable: bool) -> Node:
    properties = schema.get("properties")
    extras = schema.get("additionalProperties", True) is not False or bool(
        schema.get("patternProperties")
    )
    if not properties:
        # A bare {"type": "object"} (a catch-all such as _unknown_fields): anything goes.
        return Node("catchall", nullable) if extras else Node("object", nullable, extras=False)
    required = set(schema.get("required") or ())
    props = tuple(Prop(key, plan(spec), key in required) for key, spec in properties.items())
    return Node("object", nullable, props=props, extras=extras)
