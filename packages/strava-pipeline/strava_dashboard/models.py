"""Building the analytics models the report reads: ``dbt build`` of the project's transform/.

The report draws what the dbt models define (local dates, weeks, sport groups, gear
totals) so that there is one definition of each figure; it therefore builds them first,
on the database it reads, with the Meltano project's ``dbt`` plugin (``meltano install``
puts it in ``.meltano/transformers/dbt/venv``) or, outside a project, the dbt of the
report's own environment (the ``models`` extra, the same pins). dbt runs as a process of
its own: its logging and global state stay out of the report, and a failure is one line
naming the model or test that failed and the log to read.

The connection is handed to dbt the way ``transform/profiles/profiles.yml`` reads it (the
loaders' ``TARGET_POSTGRES_*`` / ``TARGET_DUCKDB_FILEPATH`` variables), derived from the
report's own ``--database-url`` so that dbt builds exactly the database the report reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: dbt's own time for a build (the models rebuild in seconds; a locked database does not).
BUILD_TIMEOUT_S = 900
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILURE = re.compile(r"\b(Error|ERROR|FAIL|Failure)\b")
_NODE = re.compile(r"\bin (model|test|seed|snapshot|unit_test) ")
_TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d(\.\d+)?\s+")


class BuildFailed(Exception):
    """dbt could not build the models (one line naming the cause and the fix)."""


#: Where ``meltano install`` puts the project's dbt plugin, under the project's root.
PLUGIN_DBT = Path(".meltano", "transformers", "dbt", "venv", "bin", "dbt")


def dbt_executable(project_root: Path | None) -> str | None:
    """The project's dbt plugin, else the ``dbt`` beside this interpreter, else on PATH."""
    for candidate in (
        project_root / PLUGIN_DBT if project_root else None,
        Path(sys.executable).with_name("dbt"),
    ):
        if candidate is not None and candidate.exists():
            return str(candidate)
    return shutil.which("dbt")


def connection(database_url: str) -> tuple[str, dict[str, str]]:
    """The profile's target and the variables that point it at ``database_url``."""
    if database_url.startswith("duckdb:"):
        path = database_url.removeprefix("duckdb:").removeprefix("///")
        return "duckdb", {"TARGET_DUCKDB_FILEPATH": str(Path(path).resolve())}
    from psycopg.conninfo import conninfo_to_dict

    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", database_url)
    parts = conninfo_to_dict(url)
    return "postgres", {
        "TARGET_POSTGRES_HOST": str(parts.get("host") or "127.0.0.1"),
        "TARGET_POSTGRES_PORT": str(parts.get("port") or "5432"),
        "TARGET_POSTGRES_USER": str(parts.get("user") or "postgres"),
        "TARGET_POSTGRES_PASSWORD": str(parts.get("password") or ""),
        "TARGET_POSTGRES_DATABASE": str(parts.get("dbname") or "postgres"),
    }


def _failure_line(output: str) -> str:
    """What failed, from dbt's summary: the first failing node and the line that says why.

    dbt ends a failed build with ``Completed with N errors ...`` followed, per failure, by
    a line naming the node (``Runtime Error in model stg_gear (models/...)``) and the
    database's message on the next line.
    """
    lines = [_TIMESTAMP.sub("", _ANSI.sub("", line)).strip() for line in output.splitlines()]
    lines = [line for line in lines if line]
    summary = next((i for i, line in enumerate(lines) if line.startswith("Completed with")), -1)
    details = lines[summary + 1 :]
    for i, line in enumerate(details):
        if _FAILURE.search(line):
            # "Failure in model x" is followed by "Runtime Error in model x", then the why.
            reason = next((r for r in details[i + 1 :] if not _NODE.search(r)), "")
            if reason and not reason.startswith(("Done.", "Completed")):
                return f"{line}: {reason}"
            return line
    return lines[-1] if lines else "no output"


def build(
    database_url: str,
    *,
    raw_schema: str,
    analytics_schema: str,
    project_dir: Path,
    meltano_root: Path | None,
) -> None:
    """``dbt build`` (models and their tests) of ``project_dir`` on ``database_url``.

    The raw tables are read from ``raw_schema`` and the models written to
    ``analytics_schema``; dbt is the ``dbt`` plugin of the Meltano project at
    ``meltano_root`` when it is installed there (:func:`dbt_executable`). dbt's compiled
    files and log go to a folder of their own (kept, and named in the error, when the
    build fails), never into the project's transform/.
    """
    dbt = dbt_executable(meltano_root)
    if dbt is None:
        msg = (
            "dbt is not installed: `meltano install transformer dbt` in the project, or "
            "pip install 'strava-pipeline[models]' (or build the models yourself and pass "
            "--no-build)"
        )
        raise BuildFailed(msg)
    if not (project_dir / "dbt_project.yml").is_file():
        msg = (
            f"no dbt project at {project_dir}: run from the Meltano project (its "
            "transform/ folder) or pass --dbt-project-dir"
        )
        raise BuildFailed(msg)
    target, env = connection(database_url)
    work = Path(tempfile.mkdtemp(prefix="strava-dashboard-dbt-"))
    env = {
        **os.environ,
        **env,
        "STRAVA_ANALYTICS_SCHEMA": analytics_schema,
        "DBT_TARGET_PATH": str(work / "target"),
        "DBT_LOG_PATH": str(work / "logs"),
    }
    command = [
        dbt, "build", "--no-use-colors",
        "--project-dir", str(project_dir),
        "--profiles-dir", str(project_dir / "profiles"),
        "--target", target,
        "--vars", json.dumps({"raw_schema": raw_schema}),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        msg = f"dbt build took over {BUILD_TIMEOUT_S} s (is the database locked?): see {work}"
        raise BuildFailed(msg) from exc
    if done.returncode != 0:
        cause = _failure_line(done.stdout + "\n" + done.stderr)
        log = work / "logs" / "dbt.log"
        msg = f"dbt build of the models failed ({cause}): see {log if log.exists() else work}"
        raise BuildFailed(msg)
    shutil.rmtree(work, ignore_errors=True)
