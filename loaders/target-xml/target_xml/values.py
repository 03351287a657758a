"""Text forms: the escape for what XML 1.0 cannot carry, XML Schema lexical forms.

The escape. XML 1.0 cannot hold most C0 control characters (U+0000-U+0008, U+000B,
U+000C, U+000E-U+001F), lone surrogates (U+D800-U+DFFF) or U+FFFE/U+FFFF, not even as
character references, and lxml refuses them. Strava names have held such characters
(pasted text), so they are written as ``␛`` (U+241B SYMBOL FOR ESCAPE) followed by the
code point as four upper-case hex digits: U+0007 is ``␛0007``. The escape character
escapes itself (``␛241B``), so every ``␛`` in a document starts an escape and
:func:`unescape` restores the exact string. Strings without these characters (nearly
all) are written unchanged. Tab, LF and CR are legal and kept; lxml writes CR as
``&#13;`` (a raw CR would come back as LF).

Lexical forms. The SDK hands a target ``Decimal`` numbers and ``datetime`` objects;
``str(Decimal("1E-7"))`` is ``1E-7``, which is no ``xs:decimal``, so numbers are written
in positional notation (``0.0000001``), date-times in ISO 8601 with ``Z`` for UTC.
"""

from __future__ import annotations

import datetime
import decimal
import re
import typing as t

ESCAPE = "\u241b"
_NEEDS_ESCAPE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff\u241b]")
_ESCAPED = re.compile("\u241b([0-9A-F]{4})")


def _escape_one(match: re.Match[str]) -> str:
    return f"{ESCAPE}{ord(match.group()):04X}"


def escape(text: str) -> str:
    """``text`` with every character XML 1.0 cannot carry (and ``␛``) escaped."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(_escape_one, text)


def unescape(text: str) -> str:
    """The inverse of :func:`escape`."""
    if ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


class ValueMismatchError(ValueError):
    """A value that its schema's type cannot hold (written nowhere: the run stops)."""


def integer_text(value: t.Any) -> str:
    """An ``xs:integer``; an integral Decimal or float (``72.0``) is an integer too."""
    if isinstance(value, bool):
        raise ValueMismatchError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (decimal.Decimal, float)):
        number = _decimal(value)
        if number == number.to_integral_value():
            return format(number.quantize(decimal.Decimal(1)), "f")
    raise ValueMismatchError(f"{value!r} is not an integer")


def _decimal(value: decimal.Decimal | float) -> decimal.Decimal:
    number = value if isinstance(value, decimal.Decimal) else decimal.Decimal(repr(value))
    if not number.is_finite():
        raise ValueMismatchError(f"{value!r} has no xs:decimal form")
    return number


def decimal_text(value: t.Any) -> str:
    """An ``xs:decimal`` in positional notation: ``Decimal("1E-7")`` is ``0.0000001``."""
    if isinstance(value, bool):
        raise ValueMismatchError(f"{value!r} is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (decimal.Decimal, float)):
        return format(_decimal(value), "f")
    raise ValueMismatchError(f"{value!r} is not a number")


def boolean_text(value: t.Any) -> str:
    """``true`` or ``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    raise ValueMismatchError(f"{value!r} is not a boolean")


def _fromiso(text: str) -> str:
    # Python 3.10's fromisoformat does not read a trailing Z.
    return text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text


def datetime_text(value: t.Any) -> str:
    """An ``xs:dateTime``: ISO 8601, ``Z`` for UTC; a string is parsed first."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(_fromiso(value))
        except ValueError:
            raise ValueMismatchError(f"{value!r} is not a date-time") from None
    if not isinstance(value, datetime.datetime):
        raise ValueMismatchError(f"{value!r} is not a date-time")
    offset = value.utcoffset()
    if offset is not None and offset % datetime.timedelta(minutes=1):
        # xs:dateTime offsets have no seconds: such a time is written in UTC.
        value = value.astimezone(datetime.timezone.utc)
        offset = datetime.timedelta(0)
    text = value.isoformat()
    return text[:-6] + "Z" if offset == datetime.timedelta(0) else text


def date_text(value: t.Any) -> str:
    """An ``xs:date`` (a datetime's date part is not accepted: that would drop data)."""
    if isinstance(value, str):
        try:
            value = datetime.date.fromisoformat(value)
        except ValueError:
            raise ValueMismatchError(f"{value!r} is not a date") from None
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise ValueMismatchError(f"{value!r} is not a date")
    return value.isoformat()


def time_text(value: t.Any) -> str:
    """An ``xs:time``."""
    if isinstance(value, str):
        try:
            value = datetime.time.fromisoformat(_fromiso(value))
        except ValueError:
            raise ValueMismatchError(f"{value!r} is not a time") from None
    if not isinstance(value, datetime.time):
        raise ValueMismatchError(f"{value!r} is not a time")
    offset = value.utcoffset()
    text = value.isoformat()
    return text[:-6] + "Z" if offset == datetime.timedelta(0) else text


def string_text(value: t.Any) -> str:
    """A string, escaped (see the module's docstring)."""
    if not isinstance(value, str):
        raise ValueMismatchError(f"{value!r} is not a string")
    return escape(value)


def parse_datetime(text: str) -> datetime.datetime:
    """An ``xs:dateTime`` as written by :func:`datetime_text`."""
    return datetime.datetime.fromisoformat(_fromiso(text))


def parse_time(text: str) -> datetime.time:
    """An ``xs:time`` as written by :func:`time_text`."""
    return datetime.time.fromisoformat(_fromiso(text))
