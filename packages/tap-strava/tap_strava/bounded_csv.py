r"""A CSV reader whose memory is bounded by its limits, not by the longest line or field.

Python's ``csv`` module cannot be bounded safely: its file iterator reads a whole line
into memory before the parser sees it, and after a ``field_size_limit`` error the parser
carries on in the middle of the field, so the rest of a quoted multi-line field comes out
as new rows (a way to inject activity rows into ``activities.csv``). This tokenizer reads
the text in chunks and parses the excel dialect the archive is written in (``,``,
``"``-quoted fields, ``""`` for a quote, ``\\n`` / ``\\r\\n`` / ``\\r`` line ends, line breaks
kept inside quotes), exactly like ``csv.reader``'s default, with three bounds:

* a field keeps at most ``field_max`` characters; the rest is read past, never kept;
* a row keeps at most ``row_max`` characters over all its fields (so a row of many long
  fields stays below Meltano's 50 MiB per message);
* a row keeps at most ``fields_max`` fields; further ones are read past.

A row that lost anything says so (:attr:`Row.cut`, :attr:`Row.dropped`) so the caller
can warn; the row structure itself is never changed by a cut (a cut field still ends
where its closing quote is).
"""

from __future__ import annotations

import csv
import io
import re
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK_CHARS = 2**16
_UNQUOTED_END = re.compile(r"[,\r\n]")
#: A run of complete, plain rows: every field unquoted without quotes or line breaks, or
#: quoted with its quotes doubled, each row ending in ``\n`` or ``\r\n``. Such rows, all
#: inside one chunk, are parsed by ``csv.reader`` (in C, ten times faster than the state
#: machine) with the same result: the state machine handles the rest.
_FIELD = r'(?:"[^"]*(?:""[^"]*)*"|[^,"\r\n]*)'
_PLAIN_ROWS = re.compile(rf"(?:{_FIELD}(?:,{_FIELD})*\r?\n)+")

# Parser states.
_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED, _AFTER_CR = range(5)


class Row(list[str]):
    """One parsed row; ``cut``: indexes of fields cut short; ``dropped``: fields not kept."""

    cut: list[int]
    dropped: int

    def __init__(self) -> None:
        super().__init__()
        self.cut = []
        self.dropped = 0


class BoundedReader:
    """Rows of ``handle`` (a text stream), parsed in chunks within the bounds."""

    def __init__(self, handle: t.TextIO, *, field_max: int, row_max: int, fields_max: int) -> None:
        self._handle = handle
        self.field_max = field_max
        self.row_max = row_max
        self.fields_max = fields_max

    def __iter__(self) -> Iterator[Row]:
        row = Row()
        parts: list[str] = []  # the current field's kept pieces
        kept = 0  # characters kept of the current field
        row_kept = 0  # characters kept of the current row
        cut = False  # the current field lost characters
        in_field = False  # a field has begun on this row (for the last field at EOF)
        state = _START

        def keep(piece: str) -> None:
            nonlocal kept, row_kept, cut
            if not piece:
                return
            room = min(self.field_max - kept, self.row_max - row_kept)
            if len(piece) > room:
                piece = piece[: max(0, room)]
                cut = True
            if piece:
                parts.append(piece)
                kept += len(piece)
                row_kept += len(piece)

        def end_field() -> None:
            nonlocal parts, kept, cut, in_field
            if len(row) < self.fields_max:
                if cut:
                    row.cut.append(len(row))
                row.append("".join(parts))
            else:
                row.dropped += 1
            parts, kept, cut, in_field = [], 0, False, False

        def end_row() -> Row:
            nonlocal row, row_kept
            done, row, row_kept = row, Row(), 0
            return done

        while True:
            buffer = self._handle.read(CHUNK_CHARS)
            if not buffer:
                break
            position, size = 0, len(buffer)
            # Rows inside one chunk are shorter than a chunk: within the character bounds.
            fast = min(self.field_max, self.row_max) >= len(buffer)
            while position < size:
                if fast and state == _START and not row and not in_field:
                    plain = _PLAIN_ROWS.match(buffer, position)
                    if plain is not None:
                        yield from self._plain(plain.group())
                        position = plain.end()
                        continue
                if state == _AFTER_CR:
                    if buffer[position] == "\n":
                        position += 1
                    state = _START
                    continue
                if state == _START:
                    char = buffer[position]
                    if char == '"':
                        state, in_field = _QUOTED, True
                        position += 1
                        continue
                    if char in "\r\n" and not row and not in_field:
                        position += 1  # an empty line: no row (as csv.reader gives [])
                        state = _AFTER_CR if char == "\r" else _START
                        yield end_row()
                        continue
                    state, in_field = _UNQUOTED, True
                if state == _UNQUOTED:
                    found = _UNQUOTED_END.search(buffer, position)
                    if found is None:
                        keep(buffer[position:])
                        position = size
                        continue
                    end = found.start()
                    keep(buffer[position:end])
                    char = buffer[end]
                    position = end + 1
                    end_field()
                    if char == ",":
                        state, in_field = _START, True
                    else:
                        state = _AFTER_CR if char == "\r" else _START
                        yield end_row()
                    continue
                if state == _QUOTED:
                    end = buffer.find('"', position)
                    if end < 0:
                        keep(buffer[position:])
                        position = size
                        continue
                    keep(buffer[position:end])
                    position = end + 1
                    state = _QUOTE_IN_QUOTED
                    continue
                # _QUOTE_IN_QUOTED: a quote inside a quoted field, then ...
                char = buffer[position]
                if char == '"':  # ... a doubled quote: one quote in the value
                    keep('"')
                    position += 1
                    state = _QUOTED
                elif char == ",":  # ... the field's end
                    position += 1
                    end_field()
                    state, in_field = _START, True
                elif char in "\r\n":  # ... the row's end
                    position += 1
                    end_field()
                    state = _AFTER_CR if char == "\r" else _START
                    yield end_row()
                else:  # ... text after the closing quote: kept, as csv.reader does
                    state = _UNQUOTED
        if in_field or row or parts:
            end_field()
        if row:
            yield end_row()

    def _plain(self, text: str) -> Iterator[Row]:
        """The rows of a run of plain rows (see :data:`_PLAIN_ROWS`), parsed by csv.reader."""
        for fields in csv.reader(io.StringIO(text, newline="")):
            row = Row()
            if len(fields) > self.fields_max:
                row.dropped = len(fields) - self.fields_max
                del fields[self.fields_max :]
            row.extend(fields)
            yield row
