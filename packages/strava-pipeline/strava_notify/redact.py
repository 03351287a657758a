"""Keeping secrets out of notifications and log lines.

A notification quotes a failed step's last error line, and that line comes from code we do
not control (a database driver, an HTTP library). So every text the job sends or logs goes
through a :class:`Redactor` that knows the secret values of this run (from the
environment and the project's ``.env``) and also masks the shapes secrets take in URLs and
headers even when their value is unknown.
"""

from __future__ import annotations

import logging
import re
import typing as t
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
MIN_SECRET_LENGTH = 4

# Names of variables whose whole value is secret (a URL-valued one also yields its parts).
SECRET_NAME = re.compile(
    r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE_KEY|CREDENTIAL|SQLALCHEMY_URL|"
    r"DATABASE_URI|DATABASE_URL|DSN|NOTIFY_URL|WEBHOOK",
    re.IGNORECASE,
)
# ... except where the name says the value is a place (TAP_STRAVA_TOKEN_STORE_PATH).
NOT_SECRET_NAME = re.compile(r"_(PATH|DIR|FILE)$", re.IGNORECASE)
WEBHOOK_NAME = re.compile(r"NOTIFY|WEBHOOK|HOOK", re.IGNORECASE)

# Shapes of secrets whatever their value: credentials in a URL, token-ish query parameters,
# bearer headers.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*):[^@\s/]+@", re.IGNORECASE), rf"\1:{MASK}@"),
    (
        re.compile(
            r"\b((?:access_token|refresh_token|client_secret|password)[\"']?\s*[=:]\s*[\"']?)"
            r"[^\s&\"',}]+",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"([?&](?:code|sig|token|key|signature)=)[^\s&\"']+", re.IGNORECASE), rf"\1{MASK}"),
    (re.compile(r"\b(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), rf"\1{MASK}"),
)


def _token_like(text: str) -> bool:
    """A path segment or query value that may be a token: long with a digit, or very long.

    Words like ``services`` or ``webhooks`` stay readable; ``B0DEF123``, a Discord id and
    any 20-character blob are masked.
    """
    return (len(text) >= 8 and any(c.isdigit() for c in text)) or len(text) >= 20


def url_secrets(url: str, *, webhook: bool = True) -> list[str]:
    """The secret parts of a URL: the whole URL, its password, and for a webhook its tokens.

    A webhook carries its token in the path (Slack, Discord) or the query (Teams); a
    database URL only in the password (its path is a database or file name).
    """
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    if webhook:
        found += [seg for seg in parts.path.split("/") if _token_like(seg)]
        found += [value for _, value in parse_qsl(parts.query) if _token_like(value)]
    return found


class Redactor:
    """Replaces known secret values and secret-shaped substrings with ``***``."""

    def __init__(self, secrets: t.Iterable[str] = ()) -> None:
        """Remember the secrets (longest first, so a secret's parts never half-mask it)."""
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        self.secrets = sorted(unique, key=len, reverse=True)

    @classmethod
    def from_environment(
        cls, environ: t.Mapping[str, str], extra: t.Iterable[str] = ()
    ) -> Redactor:
        """Every secret-named variable's value, URL parts included, plus ``extra``."""
        secrets: list[str] = list(extra)
        for name, value in environ.items():
            if not value or not SECRET_NAME.search(name) or NOT_SECRET_NAME.search(name):
                continue
            webhook = bool(WEBHOOK_NAME.search(name))
            for item in re.split(r"[\s,]+", value) if webhook else [value]:
                secrets += url_secrets(item, webhook=webhook) if "://" in item else [item]
        return cls(secrets)

    def __call__(self, text: str) -> str:
        """The text with every secret masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the final message of every record."""

    def __init__(self, redactor: Redactor) -> None:
        """Mask with this redactor."""
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, masked; never drop a record."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is still worth logging
            message = str(record.msg)
        record.msg = self.redactor(message)
        record.args = None
        return True
