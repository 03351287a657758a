"""OAuth refresh for Strava that survives refresh-token rotation.

The SDK's :class:`~singer_sdk.authenticators.OAuthAuthenticator` keeps only the access
token of a refresh answer and drops the new ``refresh_token``. Strava invalidates the old
refresh token as soon as it issues a new one, so this authenticator persists every
rotated token in the :class:`~tap_strava.token_store.TokenStore` before using it, reuses
a stored access token while it is still valid, and turns Strava's token errors into one
line that says what to do.
"""

from __future__ import annotations

import time
import typing as t

import requests
import urllib3
from singer_sdk.authenticators import OAuthAuthenticator

from tap_strava.answer_size import DEFAULT_MAX_ANSWER_MIB, cap_answer_size
from tap_strava.errors import (
    StravaAuthError,
    StravaConfigError,
    strava_error_fields,
    strava_error_summary,
)
from tap_strava.token_store import StoredTokens, TokenStore

# Refresh a little before Strava's expiry so that a request never races the clock.
EXPIRY_MARGIN_SECONDS = 300
TOKEN_REQUEST_ATTEMPTS = 4


def TOKEN_RETRY_WAIT(attempt: int) -> float:
    """Seconds to wait before retrying the token endpoint: 1, 2, 4 s."""
    return float(2 ** (attempt - 1))


REAUTHORIZE_HINT = (
    "authorize the app again with `tap-strava-auth` (or `meltano invoke "
    "tap-strava:authorize`), which sets the new refresh token as TAP_STRAVA_REFRESH_TOKEN "
    "in .env"
)


def reauthorize_hint(athlete: str | None = None) -> str:
    """How to fix a dead token: for an entry of ``athletes``, name that entry."""
    if not athlete:
        return REAUTHORIZE_HINT
    if athlete.startswith("athletes["):  # an entry without a name
        return (
            f"authorize the app again for {athlete}: give that entry a name and run "
            "`tap-strava-auth --athlete NAME`, which puts the new refresh token in it"
        )
    return (
        f"authorize the app again for this athlete with `tap-strava-auth --athlete {athlete}`, "
        f"which puts the new refresh token in the '{athlete}' entry of TAP_STRAVA_ATHLETES in .env"
    )


class StravaAuthenticator(OAuthAuthenticator):
    """Bearer-token authenticator backed by a rotation-safe token store."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_url: str,
        token_store: TokenStore,
        timeout: float = 60.0,
        clock: t.Callable[[], float] = time.time,
        athlete: str | None = None,
    ) -> None:
        super().__init__(
            auth_endpoint=token_url,
            client_id=client_id,
            client_secret=client_secret,
        )
        self._configured_refresh_token = refresh_token
        self.token_store = token_store
        self._timeout = timeout
        self._clock = clock
        self.expires_at: int | None = None
        # The fix named in errors: an entry of `athletes` has its own re-authorization.
        self.reauthorize_hint = reauthorize_hint(athlete)
        # Token answers are read under the same size cap as the API's (answer_size.py).
        cap_answer_size(self._session, DEFAULT_MAX_ANSWER_MIB)

    @property
    def oauth_request_body(self) -> dict:
        """Strava's refresh grant (the refresh token is the newest one known)."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": self.refresh_token or self._configured_refresh_token,
        }

    def is_token_valid(self) -> bool:
        """Valid while Strava's ``expires_at`` is more than a safety margin away."""
        return bool(
            self.access_token
            and self.expires_at
            and self.expires_at - self._clock() > EXPIRY_MARGIN_SECONDS
        )

    def update_access_token(self) -> None:
        """Get a usable access token: from the store if still valid, else by refreshing.

        The store's lock is held across read, refresh and write: a concurrent run waits
        and then finds the fresh token instead of spending the already-rotated one.
        """
        with self.token_store.locked():
            stored = self.token_store.load()
            if stored is not None:
                self.refresh_token = stored.refresh_token
                self._adopt(stored)
                if self.is_token_valid():
                    self.logger.info("Reusing the stored Strava access token")
                    return
            else:
                self.refresh_token = self._configured_refresh_token
            self.logger.info("Requesting a new Strava access token")
            answer = self._post_refresh()
            rotated = answer.get("refresh_token") or self.refresh_token
            if rotated != self.refresh_token:
                self.logger.info("Strava rotated the refresh token; the new one is stored")
            tokens = StoredTokens(
                refresh_token=str(rotated),
                access_token=str(answer["access_token"]),
                expires_at=_expires_at(answer, self._clock()),
                athlete_id=stored.athlete_id if stored else None,
                updated_at=int(self._clock()),
                scope=stored.scope if stored else None,
            )
            # Persist before first use: once Strava rotated, the old token is dead.
            self.token_store.save(tokens)
            self.refresh_token = tokens.refresh_token
            self._adopt(tokens)

    def invalidate_access_token(self) -> None:
        """Forget an access token Strava rejected, so the next request refreshes."""
        with self.token_store.locked():
            self.token_store.forget_access_token()
        self.access_token = None
        self.expires_at = None
        self.last_refreshed = None

    def _adopt(self, tokens: StoredTokens) -> None:
        self.access_token = tokens.access_token
        self.expires_at = tokens.expires_at
        self.expires_in = (
            max(0, int(tokens.expires_at - self._clock())) if tokens.expires_at else None
        )

    def _post_refresh(self) -> dict[str, t.Any]:
        last_problem = ""
        lost_answer = ""  # how an earlier try that may have reached Strava failed
        for attempt in range(1, TOKEN_REQUEST_ATTEMPTS + 1):
            try:
                response = self._session.post(
                    self.auth_endpoint,
                    data=self.oauth_request_body,
                    timeout=self._timeout,
                )
            except requests.exceptions.RequestException as exc:
                last_problem = f"{type(exc).__name__}"
                if _may_have_reached_strava(exc):
                    lost_answer = lost_answer or last_problem
            else:
                if response.status_code < 500:
                    return self._token_answer(response, lost_answer)
                last_problem = strava_error_summary(
                    response.status_code, _json_or_none(response), response.text
                )
            if attempt < TOKEN_REQUEST_ATTEMPTS:
                delay = TOKEN_RETRY_WAIT(attempt)
                self.logger.warning(
                    "Strava token endpoint failed (%s); retrying in %s s", last_problem, delay
                )
                time.sleep(delay)
        msg = (
            f"Strava's token endpoint {self.auth_endpoint} did not answer usefully after "
            f"{TOKEN_REQUEST_ATTEMPTS} tries ({last_problem}): check token_url and the "
            "network, then run again"
        )
        raise StravaConfigError(msg)

    def _token_answer(self, response: requests.Response, lost_answer: str = "") -> dict[str, t.Any]:
        """The token answer, or the one-line error for it.

        ``lost_answer``: an earlier try of this refresh failed after it may have reached
        Strava. If Strava now refuses the refresh token, it most likely rotated it in the
        answer that never arrived: the stored token is dead and the new one is lost, which
        only a new authorization fixes. Saying so spares the user a hunt for a second
        script or an old copy of the token.
        """
        body = _json_or_none(response)
        if response.ok and isinstance(body, dict) and body.get("access_token"):
            return body
        errors = strava_error_fields(body)
        fields = {field for _, field, _ in errors}
        resources = {resource for resource, _, _ in errors}
        summary = strava_error_summary(response.status_code, body, response.text)
        if "refresh_token" in fields and lost_answer:
            msg = (
                f"Strava's answer to the token refresh was lost ({lost_answer}) and the retry "
                f"was refused ({summary}): Strava had most likely rotated the refresh token "
                f"in that answer, so the stored one is dead; {self.reauthorize_hint}"
            )
            raise StravaAuthError(msg)
        if "refresh_token" in fields or "code" in fields:
            msg = (
                f"Strava rejected the refresh token ({summary}): it was revoked, already "
                f"rotated or belongs to another app; {self.reauthorize_hint}"
            )
            raise StravaAuthError(msg)
        if "client_id" in fields or "client_secret" in fields or "Application" in resources:
            msg = (
                f"Strava rejected the app credentials ({summary}): check client_id and "
                "client_secret against https://www.strava.com/settings/api"
            )
            raise StravaAuthError(msg)
        if response.status_code == 403 and "inactive" in response.text.lower():
            msg = (
                "Strava answered 403 Application Status Inactive: the Strava API app needs an "
                "active developer subscription (https://www.strava.com/settings/api)"
            )
            raise StravaAuthError(msg)
        if response.ok or response.status_code == 404:
            msg = (
                f"{self.auth_endpoint} did not answer like Strava's token endpoint "
                f"({summary}): check the token_url setting"
            )
            raise StravaConfigError(msg)
        msg = f"Strava refused the token refresh ({summary}): {self.reauthorize_hint}"
        raise StravaAuthError(msg)


def _may_have_reached_strava(exc: requests.exceptions.RequestException) -> bool:
    """Whether a failed token request may have been received (and acted on) by Strava.

    A refused connection or a connect timeout never sent the request; a reset, an aborted
    connection or a read timeout came after it was sent, so Strava may have rotated.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return False
    cause = exc.args[0] if exc.args else None
    return not isinstance(getattr(cause, "reason", None), urllib3.exceptions.NewConnectionError)


def _json_or_none(response: requests.Response) -> t.Any:
    try:
        return response.json()
    except ValueError:
        return None


def _expires_at(answer: dict[str, t.Any], now: float) -> int | None:
    if answer.get("expires_at") is not None:
        return int(answer["expires_at"])
    if answer.get("expires_in") is not None:
        return int(now + float(answer["expires_in"]))
    return None
