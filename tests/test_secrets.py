"""No secret in any log line, file or output of a DEBUG run (the token store excepted)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.pipeline import PROJECT_ROOT, MeltanoProject

pytestmark = pytest.mark.e2e

DB_PASSWORD = "Db-Pa55word-Not-To-Leak"


def _with_password(url: str) -> str:
    """The same server with a password in the URL (trust auth ignores it; logs must too)."""
    scheme, rest = url.split("://", 1)
    user, host = rest.split("@", 1)
    user = user.split(":", 1)[0]
    return f"{scheme}://{user}:{DB_PASSWORD}@{host}"


def _files_written_since(root: Path, since: float) -> list[Path]:
    if not root.exists():
        return []
    return [p for p in root.rglob("*") if p.is_file() and p.stat().st_mtime >= since]


@pytest.mark.parametrize("several_athletes", [False, True], ids=["one-athlete", "athletes"])
def test_a_debug_run_writes_no_secret_anywhere(simulator, postgres_url, tmp_path, several_athletes):
    started = time.time() - 1
    project = MeltanoProject(
        sim=simulator,
        postgres_url=_with_password(postgres_url),
        workdir=tmp_path,
        refresh_token=simulator.refresh_token,
    )
    extra: dict[str, str] = {}
    configured = {"configured refresh token": project.refresh_token}
    if several_athletes:
        bob = simulator.add_athlete(seed=77, activity_count=20)
        configured["bob's configured refresh token"] = str(bob.refresh_token)
        extra["TAP_STRAVA_ATHLETES"] = json.dumps(
            [{"name": "bob", "refresh_token": bob.refresh_token}]
        )
    try:
        outputs: list[str] = []
        for target in ("target-postgres", "target-csv"):
            proc = project.meltano(
                "--log-level=debug", "run", "tap-strava", target, LOGLEVEL="DEBUG", **extra
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            outputs.append(proc.stdout + proc.stderr)
        store = json.loads((tmp_path / "tokens.json").read_text())["tokens"]
        assert len(store) == len(configured)
        secrets = {
            "client secret": simulator.client_secret,
            "database password": DB_PASSWORD,
            **configured,
        }
        for index, chain in enumerate(store.values()):
            secrets[f"rotated refresh token {index}"] = chain["refresh_token"]
            secrets[f"access token {index}"] = chain["access_token"]
        places: dict[str, str] = {f"meltano output {i}": text for i, text in enumerate(outputs)}
        candidates = [
            *_files_written_since(tmp_path / "meltano-sys" / "logs", started),
            *_files_written_since(tmp_path / "meltano-sys" / "run", started),
            *_files_written_since(PROJECT_ROOT / ".meltano" / "logs", started),
            *_files_written_since(tmp_path / "output", started),
            tmp_path / "meltano.db",
        ]
        assert any("elt" in str(p) for p in candidates), "Meltano's run logs were scanned"
        for path in candidates:
            places[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
        leaks = [
            f"{name} in {where}"
            for where, text in places.items()
            for name, value in secrets.items()
            if value and value in text
        ]
        assert not leaks, leaks
    finally:
        project.drop_schema()
