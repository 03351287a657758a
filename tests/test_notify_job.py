"""strava-job against a scripted stand-in for meltano: outcomes, one post, lock, --force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest

from tests.test_notify_helpers import (
    BIN,
    WebhookServer,
    closed_port,
    meltano_line,
    plugin_line,
    tally,
    write_fake_meltano,
)

CSV_STATE = "dev:tap-strava-to-target-csv"
PG_STATE = "dev:tap-strava-to-target-postgres"
SECRETS = {
    "TAP_STRAVA_CLIENT_SECRET": "client-secret-4f9a8b7c",
    "TAP_STRAVA_REFRESH_TOKEN": "refresh-token-0a1b2c3d4e",
    "TARGET_POSTGRES_PASSWORD": "pg-password-77x",
}
WEBHOOK_TOKEN = "T0KEN-in-the-webhook-path-5150"

FACTS = [
    {
        "id": 11,
        "date": "2026-11-27",
        "name": "Morning Run",
        "sport_type": "Run",
        "distance_km": 10.21,
        "moving_time": 3133,
    }
]


def block_done(number: int, *, success: bool = True, **fields: t.Any) -> dict[str, t.Any]:
    return meltano_line(
        "Block run completed",
        set_number=number,
        success=success,
        err=fields.pop("err", None),
        exit_codes=fields.pop("exit_codes", {}),
        level="info" if success else "error",
    )


def running(state_id: str) -> dict[str, t.Any]:
    return meltano_line(f"Running job with name '{state_id}' and run ID 'x'")


def csv_block_ok() -> list[t.Any]:
    return [
        running(CSV_STATE),
        plugin_line("tap-strava", "Beginning sync", role="tap", state_id=CSV_STATE),
        plugin_line("tally-csv", "Input ended", role="mapper", state_id=CSV_STATE),
        plugin_line("target-csv", "Writing", role="target", state_id=CSV_STATE),
        block_done(0),
    ]


class Project:
    """A project folder, a fake meltano, a webhook; runs strava-job like cron would."""

    def __init__(self, root: Path, hook: WebhookServer) -> None:
        self.root = root
        self.hook = hook
        self.meltano = write_fake_meltano(root)
        self.script = root / "script.json"

    def play(self, *attempts: dict[str, t.Any]) -> None:
        self.script.write_text(json.dumps(list(attempts)))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STRAVA_", "MELTANO_"))}
        env.update(SECRETS)
        env.update(
            {
                "FAKE_MELTANO_SCRIPT": str(self.script),
                "STRAVA_MELTANO": str(self.meltano),
                "STRAVA_NOTIFY_URLS": self.hook.url(f"/services/{WEBHOOK_TOKEN}"),
                "STRAVA_NOTIFY_TRIES": "2",
                "STRAVA_NOTIFY_BACKOFF": "0.1",
            }
        )
        env.update(extra)
        return env

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(BIN / "strava-job"), *args],
            cwd=self.root,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def job(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args, **extra)
        stdout, stderr = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)

    def calls(self) -> list[dict[str, t.Any]]:
        path = Path(f"{self.script}.calls")
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def logs(self) -> list[Path]:
        return sorted((self.root / "logs").glob("strava-daily-*.log"))


@pytest.fixture
def project(tmp_path):
    with WebhookServer() as hook:
        yield Project(tmp_path, hook)


def only_post(project: Project) -> dict[str, t.Any]:
    posts = project.hook.posts
    assert len(posts) == 1, posts
    return posts[0]["json"]


def test_success_posts_counts_and_new_activities_once(project):
    project.play(
        {
            "tallies": {
                "csv.json": tally("CSV", new=3, updated=1, facts=FACTS, more=2),
                "postgres.json": tally("Postgres", new=3, updated=1, unchanged=4),
            },
            "lines": [*csv_block_ok(), "not json: meltano prints odd lines too"],
        }
    )
    proc = project.job("--environment", "prod")
    assert proc.returncode == 0, proc.stderr
    message = only_post(project)
    assert message["type"] == "success"
    assert message["title"] == "Strava sync (prod): 3 new activities"
    assert "CSV: activities 3 new, 1 updated (4 read); athlete 1 read" in message["body"]
    assert "Postgres: activities 3 new, 1 updated (8 read)" in message["body"]
    assert "- 2026-11-27 Morning Run (Run, 10.21 km, 52:13)\n- and 2 more" in message["body"]
    (log,) = project.logs()
    assert f"Full log: {log}" in message["body"]
    (call,) = project.calls()
    assert call["argv"] == ["--environment=prod", "--log-format=json", "run", "strava-daily"]
    assert call["cwd"] == str(project.root)
    assert log.name == f"strava-daily-{call['stamp']}.log"
    assert len(call["stamp"]) == 16
    assert call["stamp"].endswith("Z")
    assert "not json: meltano prints odd lines too" in log.read_text()
    assert not Path(call["tally_dir"]).exists()  # cleaned up after the post
    assert "Outcome success" in proc.stderr


def test_nothing_new(project):
    project.play({"tallies": {"csv.json": tally("CSV", updated=2, unchanged=5)}})
    proc = project.job()
    assert proc.returncode == 0
    message = only_post(project)
    assert message["type"] == "info"
    assert message["title"] == "Strava sync (dev): no new activities"
    assert "2 recent activities changed on Strava and were refreshed." in message["body"]


def test_partial_is_not_a_failure(project):
    project.play({"tallies": {"csv.json": tally("CSV", new=40, partial="daily quota spent")}})
    proc = project.job()
    assert proc.returncode == 0
    message = only_post(project)
    assert message["type"] == "warning"
    assert "resumes next run" in message["title"]
    assert "daily quota spent" in message["body"]


def test_one_stop_is_told_once_although_each_block_words_it_with_its_own_times(project):
    """Issue 13.8: the partial reason was repeated once per block."""
    csv_stop = (
        "the 15-minute quota is spent (100/100); the next window opens in 461 s, more than "
        "max_rate_limit_wait_seconds=5; Strava's quota allows going on after 09:15:00 UTC"
    )
    pg_stop = csv_stop.replace("461 s", "455 s")
    csv_tally, pg_tally = tally("CSV", new=4), tally("Postgres", new=4)
    csv_tally["streams"]["activity_details"] = {"records": 0}  # off in the daily job
    for one, reason in ((csv_tally, csv_stop), (pg_tally, pg_stop)):
        one["partial"] = {"reason": reason, "stops": [{"stream": "activities", "reason": reason}]}
    project.play({"tallies": {"csv.json": csv_tally, "postgres.json": pg_tally}})
    assert project.job().returncode == 0
    body = only_post(project)["body"]
    assert body.count("the 15-minute quota is spent") == 1, body
    assert pg_stop in body, "the latest wording is kept"
    assert "activity_details" not in body, "a stream without records is not listed"


def test_tap_failure_names_the_tap_and_its_error_line(project):
    error = "tap-strava: error: Strava rejected the refresh token (401): authorize again"
    project.play(
        {
            "tallies": {"csv.json": tally("CSV")},
            "lines": [
                running(CSV_STATE),
                plugin_line("tap-strava", "Beginning sync", role="tap", state_id=CSV_STATE),
                plugin_line("tap-strava", error, role="tap", state_id=CSV_STATE),
                plugin_line("tally-csv", "Input ended", role="mapper", state_id=CSV_STATE),
                meltano_line("Extractor failed", level="error"),
                block_done(0, success=False, err="Extractor failed", exit_codes={"extractors": 1}),
            ],
            "exit": 1,
        }
    )
    proc = project.job()
    assert proc.returncode == 1
    message = only_post(project)
    assert message["type"] == "failure"
    assert message["title"] == "Strava sync (dev) FAILED: tap (tap-strava)"
    assert f"Cause: {error}" in message["body"]
    assert f"(state {CSV_STATE})" in message["body"]
    assert f"Full log: {project.logs()[0]}" in message["body"]


def test_a_dead_target_is_blamed_not_the_tap_that_got_a_broken_pipe(project):
    cause = "sqlalchemy.exc.OperationalError: (psycopg.OperationalError) connection refused"
    project.play(
        {
            "lines": [
                *csv_block_ok(),
                running(PG_STATE),
                plugin_line(
                    "target-postgres",
                    "Traceback (most recent call last):",
                    role="target",
                    state_id=PG_STATE,
                ),
                plugin_line("target-postgres", cause, role="target", state_id=PG_STATE),
                plugin_line(
                    "tap-strava",
                    "BrokenPipeError: [Errno 32] Broken pipe",
                    role="tap",
                    state_id=PG_STATE,
                ),
                meltano_line("", level="error", exception=[{"exc_type": "BrokenPipeError"}]),
            ],
            "exit": 1,
        }
    )
    proc = project.job()
    assert proc.returncode == 1
    message = only_post(project)
    assert message["title"] == "Strava sync (dev) FAILED: Postgres target (target-postgres)"
    assert f"Cause: {cause}" in message["body"]
    assert "Committed before the failure: CSV target (target-csv)." in message["body"]


def test_mapper_failure(project):
    project.play(
        {
            "lines": [
                running(CSV_STATE),
                plugin_line("tally-csv", "ValueError: boom", role="mapper", state_id=CSV_STATE),
                block_done(
                    0,
                    success=False,
                    err="Mappers failed",
                    exit_codes={"mappers": [{"tally-csv": 1}]},
                ),
            ],
            "exit": 1,
        }
    )
    proc = project.job()
    assert proc.returncode == 1
    message = only_post(project)
    assert message["title"] == "Strava sync (dev) FAILED: mapper (tally-csv)"
    assert "Cause: ValueError: boom" in message["body"]


def test_meltano_itself_failing(project):
    project.play({"lines": ["Error: Job 'strava-daily' does not exist."], "exit": 2})
    proc = project.job()
    assert proc.returncode == 1
    message = only_post(project)
    assert message["title"] == "Strava sync (dev) FAILED: meltano itself"
    assert "Cause: Error: Job 'strava-daily' does not exist." in message["body"]


def test_meltano_missing(project):
    proc = project.job(STRAVA_MELTANO=str(project.root / "no-such-meltano"))
    assert proc.returncode == 1
    message = only_post(project)
    assert message["title"] == "Strava sync (dev) FAILED: meltano itself"
    assert "could not start" in message["body"]


def test_secrets_never_reach_messages_or_logs(project):
    leaky = (
        f"psycopg.OperationalError: password authentication failed for "
        f"postgresql://strava:{SECRETS['TARGET_POSTGRES_PASSWORD']}@db/strava "
        f"(secret {SECRETS['TAP_STRAVA_CLIENT_SECRET']}, "
        f"token {SECRETS['TAP_STRAVA_REFRESH_TOKEN']})"
    )
    project.play(
        {
            "lines": [
                running(PG_STATE),
                plugin_line("target-postgres", leaky, role="target", state_id=PG_STATE),
                block_done(0, success=False, err="Loader failed", exit_codes={"loaders": 1}),
            ],
            "exit": 1,
        }
    )
    proc = project.job()
    assert proc.returncode == 1
    message = only_post(project)
    assert "Postgres target" in message["title"]
    written = [message["title"], message["body"], proc.stderr, proc.stdout]
    written += [p.read_text() for p in (project.root / "logs").glob("*.log")]
    for text in written:
        for secret in [*SECRETS.values(), WEBHOOK_TOKEN]:
            assert secret not in text
    assert "password authentication failed" in message["body"]


def test_no_url_configured_means_no_post_and_no_error(project):
    project.play({"tallies": {"csv.json": tally("CSV", new=1, facts=FACTS)}})
    proc = project.job(STRAVA_NOTIFY_URLS="")
    assert proc.returncode == 0
    assert project.hook.requests == []
    assert "No STRAVA_NOTIFY_URLS configured" in proc.stderr


def test_urls_from_the_project_env_file_and_an_unreachable_one(project):
    with WebhookServer() as second:
        dead = f"http://127.0.0.1:{closed_port()}/dead"
        (project.root / ".env").write_text(f"STRAVA_NOTIFY_URLS='{dead}, {second.url('/x')}'\n")
        project.play({"tallies": {"csv.json": tally("CSV", new=1, facts=FACTS)}})
        env = project.env()
        del env["STRAVA_NOTIFY_URLS"]
        proc = subprocess.run(
            [str(BIN / "strava-job")],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0  # an undeliverable notification never fails the run
        assert len(second.posts) == 1
    assert "not delivered after 2 tries" in proc.stderr
    assert "/dead" not in proc.stderr  # scheme and host only


def test_a_second_job_refuses_while_the_first_holds_the_lock(project):
    project.play({"tallies": {"csv.json": tally("CSV", new=1, facts=FACTS)}, "sleep": 3})
    first = project.start()
    deadline = time.monotonic() + 20
    while not project.calls() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = project.job()
    _first_out, first_err = first.communicate(timeout=60)
    assert second.returncode == 2
    assert first.returncode == 0, first_err
    assert len(project.calls()) == 1  # the second job never started meltano
    titles = sorted(post["json"]["title"] for post in project.hook.posts)
    assert titles == ["Strava sync (dev) did not run", "Strava sync (dev): 1 new activity"]
    refused = next(p["json"] for p in project.hook.posts if "did not run" in p["json"]["title"])
    assert refused["type"] == "failure"
    assert f"pid {first.pid}" in refused["body"]


def test_a_job_told_to_wait_for_the_lock_runs_after_the_first(project):
    """Issue 17: the events job every five minutes waits instead of being refused."""
    project.play({"tallies": {"csv.json": tally("CSV", new=1, facts=FACTS)}, "sleep": 3})
    first = project.start()
    deadline = time.monotonic() + 20
    while not project.calls() and time.monotonic() < deadline:
        time.sleep(0.1)
    second = project.job("--wait-for-lock", "60")
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert second.returncode == 0, second.stderr[-2000:]
    assert len(project.calls()) == 2, "the second job ran meltano once the lock was free"
    assert not any("did not run" in p["json"]["title"] for p in project.hook.posts)


ALREADY_RUNNING = (
    f"Another '{CSV_STATE}' pipeline is already running which started at 2026-11-28 06:00:01. "
    "Wait until 2026-11-28 06:05:01 when the job will be automatically cancelled if stale, "
    "or ignore this check using the '--force' option."
)


def refused_attempt() -> dict[str, t.Any]:
    return {
        "lines": [
            running(CSV_STATE),
            block_done(0, success=False, err=ALREADY_RUNNING, exit_codes={}),
        ],
        "exit": 1,
    }


def test_stale_running_job_without_live_processes_is_forced(project):
    project.play(refused_attempt(), {"tallies": {"csv.json": tally("CSV", new=2, facts=FACTS)}})
    proc = project.job()
    assert proc.returncode == 0, proc.stderr
    first, second = project.calls()
    assert "--force" not in first["argv"]
    assert second["argv"][-1] == "--force"
    assert first["stamp"] == second["stamp"]
    message = only_post(project)
    assert message["type"] == "success"
    assert "used --force" in message["body"]


def test_stale_running_job_with_a_live_pipeline_process_is_not_forced(project):
    orphan = project.root / "bin" / "tap-strava"
    orphan.parent.mkdir()
    orphan.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    orphan.chmod(0o755)
    alive = subprocess.Popen([str(orphan)], cwd=project.root)
    try:
        project.play(refused_attempt(), {"tallies": {"csv.json": tally("CSV", new=2)}})
        proc = project.job()
    finally:
        alive.kill()
        alive.wait()
    assert proc.returncode == 2
    assert len(project.calls()) == 1
    message = only_post(project)
    assert message["title"] == "Strava sync (dev) did not run"
    assert f"pid {alive.pid} (tap-strava)" in message["body"]
    assert "already running" in message["body"]


def test_old_logs_are_pruned(project):
    logs = project.root / "logs"
    logs.mkdir()
    for stamp in ("20240101T000000Z", "20240102T000000Z", "20240103T000000Z"):
        (logs / f"strava-daily-{stamp}.log").write_text("old\n")
    (logs / "cron.log").write_text("kept\n")
    project.play({"tallies": {"csv.json": tally("CSV")}})
    assert project.job("--keep-logs", "2").returncode == 0
    names = sorted(p.name for p in logs.iterdir() if p.suffix == ".log")
    assert len(names) == 3
    assert "cron.log" in names
    assert "strava-daily-20240103T000000Z.log" in names


def test_meltano_killed_by_a_signal(project):
    project.play({"lines": [running(CSV_STATE)]})
    # This fake meltano ends the way a SIGKILLed one does.
    script = project.meltano.read_text().replace(
        'sys.exit(attempt.get("exit", 0))',
        "import signal\nos.kill(os.getpid(), signal.SIGKILL)",
    )
    project.meltano.write_text(script)
    proc = project.job()
    assert proc.returncode == 1
    message = only_post(project)
    assert message["title"] == "Strava sync (dev) FAILED: meltano itself"
    assert "Cause: meltano was killed by SIGKILL" in message["body"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STRAVA_KEEP_LOGS", "seven"),
        ("STRAVA_NOTIFY_TRIES", "many"),
        ("STRAVA_NOTIFY_BACKOFF", "x"),
    ],
)
def test_a_malformed_job_setting_is_one_line_naming_it(project, variable, value):
    """Issue 13.6: `ValueError: invalid literal for int()` named no setting."""
    project.play({"tallies": {"csv.json": tally("CSV", new=1)}})
    proc = project.job(**{variable: value})
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"strava-job: error: {variable} must be a")
    assert repr(value) in line
    assert not project.calls(), "meltano was not started"
