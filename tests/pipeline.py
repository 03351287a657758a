"""Running the Meltano project end to end from the tests, as a user or cron would."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import decimal
import json
import os
import subprocess
import sys
import typing as t
import uuid
from pathlib import Path

from devtools.postgres import connect
from strava_simulator import StravaSimulator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MELTANO = str(Path(sys.executable).with_name("meltano"))
#: The MySQL/MariaDB server of the `extras` tests (root without password on this machine).
MYSQL_URL = os.environ.get(
    "STRAVA_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/?charset=utf8mb4"
)


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

    @property
    def spool_dir(self) -> Path:
        """The daily job's spool folder (docs/operations.md "One extraction, two targets")."""
        return self.workdir / "spool"

    @property
    def duckdb_path(self) -> Path:
        return self.workdir / "strava.duckdb"

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
                # A quota spent in a test stops the run instead of sleeping 15 minutes.
                "TAP_STRAVA_MAX_RATE_LIMIT_WAIT_SECONDS": "5",
                "TAP_STRAVA_DETAILS_MAX_RATE_LIMIT_WAIT_SECONDS": "5",
                "TARGET_POSTGRES_SQLALCHEMY_URL": self.postgres_url,
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": self.schema,
                "TARGET_CSV_OUTPUT_PATH": str(self.output_root / (run_stamp or "")),
                # The daily job's CSV side: one folder per spool under output/.
                "TARGET_CSV_REPLAY_OUTPUT_PATH": str(self.output_root),
                "STRAVA_SPOOL_DIR": str(self.spool_dir),
                # The archive job's spool folder and CSV output (output/archive-<stamp>/).
                **{
                    f"{plugin}_SPOOL_DIR": str(self.workdir / "spool-archive")
                    for plugin in (
                        "TARGET_STRAVA_SPOOL_ARCHIVE",
                        "TAP_STRAVA_REPLAY_ARCHIVE",
                        "TAP_STRAVA_REPLAY_ARCHIVE_CSV",
                    )
                },
                "TARGET_CSV_ARCHIVE_OUTPUT_PATH": str(self.output_root),
                "TARGET_JSONL_DESTINATION_PATH": str(self.output_root / (run_stamp or "")),
                "TARGET_MYSQL_SQLALCHEMY_URL": MYSQL_URL,
                "TARGET_MYSQL_DEFAULT_TARGET_SCHEMA": self.schema,
                "TARGET_DUCKDB_FILEPATH": str(self.duckdb_path),
            }
        )
        env.update(extra)
        return env

    def meltano(
        self, *args: str, run_stamp: str | None = None, input: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [MELTANO, *args],
            cwd=PROJECT_ROOT,
            env=self.env(run_stamp, **extra),
            input=input,
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

    def mysql_rows(self, table: str) -> list[dict[str, t.Any]]:
        """The rows of a table target-mysql wrote (into the database named `schema`)."""
        with mysql_connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM `{self.schema}`.`{table}`")
            return list(cur.fetchall())

    def drop_mysql_schema(self) -> None:
        with mysql_connection() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.schema}`")

    def duckdb_rows(self, table: str, schema: str = "strava") -> list[dict[str, t.Any]]:
        import duckdb

        # The file strava.duckdb is the catalog "strava", which has a schema "strava":
        # a bare strava.activities would be ambiguous.
        catalog = self.duckdb_path.stem
        with duckdb.connect(str(self.duckdb_path), read_only=True) as conn:
            result = conn.execute(f'SELECT * FROM "{catalog}"."{schema}"."{table}"')
            columns = [c[0] for c in result.description or []]
            return [dict(zip(columns, row, strict=True)) for row in result.fetchall()]

    def state(self, state_id: str) -> dict[str, t.Any]:
        proc = self.meltano("state", "get", state_id)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return t.cast("dict[str, t.Any]", json.loads(proc.stdout))

    # -- dbt (the `dbt` transformer over transform/) --------------------------------------

    @property
    def analytics_schema(self) -> str:
        """Where this project's dbt models go (the raw tables are in `schema`)."""
        return f"{self.schema}_analytics"

    def postgres_parts(self) -> dict[str, str]:
        """postgres_url as TARGET_POSTGRES_HOST/_PORT/_USER/_PASSWORD/_DATABASE.

        dbt's profile cannot read a SQLAlchemy URL; an embedded server's socket folder
        (``?host=/path``) becomes the host, which libpq accepts.
        """
        from sqlalchemy.engine import make_url

        url = make_url(self.postgres_url)
        host = url.query.get("host") or url.host or "127.0.0.1"
        return {
            "TARGET_POSTGRES_HOST": host if isinstance(host, str) else host[0],
            "TARGET_POSTGRES_PORT": str(url.port or 5432),
            "TARGET_POSTGRES_USER": url.username or "postgres",
            "TARGET_POSTGRES_PASSWORD": url.password or "",
            "TARGET_POSTGRES_DATABASE": url.database or "postgres",
        }

    def dbt(self, *args: str, **extra: str) -> subprocess.CompletedProcess:
        """`meltano invoke dbt ARGS` on this project's raw schema and DuckDB file."""
        return self.meltano(
            "invoke",
            "dbt",
            *args,
            **{
                **self.postgres_parts(),
                "STRAVA_ANALYTICS_SCHEMA": self.analytics_schema,
                # dbt's compiled SQL and logs in the test's folder, not transform/.
                "DBT_TARGET_PATH": str(self.workdir / "dbt-target"),
                "DBT_LOG_PATH": str(self.workdir / "dbt-logs"),
                **extra,
            },
        )


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def csv_last_records(
    output_root: Path, stream: str = "activities", *, finished_only: bool = True
) -> dict[int, dict[str, str]]:
    """The last CSV row per ``id`` over every finished folder, oldest folder first.

    Folders are named by their run's UTC stamp, so name order is extraction order; what a
    consumer of the folders ends up with is the last row per key. ``finished_only``: only
    folders with strava-job's ``_SUCCESS`` (a bare ``meltano run`` writes none).
    """
    rows: dict[int, dict[str, str]] = {}
    folders = [p for p in output_root.iterdir() if p.is_dir()]
    for folder in sorted(f for f in folders if (f / "_SUCCESS").exists() or not finished_only):
        for path in sorted(folder.glob(f"{stream}-*.csv")):
            rows.update({int(row["id"]): row for row in read_csv(path)})
    return rows


def assert_csv_matches_postgres(
    project: MeltanoProject, output_root: Path, *, finished_only: bool = True
) -> None:
    """CSV and Postgres hold the same last record per key (ids, names, distances)."""
    csv_rows = csv_last_records(output_root, finished_only=finished_only)
    pg_rows = {r["id"]: r for r in project.rows("activities")}
    assert set(csv_rows) == set(pg_rows)
    for key, row in pg_rows.items():
        assert csv_rows[key]["name"] == (row["name"] or ""), key
        assert float(csv_rows[key]["distance"]) == float(row["distance"]), key


def list_requests(sim: StravaSimulator, since: int = 0) -> list[tuple[tuple[str, str], ...]]:
    """The activity-list pages requested since request number ``since`` (query, sorted)."""
    return [
        tuple(sorted(r.query.items()))
        for r in sim.requests[since:]
        if r.path == "/api/v3/athlete/activities"
    ]


def read_jsonl(path: Path) -> list[dict[str, t.Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def mysql_connection() -> t.Any:
    """A PyMySQL connection (utf8mb4, dict rows) to the server of MYSQL_URL."""
    import pymysql
    import pymysql.cursors
    from sqlalchemy.engine import make_url

    url = make_url(MYSQL_URL)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
        autocommit=True,
    )


# -- comparing a loaded table with the simulator's activities ---------------------------


def utc(value: str) -> datetime.datetime:
    """A Strava date-time as the naive UTC datetime SQL targets store."""
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def _types(column: str) -> set[str]:
    from tap_strava.schemas import ACTIVITY_SCHEMA

    spec = ACTIVITY_SCHEMA["properties"][column]
    kinds = spec.get("type", [])
    return {kinds} if isinstance(kinds, str) else set(kinds)


def normalize(column: str, value: t.Any) -> t.Any:
    """A value read from a SQL table in the shape of Strava's JSON, for comparison.

    Covers what the loaders return: Decimal (Postgres numeric), tz-aware datetimes,
    0/1 for booleans (MySQL's TINYINT), JSON as text (MariaDB, DuckDB).
    """
    kinds = _types(column)
    if isinstance(value, str) and kinds & {"object", "array"}:
        value = json.loads(value)
    if isinstance(value, int) and not isinstance(value, bool) and "boolean" in kinds:
        return bool(value)
    return _plain(value)


def _plain(value: t.Any) -> t.Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    return value


def expected(column: str, value: t.Any) -> t.Any:
    """A source value as a SQL table holds it (date-times naive UTC, numbers float)."""
    from tap_strava.schemas import ACTIVITY_SCHEMA

    spec = ACTIVITY_SCHEMA["properties"][column]
    if value is not None and spec.get("format") == "date-time":
        return utc(value)
    if isinstance(value, int) and not isinstance(value, bool) and "number" in spec["type"]:
        return float(value)
    return value


def assert_table_equals_source(
    rows: list[dict[str, t.Any]],
    sim: StravaSimulator,
    normalize: t.Callable[[str, t.Any], t.Any] = normalize,
) -> None:
    """Every activity exactly once, every column equal to what Strava serves."""
    from tap_strava.schemas import ACTIVITY_SCHEMA

    source = {a["id"]: a for a in sim.activities}
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicated activity rows"
    assert set(ids) == set(source), "lost or extra activity rows"
    for row in rows:
        activity = source[row["id"]]
        for column in ACTIVITY_SCHEMA["properties"]:
            if column == "athlete_id":
                assert row[column] == sim.athlete_id
                continue
            want = expected(column, activity.get(column))
            actual = normalize(column, row[column])
            assert actual == want, (row["id"], column, actual, want)


AWKWARD_EDIT = 'Édité: "quoted", comma\\slash 🚴‍♀️ 北京'


def upload_and_edit(sim: StravaSimulator) -> tuple[int, int, int]:
    """After a first run: a new upload, a late upload inside the look-back window, and
    an edit of the newest activity (awkward name, made private). Returns their ids."""
    newest = max(utc(a["start_date"]) for a in sim.activities)
    new = sim.add_activity(
        start_date=(newest + datetime.timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    late = sim.add_activity(
        start_date=(newest - datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    recent = max(
        (a for a in sim.activities if a["id"] not in (new["id"], late["id"])),
        key=lambda a: (a["start_date"], a["id"]),
    )
    sim.update_activity(recent["id"], name=AWKWARD_EDIT, private=True, visibility="only_me")
    return new["id"], late["id"], recent["id"]


def changed_ids(before: list[dict[str, t.Any]], after: list[dict[str, t.Any]]) -> set[int]:
    """Ids of rows present in both whose activity columns differ."""
    from tap_strava.schemas import ACTIVITY_SCHEMA

    old = {r["id"]: r for r in before}
    return {
        r["id"]
        for r in after
        if r["id"] in old and any(r[c] != old[r["id"]][c] for c in ACTIVITY_SCHEMA["properties"])
    }
