"""Injected failures: what the network and Strava's servers do to clients now and then.

A fault matches request paths by regular expression (``re.search``) and fires for its next
``count`` matching requests (a negative count means "until cleared"). Kinds:

``status``
    the given status with Strava's JSON error body (5xx: ``{"message": "error"}``);
``html``
    a 504 (or the given status) with an HTML page, as Strava's proxy sends when the
    application times out: no JSON, no rate-limit headers;
``malformed_json``
    200 with a body that is not JSON;
``truncated_json``
    the real answer cut in the middle (a complete HTTP response whose body does not parse);
``slow``
    sleep ``delay`` seconds, then answer normally (client timeouts);
``reset``
    close the connection without any answer (the request is not served);
``lost_answer``
    serve the request (a refresh rotates the token, an upload is stored), then close the
    connection without the answer: the server committed, the client never learns it;
``rate_limit``
    other users of the application spend the 15-minute read quota, so this request (and the
    following ones until the window ends) get 429, exactly as a shared quota behaves;
``oversized``
    the real answer followed by ``size`` bytes of spaces (1 GiB by default), sent gzipped
    (``Content-Encoding: gzip``): about a megabyte on the wire, valid JSON once inflated,
    a decompression bomb for a client that reads a whole answer.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

KINDS = (
    "status",
    "html",
    "malformed_json",
    "truncated_json",
    "slow",
    "reset",
    "lost_answer",
    "rate_limit",
    "oversized",
)
#: What an ``oversized`` answer inflates to by default.
DEFAULT_OVERSIZE = 2**30
DEFAULT_STATUS = {"status": 500, "html": 504, "rate_limit": 429}


@dataclass
class Fault:
    """One injected fault and how many more requests it will hit."""

    path_pattern: str
    kind: str
    count: int = 1
    status: int = 500
    delay: float = 0.0
    size: int = DEFAULT_OVERSIZE  # oversized only: bytes of padding after the answer
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            msg = f"unknown fault kind {self.kind!r}; expected one of {', '.join(KINDS)}"
            raise ValueError(msg)
        self.regex = re.compile(self.path_pattern)

    def as_dict(self) -> dict[str, object]:
        """JSON form for ``GET /_sim/faults``."""
        return {
            "path_pattern": self.path_pattern,
            "kind": self.kind,
            "count": self.count,
            "status": self.status,
            "delay": self.delay,
            "size": self.size,
        }


class FaultInjector:
    """Thread-safe list of faults, consumed in the order they were injected."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        path_pattern: str,
        kind: str,
        count: int = 1,
        status: int | None = None,
        delay: float = 0.0,
        size: int = DEFAULT_OVERSIZE,
    ) -> Fault:
        """Register a fault; ``status`` defaults by kind (500, 504 for html, 429)."""
        if count == 0:
            msg = "count must be positive (or negative for 'until cleared')"
            raise ValueError(msg)
        fault = Fault(
            path_pattern,
            kind,
            count,
            status if status is not None else DEFAULT_STATUS.get(kind, 200),
            delay,
            size,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def take(self, path: str) -> Fault | None:
        """Return the first fault matching ``path`` and use up one of its hits."""
        with self._lock:
            for fault in self._faults:
                if fault.regex.search(path):
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def active(self) -> list[Fault]:
        """The faults still waiting to fire."""
        with self._lock:
            return list(self._faults)
