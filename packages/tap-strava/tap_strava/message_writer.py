"""Singer messages written to stdout from a thread, so the tap never waits on the target.

A target drains a batch synchronously: while target-postgres copies 50 tracks into the
database it reads nothing, the pipe between the two (64 KiB on Linux, less than two
tracks) fills, and a tap that writes to stdout itself stops decoding until the target
comes back. The two then take turns instead of working side by side (an archive import
of 2,000 activities took 73 s where the tap alone needs 55 s and the target alone 22 s).

:class:`BackgroundWriter` serializes each message once, in the caller's thread (the order
and the content are fixed there; the standard library's encoder, byte for byte the SDK's
line, which is faster) and hands the line to one writer thread through a queue
bounded in size (:data:`MAX_QUEUED_BYTES`, plus at most one line above it), so memory
stays bounded whatever the target does. The order of the lines is the order of the calls,
so a STATE never reaches the target before the records it covers. :meth:`close` writes
everything queued before it returns; the tap calls it at the end of the run, failed runs
included. A write that fails (the target is gone: a broken pipe) is raised in the
caller's thread at its next message, and at every one after it, as a direct write would
have been.
"""

from __future__ import annotations

import collections
import datetime
import json
import sys
import threading
import typing as t

from singer_sdk.io_base import SingerWriter
from singer_sdk.singerlib import RecordMessage

if t.TYPE_CHECKING:
    from singer_sdk.singerlib import Message

#: Most characters of serialized messages waiting for the target (a larger line still goes).
MAX_QUEUED_BYTES = 16 * 2**20


class _Unusual(TypeError):
    """A value the fast encoder leaves to the SDK's (a Decimal, a set, an object...)."""


def _fast_default(value: t.Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep="T")  # time_extracted, as the SDK writes it
    raise _Unusual


#: The SDK's line (``simplejson.dumps(..., separators=(",", ":"), use_decimal=True,
#: ignore_nan=True, default=...)``), written by the standard library's C encoder, which
#: gives the same bytes for the JSON types and datetimes and is faster. NaN and
#: infinities (which the SDK writes as null) and every other type raise here, and such a
#: message is written by the SDK's serializer instead (``tests/test_message_writer.py``).
_FAST_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=_fast_default).encode


class BackgroundWriter(SingerWriter):
    """The SDK's writer, with the write itself in a thread (see the module docstring)."""

    def __init__(
        self, max_queued_bytes: int = MAX_QUEUED_BYTES, output: t.TextIO | None = None
    ) -> None:
        super().__init__()
        self.max_queued_bytes = max_queued_bytes
        self.output = output  # None: sys.stdout as it is when the first message comes
        self._lines: collections.deque[str] = collections.deque()
        self._queued_bytes = 0
        self._closing = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        # Whether the thread waits for lines: only then does a new line need to wake it
        # (a notification per line made the two threads take turns at every message).
        self._idle = False

    def format_message(self, message: Message) -> str:
        """The message's line, serialized once, as the SDK's writer would write it."""
        try:
            if type(message) is RecordMessage:
                # RecordMessage.to_dict, with time_extracted already text (no callback).
                line: dict[str, t.Any] = {
                    "type": "RECORD",
                    "stream": message.stream,
                    "record": message.record,
                }
                if message.version is not None:
                    line["version"] = message.version
                if message.time_extracted is not None:
                    line["time_extracted"] = message.time_extracted.isoformat(sep="T")
                return _FAST_JSON(line)
            return _FAST_JSON(message.to_dict())
        except (ValueError, TypeError):
            return super().format_message(message)

    def write_message(self, message: Message) -> None:
        """Queue one message's line; waits only while the queue is full."""
        line = self.format_message(message) + "\n"
        with self._changed:
            self._raise_failure()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_lines, name="singer-stdout", daemon=True
                )
                self._thread.start()
            while self._queued_bytes and self._queued_bytes + len(line) > self.max_queued_bytes:
                self._changed.wait()
                self._raise_failure()
            self._lines.append(line)
            self._queued_bytes += len(line)
            if self._idle:
                self._changed.notify_all()

    def close(self, timeout: float | None = None) -> None:
        """Write every queued line, then stop the thread; raises a write that failed.

        ``timeout``: wait at most that long for a target that does not read (a failed or
        stopped run must end, not wait on a stuck target); what is still queued then is
        lost, as it would have been unwritten in the pipe.
        """
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return  # still blocked on the pipe: a daemon thread, gone with the process
            self._thread = None
        self._closing = False
        with self._changed:
            self._raise_failure()

    def _raise_failure(self) -> None:
        # Kept, not cleared: once the target is gone, every later message fails too (a
        # line queued after it would never be written, and a full queue never drain).
        if self._error is not None:
            raise self._error

    def _write_lines(self) -> None:
        """The thread: write what is queued, one burst of lines at a time."""
        output = self.output or sys.stdout
        while True:
            with self._changed:
                while not self._lines and not self._closing:
                    self._idle = True
                    self._changed.wait()
                    self._idle = False
                if not self._lines:
                    return
                lines = list(self._lines)
                self._lines.clear()
            try:
                output.write("".join(lines))
                output.flush()
            except BaseException as exc:  # raised in the caller's thread at its next message
                with self._changed:
                    self._error = exc
                    self._lines.clear()
                    self._queued_bytes = 0
                    self._changed.notify_all()
                return
            with self._changed:
                self._queued_bytes -= sum(len(line) for line in lines)
                self._changed.notify_all()
