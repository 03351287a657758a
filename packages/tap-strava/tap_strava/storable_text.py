r"""Strings every target can store: NUL and lone surrogates become U+FFFD.

Strava's JSON may carry ``\u0000`` and a lone surrogate escape such as ``\ud800`` (an
athlete's app cut an emoji in half), and so may an export archive's CSV. Python reads
both into a ``str``, but no UTF-8 target can store them: PostgreSQL's ``text`` and
``jsonb`` refuse NUL (target-postgres then fails the whole batch, on every re-run), and a
lone surrogate cannot be encoded in UTF-8 at all (target-csv, target-postgres and
``json.dumps(..., ensure_ascii=False).encode()`` raise).

The rule, for every string of every record of every stream (API, archive, push events),
at any depth (inside objects and lists) and in keys as in values: a surrogate pair that
stands as two code points becomes the one character it encodes; NUL (U+0000) and every
remaining surrogate (U+D800..U+DFFF) become U+FFFD, the replacement character. Nothing
else changes, and applying the rule twice changes nothing more, so a record's digest
(:mod:`tap_strava.digest`) is the same on every run and a re-run emits nothing new.

:func:`make_storable` applies it in place and reports where; :func:`make_record_storable`
also logs one warning per record (stream, id, count, where). The tap calls it in
:func:`tap_strava.conform.conform_to_schema`, which every record of every stream goes
through before its digest is taken; the spool replay (``strava_spool.replay``) calls it
on spools written before the rule existed.

Most strings are clean, and the check is made for that: an ASCII string (``isascii`` is a
flag lookup) is scanned for NUL only, and lists of numbers (streams, tracks) are
checked in C (``sum`` refuses anything but numbers) rather than walked item by item.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import typing as t

#: What NUL and a lone surrogate become.
REPLACEMENT = "\ufffd"
#: Most places one warning names (the count says how many in all).
MAX_NAMED = 5

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_search = _UNSTORABLE.search
_chain = itertools.chain.from_iterable
_NUMBERS = frozenset({int, float, bool})


def _combine(match: re.Match[str]) -> str:
    pair = match.group()
    return chr(0x10000 + ((ord(pair[0]) - 0xD800) << 10) + (ord(pair[1]) - 0xDC00))


def storable(text: str) -> str:
    """``text`` under the rule (itself when it is clean already)."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, _PAIR.sub(_combine, text))


#: An escape of NUL or of a surrogate (backslash, u, then 0000 or D800..DFFF, hex in
#: either case). An escaped backslash before "u0000" matches too: a false alarm costs the
#: walk, never a missed string.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
#: The UTF-8 bytes of a surrogate (the standard library decodes JSON bytes with
#: ``surrogatepass``, so they arrive as lone surrogates).
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")


def answer_is_storable(content: bytes) -> bool:
    """Whether every string of a JSON answer is storable, judged from its bytes alone.

    A few searches in C over a page's bytes instead of a walk over every string of every
    record: a page whose bytes cannot hold NUL or a lone surrogate needs no per-record
    check. A NUL byte counts as "maybe" too (it is also the sign of UTF-16/32, which these
    searches cannot read). ``False`` means "maybe": walk the records.
    """
    if b"\x00" in content:
        return False
    if b"\xed" in content and _SURROGATE_BYTES.search(content) is not None:
        return False
    return not (b"\\u" in content and _UNSTORABLE_ESCAPE.search(content) is not None)


def make_storable(value: t.Any) -> list[str]:
    """Apply the rule to every string inside ``value`` (a dict or list), in place.

    Returns the places changed (``name``, ``map.summary_polyline``, ``laps[3].name``, a
    key as ``<key>``); empty when everything was storable already, the usual case, which
    costs one pass that builds nothing (:func:`_dirty`).
    """
    found: list[str] = []
    if _dirty(value):
        _fix(value, "", found)
    return found


def _bad(text: str) -> bool:
    return ("\x00" in text) if text.isascii() else (_search(text) is not None)


def _dirty(value: t.Any) -> bool:
    """Whether anything inside ``value`` breaks the rule (the hot path: kept lean)."""
    kind = type(value)
    if kind is dict:
        try:
            keys = "".join(value)
        except TypeError:  # not from JSON: a key that is not a string
            keys = "".join(key for key in value if type(key) is str)
        if ("\x00" in keys) if keys.isascii() else (_search(keys) is not None):
            return True
        items: t.Iterable[t.Any] = value.values()
    elif kind is list:
        if not value:
            return False
        # Numbers only (a stream, a track's series) or lists of numbers only (latlng):
        # ``sum`` checks every item's type in C, three times faster than any loop here.
        first = type(value[0])
        if first in _NUMBERS or first is list:
            try:
                sum(value if first is not list else _chain(value))
            except (TypeError, OverflowError):
                pass  # something else among them: looked at one by one
            else:
                return False
        items = value
    else:
        return False
    for item in items:
        kind = type(item)
        if kind is str:
            if ("\x00" in item) if item.isascii() else (_search(item) is not None):
                return True
        elif (kind is dict or kind is list) and _dirty(item):
            return True
    return False


def _fix(value: t.Any, path: str, found: list[str]) -> None:
    """Apply the rule inside ``value`` in place, naming each place changed (rare: slow)."""
    if type(value) is dict:
        if any(type(key) is str and _bad(key) for key in value):
            # Rebuilt in place (same object, same order): references stay valid.
            items = list(value.items())
            value.clear()
            for key, item in items:
                new = storable(key) if type(key) is str else key
                if new != key:
                    found.append(f"{path}<{new}>")
                value[new] = item
        places: t.Iterable[tuple[t.Any, str]] = [(key, f"{path}{key}") for key in value]
    elif type(value) is list:
        places = [(index, f"{path}[{index}]") for index in range(len(value))]
    else:
        return
    for key, place in places:
        item = value[key]
        if type(item) is str:
            if _bad(item):
                value[key] = storable(item)
                found.append(place)
        elif type(item) is dict:
            _fix(item, place + ".", found)
        elif type(item) is list:
            _fix(item, place, found)


#: Streams whose ``id`` is the activity's id (the others name it ``activity_id``).
ACTIVITY_KEYED = frozenset({"activities", "activity_details", "export_activities"})


def record_label(record: t.Mapping[str, t.Any], stream: str) -> str:
    """Which record, for a warning: the activity's id when it has one."""
    if record.get("activity_id") is not None:
        return f"activity {record['activity_id']}"
    if stream in ACTIVITY_KEYED and record.get("id") is not None:
        return f"activity {record['id']}"
    for key in ("id", "athlete_id", "event_key"):
        if record.get(key) is not None:
            return f"{key} {record[key]}"
    return "a record without id"


def make_record_storable(
    record: dict[str, t.Any], *, logger: logging.Logger, stream: str
) -> list[str]:
    """Apply the rule to one record, in place; one warning if anything was replaced.

    Returns the places changed (empty: the record was storable already).
    """
    found = make_storable(record)
    if found:
        _warn(logger, stream, record_label(record, stream), tuple(found))
    return found


def forget_warnings() -> None:
    """Start a new run of the rule in this process: a record warned about warns again.

    The warning is once per record and run; a process that runs more than once (the
    replay, once per consumer; a test suite) says where each run begins.
    """
    _warn.cache_clear()


@functools.lru_cache(maxsize=4096)
def _warn(logger: logging.Logger, stream: str, label: str, places: tuple[str, ...]) -> None:
    """Once per record and run (a record conformed twice is warned about once)."""
    named = ", ".join(places[:MAX_NAMED]) + (", ..." if len(places) > MAX_NAMED else "")
    logger.warning(
        "%s: %s: %d string(s) held NUL or a lone surrogate, which no UTF-8 target can "
        "store; replaced with U+FFFD: %s",
        stream,
        label,
        len(places),
        named,
    )
