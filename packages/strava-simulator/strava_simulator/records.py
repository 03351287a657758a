"""What the simulator remembers about each request it served (for assertions in tests)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class RequestRecord:
    """One served request.

    ``token_in`` says where the access token came from: ``"header"`` (``Authorization:
    Bearer``), ``"query"`` (``?access_token=``, which Strava stops accepting in 2027) or None
    (``auth`` is the same value under another name). Token
    values are never kept: the query's ``access_token`` is replaced by ``[REDACTED]``.
    ``status`` is None when the connection was reset without an answer; ``fault`` names the
    injected fault kind that hit the request, if any. ``ids`` lists the ``id`` of every
    item of a JSON list answer the client received, in order (None for other answers): it
    is what a test compares emitted records with, e.g. after a quota stop.
    """

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    token_in: str | None
    time: float
    fault: str | None = None
    ids: tuple[int, ...] | None = None

    @property
    def auth(self) -> str | None:
        """Alias of ``token_in``."""
        return self.token_in

    @property
    def token_in_header(self) -> bool:
        """Whether the token came in the Authorization header."""
        return self.auth == "header"

    @property
    def token_in_query(self) -> bool:
        """Whether the token came in the query string."""
        return self.auth == "query"

    def __getitem__(self, key: str) -> Any:
        """Allow ``record["status"]`` as well as ``record.status``."""
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (used by ``GET /_sim/requests``)."""
        return asdict(self)


class RequestLog:
    """Thread-safe, append-only list of records."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        """Add a record."""
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        """A copy of all records so far."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget all records."""
        with self._lock:
            self._records.clear()
