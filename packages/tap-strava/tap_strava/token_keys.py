"""The keys that encrypt tokens at rest in the shared database (Fernet, rotatable).

A refresh token is a standing credential to an athlete's data: in a database that every
worker (and whoever can read its backups) reaches, it is stored encrypted with
``cryptography``'s Fernet. The keys come from the environment, never from a setting
(Meltano and Dagster keep settings and run config in clear):

    TAP_STRAVA_TOKEN_KEYS=<newest key>,<older key>,...

The first key encrypts; every key decrypts (``MultiFernet``). To rotate: put a new key
first, run ``tap-strava-shared rotate-keys`` (every row re-encrypted with the first key),
then drop the old key. ``tap-strava-shared new-key`` prints a fresh key.
"""

from __future__ import annotations

import os

from tap_strava.errors import StravaConfigError

KEYS_ENV = "TAP_STRAVA_TOKEN_KEYS"


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode("ascii")


class TokenKeys:
    """Encrypt and decrypt token values with the keys of :data:`KEYS_ENV`."""

    def __init__(self, keys: list[str]) -> None:
        from cryptography.fernet import Fernet, MultiFernet

        if not keys:
            msg = (
                f"shared_database_url is set but {KEYS_ENV} is not: tokens are stored "
                "encrypted; set it to a key from `tap-strava-shared new-key` (the same "
                "key on every worker)"
            )
            raise StravaConfigError(msg)
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, UnicodeEncodeError) as exc:
                msg = (
                    f"Key {position} of {KEYS_ENV} is not a Fernet key (32 bytes in url-safe "
                    "base64, 44 characters): make one with `tap-strava-shared new-key`"
                )
                raise StravaConfigError(msg) from exc
        self._multi = MultiFernet(fernets)
        self.count = len(fernets)

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> TokenKeys:
        """The keys of :data:`KEYS_ENV` (comma-separated, newest first)."""
        raw = (os.environ if environ is None else environ).get(KEYS_ENV, "")
        return cls([part.strip() for part in raw.split(",") if part.strip()])

    def encrypt(self, value: str) -> str:
        """The value encrypted with the first key."""
        return self._multi.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, value: str) -> str:
        """The value, decrypted by whichever key encrypted it; one line if none can."""
        from cryptography.fernet import InvalidToken

        try:
            return self._multi.decrypt(value.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise _wrong_key() from exc

    def rotate(self, value: str) -> str:
        """The value re-encrypted with the first key (``MultiFernet.rotate``)."""
        from cryptography.fernet import InvalidToken

        try:
            return self._multi.rotate(value.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as exc:
            raise _wrong_key() from exc


def _wrong_key() -> StravaConfigError:
    return StravaConfigError(
        f"A stored token cannot be decrypted with any key of {KEYS_ENV}: the key it was "
        "encrypted with is missing (dropped before `tap-strava-shared rotate-keys` ran, or "
        "another worker's key); put that key back in the list"
    )
