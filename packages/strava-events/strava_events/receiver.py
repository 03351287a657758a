"""The receiver: Strava's callback (validation GET, event POST) and the tap's interface.

``create_apps`` builds two Starlette applications that share one :class:`Receiver`:

* the public one, every path to one handler: ``GET /<callback path>`` is the validation
  handshake (``hub.verify_token`` compared in constant time; the answer is
  ``{"hub.challenge": ...}`` as ``application/json``, or 403); ``POST /<callback path>`` is
  one event: the body is bounded, validated strictly, checked against this app's
  subscription id and the known athletes, then made durable (in the store's next group
  commit when it lands within the deadline, else in the local spool) and only then
  answered 200. Events of another subscription or athlete are answered 200 too (Strava
  must not retry them) but never stored. Every failure (a wrong path, a bad body, a wrong
  verify token) is charged to its client's failure budget; valid requests never are.
* with ``STRAVA_EVENTS_CONNECT_URL`` set, ``GET /connect`` and ``GET /connect/return`` on the
  public listener: the "Connect with Strava" page (:mod:`strava_events.connect`);
* the tap's interface, on its own loopback listener: ``GET /tap/events/pending``,
  ``POST /tap/events/ack``, ``GET /tap/status``, behind a bearer token that is checked
  before anything else.

A wrong callback path is a plain 404, and no log line names the path (it is the secret
that keeps forged events out), so the server's access log is off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import hmac
import json
import logging
import re
import time
import typing as t

from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from strava_events.athletes import KnownAthletes
from strava_events.connect import RETURN_PATH, START_PATH, ConnectPage
from strava_events.events import EventError, parse_event
from strava_events.groupcommit import GroupWriter
from strava_events.queue import EventStore, StoredEvent, StoreError, describe, open_store
from strava_events.ratelimit import Bucket, FailureBudget
from strava_events.spool import Spool, SpoolFull
from strava_events.subscription_record import SubscriptionId

if t.TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from starlette.requests import Request
    from starlette.types import ASGIApp, Receive, Scope, Send

    from strava_events.settings import Settings

log = logging.getLogger("strava_events.receiver")
TAP_PREFIX = "/tap"
MAX_PENDING_LIMIT = 1000
DEFAULT_PENDING_LIMIT = 100
MAX_ACK_KEYS = 5000
MAX_ACK_KEY_LENGTH = 128
MAX_ACK_BODY_BYTES = 512 * 1024
#: The tap's calls may wait longer than Strava's: nobody retries them within seconds.
TAP_STORE_TIMEOUT_SECONDS = 5.0
#: After a failed or late write, new events go straight to the spool this long (the
#: drain task probes the store meanwhile), so a hung database does not tie up threads.
STORE_BACKOFF_SECONDS = 2.0
DRAIN_INTERVAL_SECONDS = 0.5
PRUNE_INTERVAL_SECONDS = 3600.0
#: A body of a few hundred bytes that trickles in slower than this is no Strava delivery
#: (Strava wants the answer within 2 s) but a client holding a connection open.
BODY_READ_SECONDS = 2.0
_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


class BodyTooLarge(Exception):
    """The request body is over its bound."""


def iso(timestamp: float) -> str:
    """A receive time as RFC 3339 UTC with microseconds."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Throttled:
    """A warning logged at most every ``every`` seconds, with the count in between."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, float("-inf")) < self.every:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        extra = self._suppressed.pop(kind, 0)
        suffix = f" ({extra} more like it not logged)" if extra else ""
        log.warning(message + suffix, *args)


class AthleteFull(Exception):
    """The event's athlete has as many unacknowledged events as the receiver keeps."""


class Receiver:
    """The state both listeners share: store, spool, writer, budgets, counters."""

    def __init__(
        self, settings: Settings, store: EventStore, spool: Spool, athletes: KnownAthletes
    ) -> None:
        self.settings = settings
        self.store = store
        self.spool = spool
        self.athletes = athletes
        self.subscription = SubscriptionId(settings.subscription_id, settings.subscription_file)
        limits = settings.limits
        #: Spent by a client's failed callback requests only (see ratelimit).
        self.failures = FailureBudget(limits.failure_rate, limits.failure_burst)
        #: Spent by tap requests without the right token, after it is checked.
        self.strangers = Bucket.full(limits.tap_unauthorized_rate, limits.tap_unauthorized_burst)
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "stored",
                "duplicate",
                "spooled",
                "drained",
                "ignored_subscription",
                "ignored_owner",
                "invalid",
                "too_large",
                "not_found",
                "rate_limited",
                "tap_unauthorized",
                "refused_athlete_full",
                "refused_spool_full",
                "no_subscription_configured",
            ),
            0,
        )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="strava-events-store"
        )
        self.writer = GroupWriter(store, self._executor, limits.max_pending_per_athlete)
        self._store_ready = False
        self._store_down_until = 0.0
        self._wake = asyncio.Event()
        self._warn = _Throttled()

    async def _in_store(self, call: Callable[[], t.Any], timeout: float) -> t.Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, call)
        return await asyncio.wait_for(future, timeout)

    def _setup_store(self) -> None:
        if not self._store_ready:
            self.store.setup()
            self._store_ready = True

    async def make_durable(self, stored: StoredEvent) -> str:
        """Put one event in the store, or in the spool; ``stored``/``duplicate``/``spooled``.

        The store write is a share of the writer's next group commit. Raises
        :class:`AthleteFull` when the athlete's backlog is at its bound, and
        :class:`SpoolFull` when neither the store nor the spool can take the event (the
        caller answers 503, so Strava retries).
        """
        if self._store_ready and time.monotonic() >= self._store_down_until:
            future = self.writer.submit(stored)
            result: str | BaseException
            try:
                result = await asyncio.wait_for(
                    asyncio.shield(future), self.settings.limits.store_deadline_seconds
                )
            except asyncio.TimeoutError as exc:
                result = exc
            if result == "athlete_full":
                raise AthleteFull
            if isinstance(result, str):
                return result
            self._store_down_until = time.monotonic() + STORE_BACKOFF_SECONDS
            reason = "too slow" if isinstance(result, asyncio.TimeoutError) else describe(result)
            self._warn.warn(
                "store", "store %s failed (%s): spooling events", self.store.label, reason
            )
        # The write above may still commit after its deadline: the spooled copy then
        # dedupes to nothing when drained.
        await asyncio.to_thread(self.spool.append, stored)
        self._wake.set()
        return "spooled"

    async def drain_forever(self) -> None:
        """Background task: set the store up, drain the spool, prune old acknowledged events."""
        last_prune = float("-inf")
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), DRAIN_INTERVAL_SECONDS)
            self._wake.clear()
            try:
                await self._in_store(self._setup_store, TAP_STORE_TIMEOUT_SECONDS * 2)
                if len(self.spool):
                    drained = await self._in_store(
                        lambda: self.spool.drain(self.store), TAP_STORE_TIMEOUT_SECONDS * 6
                    )
                    if drained:
                        self.counters["drained"] += drained
                        log.info("drained %d spooled events into %s", drained, self.store.label)
                self._store_down_until = 0.0
                if time.monotonic() - last_prune > PRUNE_INTERVAL_SECONDS:
                    cutoff = time.time() - self.settings.retention_days * 86400
                    await self._in_store(
                        functools.partial(self.store.prune, cutoff), TAP_STORE_TIMEOUT_SECONDS
                    )
                    last_prune = time.monotonic()
            except Exception as exc:  # the task must outlive any failure, or the spool stays
                reason = "too slow" if isinstance(exc, asyncio.TimeoutError) else describe(exc)
                self._warn.warn(
                    "drain",
                    "store %s unavailable (%s): %d events wait in the spool %s",
                    self.store.label,
                    reason,
                    len(self.spool),
                    self.spool.folder,
                )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        """The writer and the drain task run inside; on exit both stop and the store closes."""
        self.writer.start()
        task = asyncio.create_task(self.drain_forever())
        self._wake.set()
        log.info(
            "receiving events for subscription %s, %d known athletes; store %s; spool %s",
            self.subscription.current() or "(none yet)",
            len(self.athletes),
            self.store.label,
            self.spool.folder,
        )
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.writer.stop()
            self.close()

    def close(self) -> None:
        """Stop the worker threads and the store's connections."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, or :class:`BodyTooLarge` as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    """Answer the server's lifespan messages (the receiver starts in ``running``)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@dataclasses.dataclass(frozen=True)
class Apps:
    """The two ASGI applications and the state they share.

    ``callback`` is the public one (Strava's handshake and events, ``/healthz``); ``tap``
    is the tap's interface, served on its own loopback listener so that nothing sent to
    the public port can reach it or spend what it needs.
    """

    callback: ASGIApp
    tap: Starlette
    receiver: Receiver
    #: The "Connect with Strava" page, when it is on.
    connect: ConnectPage | None = None


def create_apps(settings: Settings, store: EventStore | None = None) -> Apps:
    """The receiver's two applications; run them inside ``apps.receiver.running()``."""
    store = store or open_store(settings)
    spool = Spool(settings.spool_dir, settings.limits.max_spool_events)
    athletes = KnownAthletes(
        settings.athlete_ids, settings.token_store, settings.shared_database_url
    )
    receiver = Receiver(settings, store, spool, athletes)
    connect = (
        ConnectPage(settings.connect, on_connected=athletes.learn)
        if settings.connect is not None
        else None
    )
    callback_path = ("/" + settings.callback_path).encode("utf-8")
    verify_token = settings.verify_token.encode("utf-8")
    tap_token = settings.tap_token.encode("utf-8")

    def failed(request: Request, response: Response) -> Response:
        """Charge the client's failure budget for this answer."""
        receiver.failures.charge(_client(request))
        return response

    async def public(request: Request) -> Response:
        client = _client(request)
        if receiver.failures.spent(client):
            receiver.counters["rate_limited"] += 1
            receiver._warn.warn("rate", "too many failed requests: answered 429 to %s", client)
            return _error(429, "too many failed requests", {"Retry-After": "1"})
        path = str(request.scope["path"]).encode("utf-8")
        if path == b"/healthz" and request.method == "GET":
            return JSONResponse({"ok": True})
        if connect is not None and path.startswith(b"/connect") and request.method == "GET":
            if path == START_PATH.encode():
                # A person starts a few sign-ins; each costs budget, so a flood gets 429s.
                receiver.failures.charge(client)
                return connect.start(request)
            if path == RETURN_PATH.encode():
                answer = await connect.finish(request)
                return answer if answer.status_code == 200 else failed(request, answer)
        if not hmac.compare_digest(path, callback_path):
            receiver.counters["not_found"] += 1
            return failed(request, _error(404, "not found"))
        if request.method == "GET":
            answer = validation(request)
            return answer if answer.status_code == 200 else failed(request, answer)
        if request.method == "POST":
            answer = await event(request)
            # A 4xx is the sender's fault; a 503 is ours (Strava retries it), never charged.
            return failed(request, answer) if 400 <= answer.status_code < 500 else answer
        return failed(request, _error(405, "method not allowed", {"Allow": "GET, POST"}))

    def validation(request: Request) -> Response:
        query = request.query_params
        # PHP-style proxies turn the dots into underscores; accept both spellings.
        challenge = query.get("hub.challenge") or query.get("hub_challenge")
        token = query.get("hub.verify_token") or query.get("hub_verify_token") or ""
        mode = query.get("hub.mode") or query.get("hub_mode")
        if not hmac.compare_digest(token.encode("utf-8"), verify_token):
            receiver._warn.warn(
                "verify", "validation request with a wrong verify token: answered 403"
            )
            return _error(403, "verify token mismatch")
        if mode != "subscribe" or not challenge or len(challenge) > 255:
            return _error(400, "hub.mode=subscribe and a hub.challenge are required")
        log.info("validation request answered (subscription being created)")
        return JSONResponse({"hub.challenge": challenge})

    async def event(request: Request) -> Response:
        try:
            body = await asyncio.wait_for(
                read_bounded(request, settings.limits.max_body_bytes), BODY_READ_SECONDS
            )
        except BodyTooLarge:
            receiver.counters["too_large"] += 1
            return _error(413, "body too large")
        except asyncio.TimeoutError:
            receiver.counters["invalid"] += 1
            return _error(408, "the body took too long to arrive")
        try:
            parsed, unknown = parse_event(body)
        except EventError as exc:
            receiver.counters["invalid"] += 1
            receiver._warn.warn("invalid", "invalid event answered 400: %s", exc)
            return _error(400, f"not a Strava push event: {exc}")
        if unknown:
            receiver._warn.warn(
                "unknown", "event fields not documented, dropped: %s", ",".join(unknown)
            )
        subscription_id = receiver.subscription.current()
        if subscription_id is None:
            receiver.counters["no_subscription_configured"] += 1
            receiver._warn.warn(
                "nosub",
                "event refused with 503 (Strava retries it): no subscription id yet; run "
                "`strava-events subscription create` or set STRAVA_EVENTS_SUBSCRIPTION_ID",
            )
            return _error(503, "receiver not configured yet", {"Retry-After": "60"})
        if parsed.subscription_id != subscription_id:
            receiver.counters["ignored_subscription"] += 1
            receiver._warn.warn(
                "sub",
                "event of subscription %d ignored (ours is %d)",
                parsed.subscription_id,
                subscription_id,
            )
            return JSONResponse({"ok": True})
        if parsed.owner_id not in receiver.athletes:
            receiver.counters["ignored_owner"] += 1
            receiver._warn.warn(
                "owner", "event of athlete %d ignored: not a configured athlete", parsed.owner_id
            )
            return JSONResponse({"ok": True})
        try:
            outcome = await receiver.make_durable(StoredEvent(parsed, time.time()))
        except AthleteFull:
            receiver.counters["refused_athlete_full"] += 1
            receiver._warn.warn(
                "athlete_full",
                "event of athlete %d refused with 503 (Strava retries it): %d events of this "
                "athlete wait already (STRAVA_EVENTS_MAX_PENDING_PER_ATHLETE); is the events "
                "job running?",
                parsed.owner_id,
                settings.limits.max_pending_per_athlete,
            )
            return _error(503, "too many pending events of this athlete", {"Retry-After": "600"})
        except SpoolFull as exc:
            receiver.counters["refused_spool_full"] += 1
            receiver._warn.warn("full", "event refused with 503 (Strava retries it): %s", exc)
            return _error(503, "cannot store the event now", {"Retry-After": "60"})
        receiver.counters[outcome] += 1
        return JSONResponse({"ok": True})

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8"), tap_token)

    def tap_route(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            # The token first: a stranger's request never spends the tap's budget.
            if not authorized(request):
                receiver.counters["tap_unauthorized"] += 1
                if not receiver.strangers.take():
                    receiver.counters["rate_limited"] += 1
                    return _error(429, "too many unauthorized requests", {"Retry-After": "1"})
                receiver._warn.warn("tap401", "tap request without the right token: 401")
                return _error(
                    401,
                    "a valid bearer token is required",
                    {"WWW-Authenticate": 'Bearer realm="strava-events"'},
                )
            try:
                return await handler(request)
            except (StoreError, asyncio.TimeoutError) as exc:
                reason = "too slow" if isinstance(exc, asyncio.TimeoutError) else describe(exc)
                log.warning("tap request answered 503: store %s: %s", store.label, reason)
                return _error(
                    503, "the event store is unavailable; try again later", {"Retry-After": "30"}
                )

        return guarded

    async def pending(request: Request) -> Response:
        raw = request.query_params.get("limit", str(DEFAULT_PENDING_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PENDING_LIMIT:
            return _error(400, f"limit must be a whole number from 1 to {MAX_PENDING_LIMIT}")
        limit = int(raw)
        await receiver._in_store(receiver._setup_store, TAP_STORE_TIMEOUT_SECONDS)
        rows = await receiver._in_store(
            lambda: receiver.store.pending(limit + 1), TAP_STORE_TIMEOUT_SECONDS
        )
        events = [
            {
                "key": stored.key,
                "received_at": iso(stored.received_at),
                "event": stored.event.as_dict(),
            }
            for stored in rows[:limit]
        ]
        return JSONResponse(
            {"events": events, "more": len(rows) > limit, "spooled": len(receiver.spool)}
        )

    async def ack(request: Request) -> Response:
        try:
            body = await read_bounded(request, MAX_ACK_BODY_BYTES)
        except BodyTooLarge:
            return _error(413, "body too large")
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _error(400, 'the body must be JSON: {"keys": ["<64 hex>", ...]}')
        keys = document.get("keys") if isinstance(document, dict) else None
        if (
            not isinstance(keys, list)
            or len(keys) > MAX_ACK_KEYS
            or not all(isinstance(key, str) and len(key) <= MAX_ACK_KEY_LENGTH for key in keys)
        ):
            return _error(
                400, f'the body must be {{"keys": [...]}}, at most {MAX_ACK_KEYS} strings'
            )
        # A string that is no key of ours is an unknown key: ignored, not an error, so a
        # tap holding one in its state is not refused forever.
        ours = [key for key in dict.fromkeys(keys) if _KEY_RE.match(key)]
        await receiver._in_store(receiver._setup_store, TAP_STORE_TIMEOUT_SECONDS)
        done = await receiver._in_store(lambda: receiver.store.ack(ours), TAP_STORE_TIMEOUT_SECONDS)
        return JSONResponse({"acknowledged": done, "ignored": len(set(keys)) - done})

    async def status(_request: Request) -> Response:
        await receiver._in_store(receiver._setup_store, TAP_STORE_TIMEOUT_SECONDS)
        counts = await receiver._in_store(receiver.store.counts, TAP_STORE_TIMEOUT_SECONDS)
        return JSONResponse(
            {
                "store": store.label,
                "subscription_id": receiver.subscription.current(),
                "known_athletes": len(athletes),
                "pending": counts["pending"],
                "acknowledged": counts["acknowledged"],
                "spooled": len(receiver.spool),
                "oldest_spooled_seconds": receiver.spool.oldest_age(),
                "counters": {**receiver.counters, "store_commits": receiver.writer.commits},
            }
        )

    async def health(_request: Request) -> Response:
        return JSONResponse({"ok": True})

    tap = Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            Route(f"{TAP_PREFIX}/events/pending", tap_route(pending), methods=["GET"]),
            Route(f"{TAP_PREFIX}/events/ack", tap_route(ack), methods=["POST"]),
            Route(f"{TAP_PREFIX}/status", tap_route(status), methods=["GET"]),
        ]
    )

    async def callback(scope: Scope, receive: Receive, send: Send) -> None:
        """Every request of the public listener, whatever its path or method, to ``public``.

        So every failure is charged to its client before anything else. A bare ASGI
        function, not a routed Starlette app: in a burst, Starlette's middleware and
        routing cost about a fifth of the receiver's CPU a request.
        """
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        request = StarletteRequest(scope, receive)
        response = await public(request)
        await response(scope, receive, send)

    forwarded = ProxyHeadersMiddleware(
        callback,  # type: ignore[arg-type]
        trusted_hosts=settings.forwarded_allow_ips,
    )
    return Apps(callback=t.cast("ASGIApp", forwarded), tap=tap, receiver=receiver, connect=connect)
