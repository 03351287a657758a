"""Calls to an application's callback: the HTTP client, and the deliverer thread with retries.

Strava posts each event to the callback and counts it delivered only on a 200-class answer
within 2 seconds; otherwise it tries again, "up to a total of three attempts". How long it
waits between attempts is not documented (one user saw about two minutes), so the delay is
a setting here, small by default so that tests run quickly.

Delivery runs on one background thread: an edit of the simulated data only queues the
event, so no admin call or API request ever waits for a callback. Retries are scheduled,
not slept, so a failing callback delays no other event's first attempt by more than one
timeout. Every attempt is logged (event, status, latency) for tests and ``/_sim/push``.
"""

from __future__ import annotations

import heapq
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

JSONDict = dict[str, Any]
#: Strava's rule for both the validation GET and each event POST.
CALLBACK_TIMEOUT = 2.0
MAX_ATTEMPTS = 3
#: How much of a callback's answer is read (it only needs to say 200, or echo a challenge).
MAX_ANSWER_BYTES = 64 * 1024
#: Log sizes: the simulator runs for hours in demos; the oldest entries go first.
MAX_LOG = 10_000
USER_AGENT = "strava-sim push (like Strava's webhook events)"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that is not 200, as for Strava: it is not followed."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


#: No proxy from the environment (callbacks are on this machine) and no redirects.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


@dataclass(frozen=True)
class CallResult:
    """What one call to the callback gave: status (None: no answer), body, time taken."""

    status: int | None
    body: bytes
    latency: float
    error: str | None


def is_loopback_url(url: str) -> bool:
    """Whether the URL's host is this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def call(method: str, url: str, body: bytes | None, timeout: float) -> CallResult:
    """One HTTP call to a callback, bounded in time and in what it reads; never raises."""
    headers = {"User-Agent": USER_AGENT}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
    started = time.monotonic()
    try:
        with _OPENER.open(request, timeout=timeout) as answer:
            data = answer.read(MAX_ANSWER_BYTES)
            return CallResult(answer.status, data, time.monotonic() - started, None)
    except urllib.error.HTTPError as exc:
        try:
            data = exc.read(MAX_ANSWER_BYTES)
        except (OSError, ValueError):
            data = b""
        finally:
            exc.close()
        return CallResult(exc.code, data, time.monotonic() - started, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return CallResult(None, b"", time.monotonic() - started, f"no answer: {reason}")


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST of one event to a callback.

    ``event_id`` names the event in :attr:`Deliverer.events` (attempts of one event share
    it); ``kind`` is ``event`` (caused by a change), ``duplicate`` or ``forged``; ``ok``
    means a 2xx within the timeout; ``time`` is the simulator's clock at the start.
    """

    event_id: int
    kind: str
    attempt: int
    url: str
    event: JSONDict
    status: int | None
    latency: float
    ok: bool
    error: str | None
    time: float

    def as_dict(self) -> JSONDict:
        """JSON-ready form (``GET /_sim/push/deliveries``)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "attempt": self.attempt,
            "url": self.url,
            "event": self.event,
            "status": self.status,
            "latency": round(self.latency, 4),
            "ok": self.ok,
            "error": self.error,
            "time": self.time,
        }


@dataclass(frozen=True)
class SentEvent:
    """An event handed to the deliverer: its id, kind, body and where it goes."""

    event_id: int
    kind: str
    url: str
    event: JSONDict
    attempts: int

    def as_dict(self) -> JSONDict:
        """JSON-ready form (``GET /_sim/push/events``)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "url": self.url,
            "event": self.event,
            "attempts": self.attempts,
        }


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    sent: SentEvent = field(compare=False)
    attempt: int = field(compare=False, default=1)


class Deliverer:
    """Posts events to callbacks on a background thread, retrying failed attempts."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        retry_delay: float = 1.0,
        timeout: float = CALLBACK_TIMEOUT,
    ) -> None:
        self._clock = clock
        self.retry_delay = float(retry_delay)
        self.timeout = float(timeout)
        self._cond = threading.Condition()
        self._heap: list[_Job] = []
        self._seq = 0
        self._event_ids = 0
        self._in_flight = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._events: deque[SentEvent] = deque(maxlen=MAX_LOG)
        self._attempts: deque[DeliveryAttempt] = deque(maxlen=MAX_LOG)

    def submit(self, url: str, event: JSONDict, kind: str, attempts: int = MAX_ATTEMPTS) -> int:
        """Queue an event for delivery now; returns its event id. Never blocks on the network."""
        with self._cond:
            self._event_ids += 1
            sent = SentEvent(self._event_ids, kind, url, event, max(1, int(attempts)))
            self._events.append(sent)
            self._push(_Job(time.monotonic(), 0, sent))
            self._ensure_thread()
            return sent.event_id

    def _push(self, job: _Job) -> None:
        self._seq += 1
        job.seq = self._seq
        heapq.heappush(self._heap, job)
        self._cond.notify_all()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="strava-sim:push", daemon=True)
            self._thread.start()

    def _next_job(self) -> _Job | None:
        with self._cond:
            while not self._stopping:
                if self._heap:
                    wait = self._heap[0].due - time.monotonic()
                    if wait <= 0:
                        self._in_flight += 1
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                self._attempt(job)
            except Exception as exc:  # one bad event must not stop the delivery of others
                self._record_crash(job, exc)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt(self, job: _Job) -> None:
        sent = job.sent
        started = self._clock()
        body = json.dumps(sent.event, separators=(",", ":")).encode("utf-8")
        result = call("POST", sent.url, body, self.timeout)
        status = result.status
        in_time = result.latency <= self.timeout
        ok = status is not None and 200 <= status < 300 and in_time
        error = result.error
        if status is not None and 200 <= status < 300 and not in_time:
            error = f"answered after {result.latency:.2f} s (more than {self.timeout:g} s)"
        attempt = DeliveryAttempt(
            sent.event_id,
            sent.kind,
            job.attempt,
            sent.url,
            sent.event,
            status,
            result.latency,
            ok,
            error,
            started,
        )
        with self._cond:
            self._attempts.append(attempt)
            if not ok and job.attempt < sent.attempts and not self._stopping:
                due = time.monotonic() + self.retry_delay
                self._push(_Job(due, 0, sent, job.attempt + 1))

    def _record_crash(self, job: _Job, exc: Exception) -> None:
        """Log an attempt that failed inside the simulator (never retried)."""
        sent = job.sent
        attempt = DeliveryAttempt(
            sent.event_id, sent.kind, job.attempt, sent.url, sent.event, None, 0.0, False,
            f"simulator error: {type(exc).__name__}: {exc}", self._clock(),
        )  # fmt: skip
        with self._cond:
            self._attempts.append(attempt)

    @property
    def events(self) -> list[SentEvent]:
        """Every event handed over so far, oldest first."""
        with self._cond:
            return list(self._events)

    def event(self, event_id: int) -> SentEvent:
        """One event by id; KeyError if unknown (or dropped from the bounded log)."""
        with self._cond:
            for sent in self._events:
                if sent.event_id == event_id:
                    return sent
        raise KeyError(event_id)

    @property
    def attempts(self) -> list[DeliveryAttempt]:
        """Every delivery attempt so far, in the order they finished."""
        with self._cond:
            return list(self._attempts)

    def clear(self) -> None:
        """Forget the logs (pending deliveries go on)."""
        with self._cond:
            self._events.clear()
            self._attempts.clear()

    def idle(self) -> bool:
        """Whether nothing is queued, waiting for a retry or being posted."""
        with self._cond:
            return not self._heap and self._in_flight == 0

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until :meth:`idle` (retries included); False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        """Stop the thread; queued deliveries and pending retries are dropped."""
        with self._cond:
            self._stopping = True
            self._heap.clear()
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.timeout + 1)
