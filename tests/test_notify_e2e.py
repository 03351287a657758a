"""The README's cron line, end to end: strava-job, Meltano, the simulator, a real Postgres.

Each test builds a project folder that looks like ``/srv/tap-strava`` (a copy of the
repository's ``meltano.yml``, its ``.venv`` and installed plugins linked in; its own
``.meltano/run``, ``logs/``, ``output/`` and ``.env``), takes the cron line from the README
and runs exactly that line with ``/bin/sh``, with only the folder name replaced.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import sqlite3
import subprocess
import typing as t
import uuid
from pathlib import Path

import pytest

from strava_spool.folder import SpoolFolder
from tests.pipeline import (
    PROJECT_ROOT,
    MeltanoProject,
    assert_csv_matches_postgres,
    list_requests,
)
from tests.test_notify_helpers import WebhookServer, closed_port

pytestmark = pytest.mark.e2e

DOCUMENTED_DIR = "/srv/tap-strava"
WEBHOOK_TOKEN = "B0TOKEN-e2e-webhook-9f8e7d6c"


def documented_cron_command(job: str | None = None) -> str:
    """The command part of the README's cron line of a job (after the five time fields).

    Without ``job``: the daily line (the one without ``--job``).
    """
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```cron\n(.*?)```", readme, re.DOTALL)
    lines = [
        ln
        for block in blocks
        for ln in block.splitlines()
        if "strava-job" in ln and ((f"--job {job} " in ln) if job else "--job" not in ln)
    ]
    assert len(lines) == 1, lines
    command = lines[0].split(None, 5)[5]
    assert command.startswith(f"cd {DOCUMENTED_DIR} && ")
    return command


class CronProject:
    """A deployed project folder and the webhook it posts to."""

    def __init__(self, meltano: MeltanoProject, hook: WebhookServer, root: Path) -> None:
        self.meltano = meltano
        self.hook = hook
        self.root = root
        root.mkdir()
        # A copy: Meltano resolves a linked meltano.yml to the repository's own folder.
        shutil.copy(PROJECT_ROOT / "meltano.yml", root / "meltano.yml")
        (root / ".venv").symlink_to(PROJECT_ROOT / ".venv")
        system = root / ".meltano"
        system.mkdir()
        for kind in ("extractors", "loaders", "mappers"):
            (system / kind).symlink_to(PROJECT_ROOT / ".meltano" / kind)
        (root / "logs").mkdir()  # the README's one-time `mkdir -p .../logs`
        self.dead_url = f"http://127.0.0.1:{closed_port()}/down"
        (root / ".env").write_text(
            f"STRAVA_NOTIFY_URLS={hook.url('/services/' + WEBHOOK_TOKEN)} {self.dead_url}\n"
        )
        self.command = documented_cron_command().replace(DOCUMENTED_DIR, str(root))

    def cron(self, job: str | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
        env = self.meltano.env(STRAVA_NOTIFY_TRIES="2", STRAVA_NOTIFY_BACKOFF="0.2", **extra)
        env.pop("TARGET_CSV_OUTPUT_PATH")  # meltano.yml's output/$STRAVA_RUN_STAMP applies
        # meltano.yml's output/ and the default spool folder, spool/prod, apply.
        env.pop("TARGET_CSV_REPLAY_OUTPUT_PATH")
        env.pop("STRAVA_SPOOL_DIR")
        command = self.command
        if job:
            command = documented_cron_command(job).replace(DOCUMENTED_DIR, str(self.root))
        return subprocess.run(
            ["/bin/sh", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )

    def posts(self) -> list[dict[str, t.Any]]:
        return [post["json"] for post in self.hook.posts]

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in sorted((self.root / "logs").glob("*.log")))

    def mark_running(self, state_id: str) -> None:
        """What a SIGKILL of meltano leaves behind: a fresh "running" job row."""
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(self.meltano.workdir / "meltano.db") as db:
            db.execute(
                "INSERT INTO runs (job_name, state, started_at, payload, payload_flags, run_id,"
                ' "trigger", last_heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
                (state_id, "RUNNING", now, "{}", 0, uuid.uuid4().hex, "cli", now),
            )


@pytest.fixture
def deployed(meltano_project, tmp_path):
    with WebhookServer() as hook:
        yield CronProject(meltano_project, hook, tmp_path / "srv")


def _iso(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assert_one_extraction(simulator, since: int) -> list[tuple[tuple[str, str], ...]]:
    """Since request ``since``: every list page once, the profile at most once (one tap run)."""
    pages = list_requests(simulator, since)
    assert pages, "the run read the activity list"
    assert len(pages) == len(set(pages)), f"a list page was requested twice: {pages}"
    profile = [r for r in simulator.requests[since:] if r.path == "/api/v3/athlete"]
    assert len(profile) <= 1, "the tap ran more than once"
    return pages


def test_cron_line_posts_success_then_no_new_then_failure(deployed, simulator):
    total = len(simulator.activities)
    cron_log = deployed.root / "logs" / "cron.log"

    # 1. First sync: everything is new, in both targets, from one extraction.
    first = deployed.cron()
    assert first.returncode == 0, cron_log.read_text()[-3000:]
    (message,) = deployed.posts()
    assert message["type"] == "success"
    assert message["title"] == f"Strava sync (prod): {total} new activities"
    assert f"CSV: activities {total} rows written" in message["body"]
    assert f"Postgres: activities {total} new, 0 updated ({total} read)" in message["body"]
    assert f"- and {total - 10} more" in message["body"]
    assert len(deployed.meltano.rows("activities")) == total
    # The rotated refresh token and the access token of the store: secrets, checked below.
    store = json.loads(Path(deployed.meltano.workdir / "tokens.json").read_text())
    tokens_seen = {
        token
        for entry in store["tokens"].values()
        for token in (entry.get("refresh_token"), entry.get("access_token"))
        if token
    }
    assert tokens_seen
    stamp = re.search(r"strava-daily-(\d{8}T\d{6}Z)\.log", message["body"]).group(1)
    assert list((deployed.root / "output" / stamp).glob("activities-*.csv"))
    marker = json.loads((deployed.root / "output" / stamp / "_SUCCESS").read_text())
    assert marker["run"] == stamp
    assert marker["rows"]["activities"] == total  # counted in the files themselves
    assert marker["records_sent"]["activities"] == total
    assert_one_extraction(simulator, 0)
    seen = len(simulator.requests)

    # 2. Nothing new: the look-back re-read is neither new nor updated.
    assert deployed.cron().returncode == 0, cron_log.read_text()[-3000:]
    message = deployed.posts()[1]
    assert message["type"] == "info"
    assert message["title"] == "Strava sync (prod): no new activities"
    assert re.search(r"CSV: activities \d+ rows written", message["body"])
    assert "Postgres: activities 0 new, 0 updated" in message["body"]
    assert_one_extraction(simulator, seen)
    seen = len(simulator.requests)

    # 3. An edit, a new and a late upload; and a killed earlier run still "running".
    newest = max(simulator.activities, key=lambda a: a["start_date"])
    mark = datetime.datetime.strptime(newest["start_date"], "%Y-%m-%dT%H:%M:%SZ")
    simulator.update_activity(newest["id"], name="Renamed, after the run")
    simulator.add_activity(start_date=_iso(mark + datetime.timedelta(hours=1)), name="Fresh")
    simulator.add_activity(start_date=_iso(mark - datetime.timedelta(days=2)), name="Late")
    deployed.mark_running("prod:tap-strava-to-target-strava-spool")
    assert deployed.cron().returncode == 0, cron_log.read_text()[-3000:]
    message = deployed.posts()[2]
    assert message["type"] == "success"
    assert message["title"] == "Strava sync (prod): 2 new activities"
    rows_written = re.search(r"CSV: activities (\d+) rows written", message["body"])
    assert rows_written, message["body"]
    assert int(rows_written.group(1)) >= 3, "the edit and the two uploads at least"
    assert "Postgres: activities 2 new, 1 updated" in message["body"]
    assert " Fresh (" in message["body"]
    assert " Late (" in message["body"]
    assert "used --force" in message["body"]
    rows = deployed.meltano.rows("activities")
    assert len(rows) == total + 2
    assert {r["name"] for r in rows if r["id"] == newest["id"]} == {"Renamed, after the run"}
    assert_one_extraction(simulator, seen)
    assert_csv_matches_postgres(deployed.meltano, deployed.root / "output")
    # Spools 1 and 2 were applied by both targets: pruned; this run's stays until then.
    assert [s.seq for s in SpoolFolder(deployed.root / "spool" / "prod").spools()] == [3]

    # 4. The athlete revokes the app: the tap fails, and the message says so.
    simulator.revoke_tokens()
    failed = deployed.cron()
    assert failed.returncode == 1
    message = deployed.posts()[3]
    assert message["type"] == "failure"
    assert message["title"] == "Strava sync (prod) FAILED: tap (tap-strava)"
    assert "Cause: tap-strava: error: " in message["body"]
    log_path = Path(re.search(r"Full log: (\S+)", message["body"]).group(1))
    assert log_path.parent == deployed.root / "logs"
    assert log_path.exists()
    failed_stamp = re.search(r"strava-daily-(\d{8}T\d{6}Z)\.log", message["body"]).group(1)
    assert not (deployed.root / "output" / failed_stamp / "_SUCCESS").exists()

    # Exactly one post per run, although a second, dead URL was configured too.
    assert len(deployed.posts()) == 4
    cron_text = cron_log.read_text()
    assert cron_text.count("Outcome ") == 4
    assert cron_text.count("not delivered after 2 tries") == 4

    # No secret anywhere: messages, logs, CSV output.
    secrets = {simulator.client_secret, deployed.meltano.refresh_token, WEBHOOK_TOKEN}
    secrets |= tokens_seen
    written = [post["raw"] for post in deployed.hook.requests] + [deployed.log_text()]
    written += [p.read_text() for p in (deployed.root / "output").rglob("*.csv")]
    for text in written:
        for secret in secrets:
            assert secret not in text


# Among the slowest end-to-end tests (over a minute each): in the extras, which CI also runs,
# to keep `make test` well under its 15 minutes.
@pytest.mark.extras
def test_postgres_down_is_reported_as_behind_and_caught_up_without_a_second_extraction(
    deployed, simulator
):
    password = "pg-secret-pw-31337"
    down = f"postgresql+psycopg://strava:{password}@127.0.0.1:{closed_port()}/strava"
    proc = deployed.cron(TARGET_POSTGRES_SQLALCHEMY_URL=down)
    assert proc.returncode == 1
    (message,) = deployed.posts()
    assert message["type"] == "failure"
    assert message["title"] == "Strava sync (prod) FAILED: Postgres target (target-postgres)"
    assert "Cause: " in message["body"]
    assert re.search(r"connection (failed|refused)", message["body"], re.IGNORECASE)
    assert (
        "Committed before the failure: spool target (target-strava-spool), "
        "CSV target (target-csv-replay)." in message["body"]
    )
    assert "(state prod:tap-strava-replay-to-target-postgres)" in message["body"]
    assert "Postgres is behind: 1 extraction not loaded yet" in message["body"]
    assert "CSV is behind" not in message["body"]
    # The CSV block finished: its folder is marked, although the run failed later.
    assert list((deployed.root / "output").glob("*/_SUCCESS"))
    for text in [json.dumps(message), deployed.log_text()]:
        assert password not in text
    first_pages = assert_one_extraction(simulator, 0)
    seen = len(simulator.requests)

    # Postgres is back: the next run loads the first run's records from the spool.
    late = simulator.add_activity(name="Uploaded while Postgres was down")
    assert deployed.cron().returncode == 0, (deployed.root / "logs" / "cron.log").read_text()
    message = deployed.posts()[1]
    assert message["type"] == "success", message
    assert "is behind" not in message["body"]
    pages = assert_one_extraction(simulator, seen)
    # Incremental from the spooled bookmark: not the first run's history again.
    assert all(dict(page).get("after") for page in pages), pages
    assert len(pages) < len(first_pages) + 1
    rows = deployed.meltano.rows("activities")
    assert len(rows) == len(simulator.activities)
    assert late["id"] in {r["id"] for r in rows}
    assert_csv_matches_postgres(deployed.meltano, deployed.root / "output")


# Among the slowest end-to-end tests (over a minute each): in the extras, which CI also runs,
# to keep `make test` well under its 15 minutes.
@pytest.mark.extras
def test_the_weekly_reconcile_cron_line_flags_a_deletion_and_posts_once(deployed, simulator):
    """Also one order for every writer (issue 14): a spool Postgres missed is applied by
    the reconcile job before it writes, so a later daily run cannot revert the reconcile."""
    from tests.test_pipeline_reconcile import old_activities, record_granted_scope

    cron_log = deployed.root / "logs" / "cron.log"
    down = f"postgresql+psycopg://strava@127.0.0.1:{closed_port()}/strava"
    # The daily run's spool holds the whole history; Postgres is down and lacks it.
    assert deployed.cron(TARGET_POSTGRES_SQLALCHEMY_URL=down).returncode == 1
    record_granted_scope(deployed.meltano, deployed.meltano.refresh_token)
    gone, edited = old_activities(simulator, 2)  # far outside any daily look-back
    simulator.delete_activity(gone["id"])
    simulator.update_activity(edited["id"], name="Renamed after the spool was written")

    proc = deployed.cron("strava-reconcile")
    assert proc.returncode == 0, cron_log.read_text()[-3000:]
    message = deployed.posts()[-1]
    assert message["type"] == "success"
    assert message["title"] == "Strava sync (prod): strava-reconcile finished"
    flagged = {r["id"] for r in deployed.meltano.rows("activities") if r["_sdc_deleted_at"]}
    assert flagged == {gone["id"]}

    assert deployed.cron().returncode == 0, cron_log.read_text()[-3000:]
    rows = {r["id"]: r for r in deployed.meltano.rows("activities")}
    assert {i for i, r in rows.items() if r["_sdc_deleted_at"]} == {gone["id"]}
    assert rows[edited["id"]]["name"] == "Renamed after the spool was written"
