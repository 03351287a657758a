"""Plain request/response values passed between the HTTP layer and the simulated API.

Keeping the API logic free of ``http.server`` makes it easy to read and to test, and keeps
the socket-level tricks (connection resets, slow answers) in ``server.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

API_JSON = "application/json; charset=utf-8"
#: The token endpoint writes the charset in upper case (recorded real answers show it).
OAUTH_JSON = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the simulator sees it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """Return a header value by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass
class Response:
    """One HTTP answer; ``reset`` means: close the connection without answering."""

    status: int
    body: bytes = b""
    content_type: str = API_JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False


def json_bytes(body: Any) -> bytes:
    """Serialize compactly with raw UTF-8, as Strava does (no escaped non-ASCII)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(status: int, body: Any, content_type: str = API_JSON) -> Response:
    """Build a JSON answer."""
    return Response(status, json_bytes(body), content_type)
