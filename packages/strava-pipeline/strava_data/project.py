"""The Meltano project the data commands work on, and its settings read the one way.

Every command reads the project's ``.env`` and the environment as Meltano does
(:func:`tap_strava.dotenv_file.project_environment`: python-dotenv, the environment wins).
What lives in ``meltano.yml`` (the PostgreSQL host and schema, the token store's path, the
output folders) is asked of Meltano itself, ``meltano config --unsafe print <plugin>``,
never parsed a second time here: Meltano resolves environments, ``$MELTANO_PROJECT_ROOT``
and inherited plugins exactly as the pipeline sees them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing as t
from pathlib import Path
from urllib.parse import quote

from tap_strava.dotenv_file import project_environment

MELTANO_TIMEOUT = 120


class ProjectError(Exception):
    """A setting or place of the project the command needs: one line naming the fix."""


def default_meltano() -> str:
    """The ``meltano`` beside this interpreter (the project's venv), else the one on PATH."""
    sibling = Path(sys.executable).with_name("meltano")
    if sibling.exists():
        return str(sibling)
    return shutil.which("meltano") or "meltano"


def find_root(start: Path) -> Path | None:
    """The folder with ``meltano.yml``: ``start`` or a parent, as Meltano finds it."""
    for folder in (start, *start.parents):
        if (folder / "meltano.yml").is_file():
            return folder
    return None


@dataclasses.dataclass
class Project:
    """One Meltano project: its root, its environment, its settings."""

    root: Path | None
    environment: str
    settings: dict[str, str]
    meltano: str = dataclasses.field(default_factory=default_meltano)
    #: What ``meltano config print`` said, per plugin (a few seconds a call).
    _configs: dict[str, dict[str, t.Any]] = dataclasses.field(default_factory=dict)

    @classmethod
    def here(cls, environ: t.Mapping[str, str] | None = None) -> Project:
        """The project of ``$MELTANO_PROJECT_ROOT`` or the current folder (None: no project)."""
        environ = os.environ if environ is None else environ
        given = environ.get("MELTANO_PROJECT_ROOT")
        root = Path(given) if given else find_root(Path.cwd().resolve())
        settings = project_environment(root, environ) if root else dict(environ)
        environment = settings.get("MELTANO_ENVIRONMENT") or "dev"
        return cls(root=root, environment=environment, settings=settings)

    def config(self, plugin: str) -> dict[str, t.Any]:
        """A plugin's configuration as Meltano resolves it (empty without a project)."""
        if self.root is None:
            return {}
        if plugin not in self._configs:
            self._configs[plugin] = self._ask_config(plugin)
        return self._configs[plugin]

    def _ask_config(self, plugin: str) -> dict[str, t.Any]:
        proc = self.run_meltano("config", "--unsafe", "print", plugin)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"`meltano config print {plugin}` failed in {self.root}: {last[-300:]}"
            raise ProjectError(msg)
        try:
            value = json.loads(proc.stdout)
        except ValueError as exc:
            msg = f"`meltano config print {plugin}` printed no JSON: run it by hand to see why"
            raise ProjectError(msg) from exc
        return value if isinstance(value, dict) else {}

    def run_meltano(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """``meltano --environment=<env> ARGS`` in the project; its output captured."""
        try:
            proc = subprocess.run(
                [self.meltano, f"--environment={self.environment}", *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=MELTANO_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            msg = f"cannot run {self.meltano} ({exc}): run the command in the project's venv"
            raise ProjectError(msg) from exc
        if check and proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            msg = f"`meltano {' '.join(args[:3])}` failed: {last[-300:]}"
            raise ProjectError(msg)
        return proc

    # -- what the data commands need --------------------------------------------------

    def postgres_url(self) -> str | None:
        """The loader's server as a libpq URL (None: neither configured nor a project).

        ``TARGET_POSTGRES_SQLALCHEMY_URL`` (environment or ``.env``) is the whole answer;
        otherwise target-postgres's settings as Meltano resolves them (host and the rest
        in ``meltano.yml``, the password in ``.env``).
        """
        url = self.settings.get("TARGET_POSTGRES_SQLALCHEMY_URL", "").strip()
        if not url and self.root is not None:
            url = str(self.config("target-postgres").get("sqlalchemy_url") or "")
            if not url:
                return _url_from_parts(self.config("target-postgres"))
        if not url and self.settings.get("TARGET_POSTGRES_HOST"):
            return _url_from_parts(
                {
                    key: self.settings.get(f"TARGET_POSTGRES_{key.upper()}")
                    for key in ("host", "port", "user", "password", "database")
                }
            )
        return to_libpq(url) if url else None

    def postgres_schema(self) -> str:
        """The loader's schema: environment or ``.env``, else Meltano's, else strava."""
        given = self.settings.get("TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA", "").strip()
        if given:
            return given
        if self.root is not None:
            return str(self.config("target-postgres").get("default_target_schema") or "strava")
        return "strava"

    def token_store_path(self) -> Path | None:
        """The token store the project configures (``token_store_path`` of tap-strava)."""
        given = self.settings.get("TAP_STRAVA_TOKEN_STORE_PATH", "").strip()
        if given:
            return Path(given).expanduser()
        if self.root is None:
            return None
        configured = self.config("tap-strava").get("token_store_path")
        return Path(str(configured)).expanduser() if configured else None

    def path(self, relative: str) -> Path:
        """A path of the project (the current folder without one)."""
        return (self.root or Path.cwd()) / relative


def to_libpq(url: str) -> str:
    """Psycopg wants ``postgresql://``, SQLAlchemy ``postgresql+psycopg://``."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _url_from_parts(parts: t.Mapping[str, t.Any]) -> str | None:
    """A libpq URL from host, port, user, password and database (None without a host)."""
    host = str(parts.get("host") or "").strip()
    if not host:
        return None
    user = quote(str(parts.get("user") or "postgres"), safe="")
    password = parts.get("password")
    auth = f"{user}:{quote(str(password), safe='')}" if password else user
    port = parts.get("port") or 5432
    database = parts.get("database") or "strava"
    if host.startswith("/"):  # a Unix socket folder
        return f"postgresql://{auth}@/{database}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{database}"
