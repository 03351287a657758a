"""The application's push subscription (``/push_subscriptions``) and the events it delivers.

Strava's webhook events, as ``shared/docs/strava-export-and-events.md`` (part 2) describes
them, for the one simulated application:

* ``POST /push_subscriptions`` (form data, multipart as ``curl -F`` sends, or JSON:
  ``client_id``, ``client_secret``, ``callback_url`` of at most 255 characters,
  ``verify_token``) first checks the app's credentials, then calls the callback with
  ``GET ?hub.mode=subscribe&hub.challenge=<random>&hub.verify_token=<token>`` and needs a
  200 echoing ``{"hub.challenge": ...}`` within 2 s; a callback answering another status
  gives 400 ``GET to callback URL does not return 200``, one that echoes a wrong challenge,
  is too slow or does not answer gives 400 ``not verifiable``. One subscription per
  application: a second one gives 400 ``already exists``. Success: ``201 {"id": N}``
  (Strava documents the body, not the status: 201 is this simulator's choice, so clients
  should accept any 2xx);
* ``GET /push_subscriptions?client_id=&client_secret=`` lists it (``[]`` without one);
  ``DELETE /push_subscriptions/{id}?client_id=&client_secret=`` answers 204;
* credentials are checked as the token endpoint checks them (400 naming ``client_id``, 401
  ``Authorization Error`` for a wrong secret): Strava documents no other answer here.

Events are queued by :meth:`PushHub.emit` (the simulator calls it for every change, see
``push_events.py``) and posted by :class:`~strava_simulator.push_delivery.Deliverer`.
Events carry no signature, as on Strava, so tests can also forge events and send duplicates
to see what a receiver does with them.

The simulator calls only callbacks on this machine unless ``loopback_only`` is turned off:
it is a test tool, and a callback URL is input from whoever holds the client secret.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from strava_simulator import errors, timeutil
from strava_simulator.messages import Request, Response, json_response
from strava_simulator.push_delivery import (
    CALLBACK_TIMEOUT,
    MAX_ATTEMPTS,
    MAX_LOG,
    Deliverer,
    DeliveryAttempt,
    SentEvent,
    call,
    is_loopback_url,
)
from strava_simulator.push_events import event_body

JSONDict = dict[str, Any]
MAX_CALLBACK_URL = 255
#: A forged event is test input: bounded like any untrusted body.
MAX_FORGED_BYTES = 64 * 1024
#: Subscription ids count up from the one in Strava's documented example.
FIRST_SUBSCRIPTION_ID = 120475
_ROUTE = re.compile(r"^/push_subscriptions(?:/([^/]+))?/?$")
NOT_VERIFIABLE = "not verifiable"
NOT_200 = "GET to callback URL does not return 200"


@dataclass(frozen=True)
class PushSubscription:
    """The application's one subscription."""

    id: int
    application_id: int
    callback_url: str
    verify_token: str
    created_at: float

    def as_dict(self) -> JSONDict:
        """The object ``GET /push_subscriptions`` lists (the verify token is not in it)."""
        stamp = timeutil.iso_utc(self.created_at)
        return {
            "id": self.id,
            "resource_state": 2,
            "application_id": self.application_id,
            "callback_url": self.callback_url,
            "created_at": stamp,
            "updated_at": stamp,
        }


@dataclass(frozen=True)
class Validation:
    """One validation GET against a callback, and why it passed or failed.

    ``code`` is the error code Strava's 400 carries (None when it passed); ``reason`` is a
    one-line explanation for whoever reads the log (Strava gives none).
    """

    callback_url: str
    verify_token: str
    challenge: str
    status: int | None
    latency: float
    ok: bool
    code: str | None
    reason: str
    time: float

    def as_dict(self) -> JSONDict:
        """JSON-ready form (``GET /_sim/push/validations``)."""
        return {
            "callback_url": self.callback_url,
            "verify_token": self.verify_token,
            "challenge": self.challenge,
            "status": self.status,
            "latency": round(self.latency, 4),
            "ok": self.ok,
            "code": self.code,
            "reason": self.reason,
            "time": self.time,
        }


def request_params(request: Request) -> dict[str, str]:
    """Parameters from the query and the body (form, multipart form or JSON)."""
    params = dict(request.query)
    if not request.body:
        return params
    content_type = request.header("content-type") or ""
    lowered = content_type.lower()
    if lowered.startswith("multipart/form-data"):
        params.update(_multipart(request.body, content_type))
    elif "json" in lowered:
        try:
            data = json.loads(request.body)
        except ValueError:
            return params
        if isinstance(data, dict):
            params.update({str(k): str(v) for k, v in data.items()})
    else:
        text = request.body.decode("utf-8", errors="replace")
        params.update(dict(parse_qsl(text, keep_blank_values=True)))
    return params


def _multipart(body: bytes, content_type: str) -> dict[str, str]:
    """The text fields of a ``multipart/form-data`` body (what ``curl -F`` sends)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode("utf-8", errors="replace")
    return fields


def _callback_url_ok(url: str) -> bool:
    if not url or len(url) > MAX_CALLBACK_URL:
        return False
    split = urlsplit(url)
    return split.scheme in ("http", "https") and bool(split.hostname)


def _bad(field: str, code: str) -> Response:
    return json_response(400, errors.bad_request("PushSubscription", field, code))


class PushHub:
    """The app's push subscription, its validation handshake, and its event delivery."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        clock: Callable[[], float],
        retry_delay: float = 1.0,
        timeout: float = CALLBACK_TIMEOUT,
    ) -> None:
        self._client_id = str(client_id)
        self._client_secret = client_secret
        self._clock = clock
        #: Call only callbacks on this machine (see the module docstring).
        self.loopback_only = True
        #: ``owner_id`` of a forged event that names none (the simulator sets its athlete).
        self.default_owner_id = 0
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()  # held across the validation GET
        self._subscription: PushSubscription | None = None
        self._next_id = FIRST_SUBSCRIPTION_ID
        self._validations: deque[Validation] = deque(maxlen=MAX_LOG)
        self.deliverer = Deliverer(clock, retry_delay=retry_delay, timeout=timeout)

    # -- settings ------------------------------------------------------------------------
    @property
    def timeout(self) -> float:
        """Seconds a callback has to answer the validation GET and each event (Strava: 2)."""
        return self.deliverer.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        if seconds <= 0:
            msg = f"timeout must be > 0 seconds, got {seconds}"
            raise ValueError(msg)
        self.deliverer.timeout = float(seconds)

    @property
    def retry_delay(self) -> float:
        """Seconds between delivery attempts (Strava's is undocumented; one saw ~2 min)."""
        return self.deliverer.retry_delay

    @retry_delay.setter
    def retry_delay(self, seconds: float) -> None:
        if seconds < 0:
            msg = f"retry_delay must be >= 0 seconds, got {seconds}"
            raise ValueError(msg)
        self.deliverer.retry_delay = float(seconds)

    # -- the subscription endpoints ------------------------------------------------------
    @staticmethod
    def serves(path: str) -> bool:
        """Whether an API path (relative to the API base) is a subscription endpoint."""
        return _ROUTE.match(path) is not None

    def handle(self, request: Request, path: str) -> Response:
        """Answer ``/push_subscriptions`` calls (no athlete token, no rate limit)."""
        match = _ROUTE.match(path)
        if match is None:
            return json_response(404, errors.unknown_path())
        method = "GET" if request.method == "HEAD" else request.method
        sub_id = match.group(1)
        allowed = ("GET", "POST") if sub_id is None else ("DELETE",)
        if method not in allowed:
            return json_response(404, errors.unknown_path())
        params = request_params(request)
        failure = self._client_error(params)
        if failure is not None:
            return failure
        if sub_id is not None:
            return self._delete(sub_id)
        if method == "GET":
            return json_response(200, self.subscriptions())
        return self._create(params)

    def _client_error(self, params: dict[str, str]) -> Response | None:
        if params.get("client_id", "").strip() != self._client_id:
            return json_response(400, errors.bad_request("Application", "client_id"))
        if not secrets.compare_digest(
            params.get("client_secret", "").encode(), self._client_secret.encode()
        ):
            body = errors.fault("Authorization Error", "Application", "", "invalid")
            return json_response(401, body)
        return None

    def _create(self, params: dict[str, str]) -> Response:
        callback_url = params.get("callback_url", "").strip()
        if not _callback_url_ok(callback_url):
            return _bad("callback url", "invalid")
        verify_token = params.get("verify_token", "")
        with self._create_lock:
            with self._lock:
                if self._subscription is not None:
                    return _bad("", "already exists")
            validation = self.validate(callback_url, verify_token)
            if not validation.ok:
                return _bad("callback url", validation.code or NOT_VERIFIABLE)
            with self._lock:
                subscription = PushSubscription(
                    self._next_id, int(self._client_id), callback_url, verify_token, self._clock()
                )
                self._next_id += 1
                self._subscription = subscription
        return json_response(201, {"id": subscription.id})

    def _delete(self, raw_id: str) -> Response:
        with self._lock:
            current = self._subscription
            if current is None or raw_id != str(current.id):
                return json_response(404, errors.record_not_found("PushSubscription"))
            self._subscription = None
        return Response(204, b"")

    def validate(self, callback_url: str, verify_token: str) -> Validation:
        """Run Strava's validation GET against a callback and log the outcome."""
        challenge = secrets.token_hex(16)
        started = self._clock()
        if self.loopback_only and not is_loopback_url(callback_url):
            reason = "the simulator calls only callbacks on this machine (loopback_only)"
            found = Validation(
                callback_url, verify_token, challenge, None, 0.0, False, NOT_VERIFIABLE, reason,
                started,
            )  # fmt: skip
            self._validations.append(found)
            return found
        query = urlencode(
            {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        )
        sep = "&" if "?" in callback_url else "?"
        result = call("GET", callback_url + sep + query, None, self.timeout)
        ok, code, reason = False, NOT_VERIFIABLE, ""
        if result.status is None:
            reason = result.error or "no answer"
        elif result.latency > self.timeout:
            reason = f"answered after {result.latency:.2f} s (more than {self.timeout:g} s)"
        elif result.status != 200:
            code, reason = NOT_200, f"answered HTTP {result.status}"
        elif _echoed(result.body) != challenge:
            reason = 'the answer does not echo hub.challenge as {"hub.challenge": "..."}'
        else:
            ok, code, reason = True, "", "challenge echoed"
        found = Validation(
            callback_url, verify_token, challenge, result.status, result.latency, ok,
            code or None, reason, started,
        )  # fmt: skip
        self._validations.append(found)
        return found

    # -- state ---------------------------------------------------------------------------
    @property
    def subscription(self) -> PushSubscription | None:
        """The current subscription, if any."""
        with self._lock:
            return self._subscription

    def subscriptions(self) -> list[JSONDict]:
        """What ``GET /push_subscriptions`` lists."""
        current = self.subscription
        return [] if current is None else [current.as_dict()]

    @property
    def validations(self) -> list[Validation]:
        """Every validation GET so far, oldest first."""
        return list(self._validations)

    @property
    def events(self) -> list[SentEvent]:
        """Every event handed to the deliverer (caused, duplicated, forged), oldest first."""
        return self.deliverer.events

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        """Every delivery attempt so far (event, attempt number, status, latency)."""
        return self.deliverer.attempts

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued event is delivered or has used its attempts."""
        return self.deliverer.wait_idle(timeout)

    def clear_log(self) -> None:
        """Forget events, deliveries and validations (pending deliveries go on)."""
        self.deliverer.clear()
        self._validations.clear()

    def stop(self) -> None:
        """Stop delivering (the simulator's ``stop``)."""
        self.deliverer.stop()

    # -- events --------------------------------------------------------------------------
    def emit(
        self,
        *,
        object_type: str,
        object_id: int,
        aspect_type: str,
        updates: dict[str, str],
        owner_id: int,
    ) -> int | None:
        """Queue the event of a change; None when there is no subscription to deliver to."""
        with self._lock:
            current = self._subscription
            if current is None:
                return None
            body = event_body(
                object_type=object_type,
                object_id=object_id,
                aspect_type=aspect_type,
                updates=updates,
                owner_id=owner_id,
                subscription_id=current.id,
                event_time=int(self._clock()),
            )
            return self.deliverer.submit(current.callback_url, body, "event")

    def forge_event(
        self,
        fields: JSONDict | None = None,
        *,
        template: bool = True,
        url: str | None = None,
        attempts: int = 1,
    ) -> int:
        """Post an event Strava never sent (anyone who knows the callback URL can).

        With ``template`` the body starts as a plausible event (an activity create of the
        simulator's athlete for the current subscription) and ``fields`` override it, e.g.
        ``{"subscription_id": 1}`` or another athlete's ``object_id``; without it ``fields``
        is the whole body. It goes to ``url`` or the subscription's callback, once by default
        (a forger does not retry). Returns the event id; ValueError for a bad body.
        """
        current = self.subscription
        target = url or (current.callback_url if current is not None else None)
        if target is None:
            msg = "no push subscription: create one first, or give the url to post to"
            raise ValueError(msg)
        if url is not None and not _callback_url_ok(url):
            msg = f"url must be an http(s) URL of at most {MAX_CALLBACK_URL} characters"
            raise ValueError(msg)
        if self.loopback_only and not is_loopback_url(target):
            msg = "the simulator posts only to callbacks on this machine (loopback_only)"
            raise ValueError(msg)
        body: JSONDict = {}
        if template:
            body = event_body(
                object_type="activity",
                object_id=1,
                aspect_type="create",
                updates={},
                owner_id=self.default_owner_id,
                subscription_id=current.id if current is not None else 0,
                event_time=int(self._clock()),
            )
        body.update(dict(fields or {}))
        try:
            size = len(json.dumps(body).encode("utf-8"))
        except (TypeError, ValueError) as exc:
            msg = f"a forged event must be JSON: {exc}"
            raise ValueError(msg) from None
        if size > MAX_FORGED_BYTES:
            msg = f"a forged event is limited to {MAX_FORGED_BYTES} bytes, got {size}"
            raise ValueError(msg)
        return self.deliverer.submit(target, body, "forged", max(1, min(attempts, MAX_ATTEMPTS)))

    def duplicate_event(self, event_id: int | None = None) -> int:
        """Deliver a past event again, as Strava may (by id; default the latest one caused).

        It goes to the current subscription's callback (else where it went first), with
        Strava's retries. Returns the new event id; KeyError if there is no such event.
        """
        if event_id is None:
            caused = [sent for sent in self.deliverer.events if sent.kind == "event"]
            if not caused:
                msg = "no event has been sent yet"
                raise KeyError(msg)
            original = caused[-1]
        else:
            original = self.deliverer.event(int(event_id))
        current = self.subscription
        target = current.callback_url if current is not None else original.url
        return self.deliverer.submit(target, dict(original.event), "duplicate")

    def status(self) -> JSONDict:
        """What ``GET /_sim/push`` shows: subscription, settings, counts."""
        current = self.subscription
        return {
            "subscription": None if current is None else current.as_dict(),
            "verify_token": None if current is None else current.verify_token,
            "retry_delay": self.retry_delay,
            "timeout": self.timeout,
            "max_attempts": MAX_ATTEMPTS,
            "loopback_only": self.loopback_only,
            "idle": self.deliverer.idle(),
            "events": len(self.deliverer.events),
            "deliveries": len(self.deliverer.attempts),
        }


def _echoed(body: bytes) -> str | None:
    """The ``hub.challenge`` a callback's answer echoes (None if it is not there)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("hub.challenge") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None
