"""Running the Meltano project end to end from the tests, as a user or cron would."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

from devtools.postgres import connect
from tap_strava.simulator import StravaSimulator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MELTANO = str(Path(sys.executable).with_name("meltano"))


def private_meltano_dir(workdir: Path) -> Path:
    """A system folder of our own whose plugin folders are the project's installed ones.

    Meltano writes a run's catalog and config to ``.meltano/run/<plugin>/`` under fixed
    names, so two ``meltano`` commands of one project running at once would overwrite
    each other's catalog: each test gets its own ``MELTANO_SYS_DIR_ROOT``.
    """
    sys_dir = workdir / "meltano-sys"
    if sys_dir.exists():
        return sys_dir
    sys_dir.mkdir(parents=True)
    shared = PROJECT_ROOT / ".meltano"
    for entry in shared.iterdir():
        if entry.is_dir() and entry.name not in ("run", "logs"):
            (sys_dir / entry.name).symlink_to(entry, target_is_directory=True)
    return sys_dir


@dataclasses.dataclass
class MeltanoProject:
    """The repository's meltano.yml, with its own system database, output and schema."""

    sim: StravaSimulator
    postgres_url: str
    workdir: Path
    refresh_token: str
    schema: str = dataclasses.field(default_factory=lambda: f"strava_{uuid.uuid4().hex[:10]}")

    @property
    def output_root(self) -> Path:
        return self.workdir / "output"

    def env(self, run_stamp: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TAP_STRAVA_", "TARGET_", "MELTANO_"))
        }
        env.update(
            {
                "MELTANO_DATABASE_URI": f"sqlite:///{self.workdir / 'meltano.db'}",
                "MELTANO_SYS_DIR_ROOT": str(private_meltano_dir(self.workdir)),
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "TAP_STRAVA_CLIENT_ID": self.sim.client_id,
                "TAP_STRAVA_CLIENT_SECRET": self.sim.client_secret,
                "TAP_STRAVA_REFRESH_TOKEN": self.refresh_token,
                "TAP_STRAVA_API_URL": self.sim.api_url,
                "TAP_STRAVA_TOKEN_URL": self.sim.token_url,
                "TAP_STRAVA_TOKEN_STORE_PATH": str(self.workdir / "tokens.json"),
                "TARGET_POSTGRES_SQLALCHEMY_URL": self.postgres_url,
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
                "TARGET_CSV_OUTPUT_PATH": str(self.output_root / (run_stamp or "")),
            }
        )
        env.update(extra)
        return env

    def meltano(
        self, *args: str, run_stamp: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MELTANO, *args],
            cwd=PROJECT_ROOT,
            env=self.env(run_stamp, **extra),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def popen(self, *args: str, run_stamp: str | None = None, **extra: str) -> subprocess.Popen:
        """Start meltano in its own process group (so a test can SIGKILL all of it)."""
        return subprocess.Popen(
            [MELTANO, *args],
            cwd=PROJECT_ROOT,
            env=self.env(run_stamp, **extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def run(self, *blocks: str, run_stamp: str | None = None) -> subprocess.CompletedProcess:
        proc = self.meltano("run", *blocks, run_stamp=run_stamp)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc

    def rows(self, table: str) -> list[dict[str, t.Any]]:
        with connect(self.postgres_url) as conn, conn.cursor() as cur:
            cur.execute(f'SELECT * FROM "{self.schema}"."{table}"')
            columns = [c.name for c in cur.description or []]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]

    def drop_schema(self) -> None:
        with connect(self.postgres_url) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    def state(self, state_id: str) -> dict[str, t.Any]:
        proc = self.meltano("state", "get", state_id)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return t.cast("dict[str, t.Any]", json.loads(proc.stdout))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
