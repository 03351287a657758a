"""Strava's answers read with a size cap: a huge or decompression-bomb answer is refused.

The SDK's request path (``requests.Session.send`` without ``stream=True``) reads and
decompresses a whole answer into memory before the tap sees any of it: a proxy, a broken
server or an attacker between the tap and Strava could answer one GET with gigabytes, or
with a megabyte of gzip that inflates to gigabytes, and take the machine's memory down
with the tap. :func:`cap_answer_size` puts a response hook (requests' public ``hooks``)
on the stream's session (the SDK's public ``requests_session``): it runs before the body
is read, refuses an answer whose ``Content-Length`` is above the cap at once, and
otherwise wraps the body so that it is read in chunks and refused as soon as the
*decompressed* bytes pass the cap. urllib3 2.6 and later bound each decompressed chunk
(earlier versions could inflate a whole bomb in one read), hence the pin in
``pyproject.toml``.

The cap, :data:`DEFAULT_MAX_ANSWER_MIB` (the ``max_answer_mib`` setting), is far above
anything Strava sends: a list page of 200 activities is about 0.5-1 MB, a detailed
activity with hundreds of segment efforts a few MB, and the largest, the streams of a
24-hour activity recorded every second (86,400 points of eleven series), about 10 MB. It
is also above what Meltano passes as one message (50 MiB), so no answer a target could
take is refused. An answer above it ends the run with one line; the state stays at the
last checkpoint, so nothing is lost and the next run goes on from there.
"""

from __future__ import annotations

import typing as t
from urllib.parse import urlparse

from tap_strava.errors import StravaUserError

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    import requests

#: The default cap of one answer, decompressed (see the module docstring for why).
DEFAULT_MAX_ANSWER_MIB = 64


class AnswerTooLarge(StravaUserError):
    """An answer above the cap: refused before it is read whole (one line)."""


def _refusal(response: requests.Response, limit: int, what: str) -> AnswerTooLarge:
    path = urlparse(response.url).path
    return AnswerTooLarge(
        f"the answer to {path} is {what} the tap's cap of {limit // 2**20} MiB for one "
        "answer (no Strava answer is near it: check that api_url points at Strava and "
        "nothing between rewrites answers; a real larger answer needs max_answer_mib raised)"
    )


class _CappedBody:
    """The urllib3 body of one answer, counting decompressed bytes as requests reads it."""

    def __init__(self, raw: t.Any, response: requests.Response, limit: int) -> None:
        self._raw = raw
        self._response = response
        self._limit = limit

    def stream(
        self, amt: int | None = 2**16, decode_content: bool | None = None
    ) -> Iterator[bytes]:
        """What ``Response.iter_content`` reads: urllib3's stream, refused past the cap."""
        seen = 0
        for chunk in self._raw.stream(amt, decode_content=decode_content):
            seen += len(chunk)
            if seen > self._limit:
                self._raw.close()  # the rest is never read; the connection is dropped
                raise _refusal(self._response, self._limit, "above")
            yield chunk

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._raw, name)


class AnswerSizeCap:
    """A requests response hook: the cap on one answer (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __call__(self, response: requests.Response, *args: t.Any, **kwargs: t.Any) -> None:
        """Before the body is read: refuse a declared size above the cap, count the rest."""
        del args, kwargs
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.limit:
            response.close()
            raise _refusal(response, self.limit, f"{int(declared):,} bytes long, above")
        if hasattr(response.raw, "stream"):
            response.raw = _CappedBody(response.raw, response, self.limit)


def cap_answer_size(session: requests.Session, max_mib: int) -> requests.Session:
    """Put the cap on ``session`` (once; a changed cap replaces the old one)."""
    hooks = session.hooks.setdefault("response", [])
    limit = max_mib * 2**20
    kept = [hook for hook in hooks if not isinstance(hook, AnswerSizeCap)]
    if len(kept) == len(hooks) - 1 and any(
        isinstance(hook, AnswerSizeCap) and hook.limit == limit for hook in hooks
    ):
        return session
    session.hooks["response"] = [*kept, AnswerSizeCap(limit)]
    return session
