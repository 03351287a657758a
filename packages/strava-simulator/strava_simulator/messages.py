"""Plain request/response values passed between the HTTP layer and the simulated API.

Keeping the API logic free of ``http.server`` makes it easy to read and to test, and keeps
the socket-level tricks (connection resets, slow answers) in ``server.py``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

API_JSON = "application/json; charset=utf-8"
#: The token endpoint writes the charset in upper case (recorded real answers show it).
OAUTH_JSON = "application/json; charset=UTF-8"
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    r"""Serialize compactly with raw UTF-8, as Strava does (no escaped non-ASCII).

    A lone surrogate (``"\ud83d"``, half an emoji) has no UTF-8 form: it goes out as the
    JSON escape, which is how such a string reaches a client of Strava.
    """
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text).encode("utf-8")


def json_response(status: int, body: Any, content_type: str = API_JSON) -> Response:
    """Build a JSON answer."""
    return Response(status, json_bytes(body), content_type)
