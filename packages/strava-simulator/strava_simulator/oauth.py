"""Strava's OAuth: refresh-token rotation, the one-hour reuse rule, codes, revocation.

Facts modelled (see ``shared/docs/strava-api.md``):

* access tokens live 6 hours; asking for a refresh while the newest access token has more
  than one hour left returns that same access token and the same refresh token;
* otherwise a new access token is issued and, with rotation on, a new refresh token too; the
  previous refresh token is invalid at once (older access tokens stay valid until they
  expire: Strava documents no earlier invalidation);
* unknown ``client_id`` -> 400 naming ``client_id``; known id with a wrong secret -> 401
  ``Authorization Error`` with an empty ``field`` (as observed on the live API);
* unknown, rotated-out or revoked refresh token -> 400 naming ``refresh_token``;
* a code from ``/oauth/authorize`` is single use; exchanging it also returns the athlete;
* deauthorization invalidates every token of the athlete for the application.

Every refresh grant is also remembered as a :class:`RefreshGrant` (fingerprints only, never
a token), so that tests can prove what no exit code shows: that no refresh token was
presented twice, and which one the chain ended on.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from typing import Any

from strava_simulator import errors

JSONDict = dict[str, Any]
KNOWN_SCOPES = (
    "read",
    "read_all",
    "profile:read_all",
    "profile:write",
    "activity:read",
    "activity:read_all",
    "activity:write",
)
REUSE_MARGIN_SECONDS = 3600


def token_fingerprint(token: str | None) -> str | None:
    """A short, non-reversible name for a token (what grant records keep instead of it)."""
    if not token:
        return None
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class RefreshGrant:
    """One ``grant_type=refresh_token`` request the token endpoint decided.

    ``presented`` and ``issued`` are :func:`token_fingerprint` values of the refresh token
    sent and of the one answered (None when refused). ``rotated`` says the answer carried
    a new refresh token, so the presented one died at that moment.
    """

    presented: str | None
    accepted: bool
    rotated: bool
    issued: str | None
    time: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``GET /_sim/token_grants``)."""
        return {
            "presented": self.presented,
            "accepted": self.accepted,
            "rotated": self.rotated,
            "issued": self.issued,
            "time": self.time,
        }


def parse_scope(scope: str) -> tuple[str, ...]:
    """Split a comma- or space-separated scope list, keeping order, without duplicates."""
    parts = [p for p in scope.replace(" ", ",").split(",") if p]
    return tuple(dict.fromkeys(parts))


@dataclass(frozen=True)
class TokenResult:
    """An answer of the token endpoint: status and JSON body."""

    status: int
    body: JSONDict | None  # None: an empty body (``/oauth/revoke``)


class TokenAuthority:
    """Issues and checks tokens for the one simulated athlete and application."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        access_token_lifetime: int,
        rotate_refresh_tokens: bool,
        scope: str,
        seed: int,
        initial_refresh_token: str | None,
    ) -> None:
        self.client_id = str(client_id)
        self.client_secret = client_secret
        self.lifetime = int(access_token_lifetime)
        self.rotate = rotate_refresh_tokens
        self._lock = threading.RLock()
        self._seed = seed
        self._serial = 0
        self._scope: tuple[str, ...] = parse_scope(scope)
        self._refresh_token: str | None = initial_refresh_token or self._new_token("refresh")
        self._access: dict[str, int] = {}  # token -> expires_at
        self._current_access: str | None = None
        self._codes: dict[str, tuple[str, ...]] = {}
        self.approve = True
        self.grant_override: tuple[str, ...] | None = None
        self._grants: list[RefreshGrant] = []

    # -- token values --------------------------------------------------------------------
    def _new_token(self, kind: str) -> str:
        """A 40-hex-digit token, deterministic from the seed (reproducible test runs)."""
        self._serial += 1
        digest = hashlib.sha256(f"strava-sim:{self._seed}:{kind}:{self._serial}".encode())
        return digest.hexdigest()[:40]

    @property
    def refresh_token(self) -> str | None:
        """The one refresh token that works now (None after revocation)."""
        with self._lock:
            return self._refresh_token

    @property
    def scope(self) -> tuple[str, ...]:
        """Scopes granted to the tokens."""
        with self._lock:
            return self._scope

    def set_scope(self, scope: str) -> None:
        """Change the scope of current and future tokens."""
        with self._lock:
            self._scope = parse_scope(scope)

    @property
    def grants(self) -> list[RefreshGrant]:
        """Every refresh grant decided so far, oldest first."""
        with self._lock:
            return list(self._grants)

    def has_scope(self, name: str) -> bool:
        """Whether the granted scope includes ``name``."""
        with self._lock:
            return name in self._scope

    # -- checks --------------------------------------------------------------------------
    def access_valid(self, token: str | None, now: float) -> bool:
        """Whether an access token is known, unexpired and not revoked."""
        if not token:
            return False
        with self._lock:
            expires_at = self._access.get(token)
            return expires_at is not None and now < expires_at

    def issue_access_token(self, now: float) -> tuple[str, int]:
        """Issue an access token directly (tests that do not exercise the refresh flow)."""
        with self._lock:
            if self._refresh_token is None:
                self._refresh_token = self._new_token("refresh")
            return self._issue_access(now)

    def reauthorize(self, now: float) -> str:
        """A new authorization of the athlete: new refresh token (the old one dies) and access."""
        with self._lock:
            self._refresh_token = self._new_token("refresh")
            self._issue_access(now)
            return self._refresh_token

    def _issue_access(self, now: float) -> tuple[str, int]:
        token = self._new_token("access")
        expires_at = int(now) + self.lifetime
        self._access[token] = expires_at
        self._current_access = token
        return token, expires_at

    def _client_error(self, params: dict[str, str]) -> TokenResult | None:
        if params.get("client_id", "").strip() != self.client_id:
            return TokenResult(400, errors.bad_request("Application", "client_id"))
        if params.get("client_secret", "") != self.client_secret:
            body = errors.fault("Authorization Error", "Application", "", "invalid")
            return TokenResult(401, body)
        return None

    def knows_grant(self, params: dict[str, str]) -> bool:
        """Whether a token request presents this chain's refresh token or one of its codes."""
        with self._lock:
            presented = params.get("refresh_token", "")
            if presented and self._refresh_token is not None:
                return secrets.compare_digest(presented, self._refresh_token)
            return params.get("code", "") in self._codes

    # -- POST /oauth/token ---------------------------------------------------------------
    def token(self, params: dict[str, str], now: float, athlete: JSONDict) -> TokenResult:
        """Answer ``POST /oauth/token`` for the refresh and authorization-code grants."""
        with self._lock:
            failure = self._client_error(params)
            if failure is not None:
                return failure
            grant = params.get("grant_type", "")
            if grant == "refresh_token":
                return self._refresh(params.get("refresh_token", ""), now)
            if grant == "authorization_code":
                return self._exchange(params.get("code", ""), now, athlete)
            return TokenResult(400, errors.bad_request("Application", "grant_type"))

    def _refresh(self, presented: str, now: float) -> TokenResult:
        if (
            not presented
            or self._refresh_token is None
            or not secrets.compare_digest(presented, self._refresh_token)
        ):
            self._grants.append(RefreshGrant(token_fingerprint(presented), False, False, None, now))
            return TokenResult(400, errors.bad_request("RefreshToken", "refresh_token"))
        current = self._current_access
        expires_at = self._access.get(current, 0) if current else 0
        if current is None or expires_at - now <= REUSE_MARGIN_SECONDS:
            if self.rotate:
                self._refresh_token = self._new_token("refresh")
            current, expires_at = self._issue_access(now)
        sent = token_fingerprint(presented)
        issued = token_fingerprint(self._refresh_token)
        self._grants.append(RefreshGrant(sent, True, issued != sent, issued, now))
        return TokenResult(
            200,
            {
                "token_type": "Bearer",
                "access_token": current,
                "expires_at": expires_at,
                "expires_in": int(expires_at - int(now)),
                "refresh_token": self._refresh_token,
            },
        )

    def _exchange(self, code: str, now: float, athlete: JSONDict) -> TokenResult:
        granted = self._codes.pop(code, None)
        if granted is None:
            return TokenResult(400, errors.bad_request("AuthorizationCode", "code"))
        self._scope = granted
        self._refresh_token = self._new_token("refresh")
        access, expires_at = self._issue_access(now)
        return TokenResult(
            200,
            {
                "token_type": "Bearer",
                "expires_at": expires_at,
                "expires_in": int(expires_at - int(now)),
                "refresh_token": self._refresh_token,
                "access_token": access,
                "athlete": athlete,
            },
        )

    # -- GET /oauth/authorize ------------------------------------------------------------
    def authorize(self, params: dict[str, str]) -> tuple[int, JSONDict | dict[str, str]]:
        """Decide an authorization request the way the athlete's consent screen would.

        Returns ``(302, query for the redirect)`` or ``(400, fault body)``.
        """
        with self._lock:
            if params.get("client_id", "").strip() != self.client_id:
                return 400, errors.bad_request("Application", "client_id")
            if not params.get("redirect_uri"):
                return 400, errors.bad_request("Application", "redirect_uri")
            if params.get("response_type") != "code":
                return 400, errors.bad_request("Application", "response_type")
            requested = parse_scope(params.get("scope", "read"))
            if any(s not in KNOWN_SCOPES for s in requested):
                return 400, errors.bad_request("Authorize", "scope")
            state = params.get("state", "")
            deny = params.get("deny", "").lower() in ("1", "true", "yes")
            if deny or not self.approve:
                return 302, {"state": state, "error": "access_denied"}
            granted = ("read", *(s for s in requested if s != "read"))
            if self.grant_override is not None:
                granted = tuple(s for s in granted if s == "read" or s in self.grant_override)
            code = self._new_token("code")
            self._codes[code] = granted
            return 302, {"state": state, "code": code, "scope": ",".join(granted)}

    # -- revocation ----------------------------------------------------------------------
    def revoke(self) -> None:
        """The athlete deauthorizes the application: every token stops working."""
        with self._lock:
            self._refresh_token = None
            self._access.clear()
            self._current_access = None
            self._codes.clear()

    def deauthorize(self, token: str | None, now: float) -> TokenResult:
        """Answer ``POST /oauth/deauthorize`` (the pre-2027 endpoint, needs an access token)."""
        with self._lock:
            if not self.access_valid(token, now):
                return TokenResult(401, errors.invalid_access_token())
            self.revoke()
            return TokenResult(200, {"access_token": token})

    def revoke_endpoint(self, basic_client: tuple[str, str] | None, token: str) -> TokenResult:
        """Answer ``POST /oauth/revoke`` (the 2026 endpoint: HTTP Basic client credentials)."""
        with self._lock:
            if basic_client is None or basic_client != (self.client_id, self.client_secret):
                return TokenResult(401, errors.fault("Authorization Error"))
            if not token:
                return TokenResult(400, errors.bad_request("Token", "token"))
            if token == self._refresh_token or token in self._access:
                self.revoke()
            return TokenResult(200, None)
