"""The archive's CSV tokenizer: csv.reader's rows within the bounds, cut rows beyond them.

Python's csv module reads a whole line before parsing it, and after a field-size error
goes on in the middle of the field (the rest of a quoted multi-line field comes out as
new rows). The tokenizer must give csv.reader's rows for any input within its bounds, and
beyond them keep every row's structure and memory bounded.
"""

from __future__ import annotations

import csv
import io
import random

import pytest

from tap_strava import bounded_csv
from tap_strava.bounded_csv import BoundedReader

PIECES = ["a", "b", ",", '"', '""', "\n", "\r", "\r\n", " ", "#", "é"]


def rows(text: str, **bounds: int) -> list[list[str]]:
    limits = {"field_max": 10**6, "row_max": 10**6, "fields_max": 10**6, **bounds}
    return [list(r) for r in BoundedReader(io.StringIO(text, newline=""), **limits)]


@pytest.mark.parametrize("chunk", [1, 2, 7, 2**16])
def test_within_its_bounds_it_reads_exactly_what_csv_reader_reads(monkeypatch, chunk):
    monkeypatch.setattr(bounded_csv, "CHUNK_CHARS", chunk)  # every split point of a chunk
    rng = random.Random(chunk)
    compared = 0
    for _ in range(3000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 24)))
        try:
            expected = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error:
            continue  # csv.reader refuses it (a quote open at the end): no reference
        assert rows(text) == expected, repr(text)
        compared += 1
    assert compared > 2000


def test_a_field_past_its_bound_is_cut_and_no_row_comes_out_of_it():
    forged = "\n".join(f'{n},"May 1, 2024, 1:00:00 PM",injected' for n in range(900, 950))
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\n").writerows(
        [["1", "x" * 5000 + "\n" + forged, "end"], ["2", "short", "end"]]
    )  # as Strava writes a description with line breaks and quotes
    text = buffer.getvalue()
    out = list(
        BoundedReader(io.StringIO(text, newline=""), field_max=100, row_max=1000, fields_max=10)
    )
    assert [r[0] for r in out] == ["1", "2"]  # no forged row
    assert out[0][1] == "x" * 100
    assert out[0][2] == "end"
    assert out[0].cut == [1]
    assert out[1].cut == []


def test_a_row_is_bounded_in_characters_and_in_fields():
    out = list(
        BoundedReader(
            io.StringIO("a" * 60 + "," + "b" * 60 + "," + ",".join("c" * 5000) + "\nnext\n"),
            field_max=100,
            row_max=100,
            fields_max=5,
        )
    )
    assert out[0][:2] == ["a" * 60, "b" * 40]  # the row's 100 characters
    assert out[0].cut == [1, 2, 3, 4]
    assert len(out[0]) == 5
    assert out[0].dropped == 5000 - 3
    assert out[1] == ["next"]


def test_plain_rows_within_one_chunk_keep_the_field_bound_too():
    out = list(
        BoundedReader(io.StringIO('a,"b",c,d\n1,2\n'), field_max=10**6, row_max=10**6, fields_max=2)
    )
    assert [list(r) for r in out] == [["a", "b"], ["1", "2"]]
    assert [r.dropped for r in out] == [2, 0]
