"""`make bench`: API requests, throughput and peak memory of the pipeline, by account size.

Run ``python -m devtools.bench`` (sizes 1,000 and 10,000, then the requests section),
``--sizes 1000,10000,100000`` for the full table, ``--quick`` for 1,000 only (and the
requests section), ``--requests-only`` for the requests section alone. For each size it
starts the Strava simulator (``strava-sim``, rate limits raised so that nothing ever
waits) with that many activities and measures, in one command, so that every ratio
compares runs made on the same (shared, noisy) machine at the same time:

Requests (the scarce resource: 100 reads per 15 minutes, 1,000 a day per app)
    Counted by the simulator itself (``GET /_sim/requests``), not from the tap's logs.
    ``API`` is what Strava's read quota counts (every ``/api/v3`` GET); ``list`` the
    ``GET /athlete/activities`` pages among them; ``min list`` the fewest list pages that
    can return the account: ``floor(N / 200) + 1`` for a first sync (pages of 200 until a
    short or empty one), 1 for an incremental run; ``fixed`` the other calls (``/athlete``,
    the stats, one ``/gear/{id}`` per gear); token calls are not counted by Strava.
    ``windows`` are the (after, before) ranges whose last page was not full (a first sync
    reads newest first, one ``before`` cursor per page: 1 there, its closing page),
    ``empty`` the list pages that came back empty, ``re-read`` the activities fetched more
    than once (there: the activities of the cursor's second, about one per page). Rows:
    the tap alone (first sync, nothing new, 10 new uploads), ``meltano run tap-strava
    target-csv`` and ``... target-postgres`` (two extractions), and the project's job
    ``strava-daily`` (one extraction into a spool, then CSV and Postgres from it): its first
    run, nothing new, 10 new.
Tap throughput
    ``tap``: records/s of a first sync by ``tap-strava --config ...`` alone, output to
    /dev/null, whole process (start-up included). ``baseline``: a minimal process that
    GETs the very same URLs the tap requested (read from the simulator's log) with
    ``requests`` and decodes the JSON; ``serve``: the same URLs with ``http.client``, the
    bodies read but not decoded, i.e. the simulator's own serving speed (no client can go
    faster). The three run in turn, ``--repeats`` times (once above 10,000 activities,
    where each round takes minutes); medians are shown and
    ``tap/baseline`` is the median of the per-round ratios. ``bare loop`` (issue 27): the
    same URLs with ``urllib``, each answer decoded and each record re-emitted as a Singer
    RECORD line (to /dev/null), a process of its own; ``tap / bare loop`` is the median
    of the per-round ratios of seconds, the figure issue 27 holds to at most 2.0 at
    10,000. ``--profile`` runs one more first sync under cProfile and reports its own
    time by group (socket reads, decoding, serialization, digest, conforming, imports)
    and its costliest functions; ``--throughput-only`` leaves out everything after the
    throughput rounds (the incremental runs, Meltano, the requests section).
End to end
    ``meltano run tap-strava target-postgres`` and ``... target-csv`` (first sync, fresh
    state and schema; records/s over every record the tap emits) beside target-postgres
    and target-csv alone fed the tap's first-sync output from a file (their own
    executables, the config Meltano passes; the loaded rows are counted), and the floor:
    the activities of that file parsed and written by one plain ``COPY`` into an empty
    table of the same columns. Each loader is also run with the settings of
    ``LOADER_VARIANTS`` (``use_copy``, ``validate_records: false``, ``batch_size_rows``),
    the last of them end to end too. ``vs file`` = end-to-end seconds / seconds of the
    same target with the same settings fed from the file (goal: at most 1.5).
Peak memory
    Max RSS in MB: for a process run alone, the kernel's account of the whole process
    (``wait4``); inside ``meltano run``, each process's ``VmHWM`` sampled every 50 ms.
    ``growth`` compares each size with the previous one (goal: 100,000 at most 1.5 x
    10,000).
Requests against Strava's minimum (issue 14; ``--requests-only`` runs this alone)
    Counted from the request log of a ``StravaSimulator`` in this process (``sim.requests``),
    each figure beside Strava's minimum and the issue's bar. First syncs of 447, 2,000 and
    10,000 activities (the tap in-process; minimum: the ⌈N/200⌉ pages plus the closing
    empty one; bar ⌈N/200⌉ + 2 list requests); a 2,010-activity first sync under 4 reads
    per 15-minute window, one run per window until the bookmark is set (bar: at most 14
    runs, each making progress, no 429, every activity once in the table). Then real
    ``meltano run strava-daily`` runs (spool, then CSV and Postgres from it) at Strava's
    real limits: the first sync of 447 activities, nothing new on the first run of a UTC
    day (minimum 4: the look-back page, its closing page, profile, stats) and later the
    same day (minimum 2), 10 new uploads; and ten athletes (``TAP_STRAVA_ATHLETES``) with
    nothing new (bar: 4 reads per athlete, within one window of 100 reads, no wait, Strava
    read once for both targets). The next UTC day is made by moving the facts file's
    cached profile and stats a day back, the next window by resetting the simulator's counts
    and the saved quota reading. ``--no-meltano`` leaves the daily-job runs out.
XML (issue 18)
    ``meltano run tap-strava target-xml`` and target-xml alone on the first-sync file
    (meltano.yml's settings: ``validate_records`` off); the activities file's records
    are counted. Goal: target-xml's peak memory at 10,000
    activities at most 1.5 x that at 1,000. ``--xml-only``: the first sync and this only.

Meltano runs use a private system folder, state database and schemas (``bench_*`` in
the PostgreSQL database, by default ``strava_bench`` on 127.0.0.1:5432, created if
missing; ``--postgres-url`` or ``TARGET_POSTGRES_*`` choose another server; without one
an embedded server is started), so the benchmark can run beside the tests. Settings that
meltano.yml does not declare (``use_copy``) are tried through a generated copy of
meltano.yml in the work folder; the project's own files are not touched.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import dataclasses
import datetime
import http.client
import io
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from devtools.postgres import PROJECT_ROOT, configured_url, connect, postgres_server
from strava_simulator import StravaSimulator
from strava_simulator.records import RequestRecord
from tap_strava.ratelimit import WAIT_MARKER

JSONDict = dict[str, Any]
BIN = Path(sys.executable).parent
PAGE = 200
UNLIMITED = 10**9
DEFAULT_SIZES = (1000, 10000)
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/strava_bench"
NEW_UPLOADS = 10
#: Loader settings tried beside the defaults (fed from the file; the last one also end to
#: end through Meltano, from a generated copy of meltano.yml that declares them).
LOADER_VARIANTS: dict[str, dict[str, JSONDict]] = {
    "target-postgres": {
        "use_copy": {"use_copy": True},
        "use_copy+no_validate": {"use_copy": True, "validate_records": False},
    },
    "target-csv": {
        "batch_10000+no_validate": {"batch_size_rows": 10000, "validate_records": False},
    },
}
#: Larger accounts get one throughput round (each round is three first syncs).
ROUNDS_UP_TO = 10000
MB = 1024 * 1024
#: Processes whose peak memory is reported, by executable name.
ROLES = (
    "tap-strava",
    "target-postgres",
    "target-csv",
    "target-xml",
    "mapper-strava-tally",
    "meltano",
)
#: The role of a multiprocessing worker (``python -c "...spawn_main(...)"``): the only
#: ones in these pipelines are tap-strava's archive decoders (export_workers).
WORKER_ROLE = "tap-strava worker"


# -- measuring a process ----------------------------------------------------------------


@dataclasses.dataclass
class Measured:
    """One finished process: wall time, kernel-accounted CPU and memory, per-role peaks."""

    seconds: float
    returncode: int
    cpu_seconds: float
    maxrss_mb: float
    peaks_mb: dict[str, float]
    log: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, chars: int = 2000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-chars:]


def _role(proc: psutil.Process) -> str | None:
    """The role of a process by its executable (``python /x/bin/tap-strava ...``)."""
    try:
        cmdline = proc.cmdline()
    except (psutil.Error, OSError):
        return None
    if any("spawn_main" in arg for arg in cmdline):
        return WORKER_ROLE  # a process the tap started to decode archive tracks
    names = {Path(arg).name for arg in cmdline[:2]}
    return next((role for role in ROLES if role in names), None)


def _hwm_mb(pid: int) -> float:
    """The process's own peak RSS so far (VmHWM), MB; 0 when it is gone."""
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return 0.0


def _sample_peaks(root: int, peaks: dict[str, float], done: threading.Event) -> None:
    """Record each role's highest VmHWM in the process tree until ``done``."""
    roles: dict[int, str | None] = {}
    while not done.wait(0.05):
        try:
            procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            continue
        for proc in procs:
            if proc.pid not in roles:
                roles[proc.pid] = _role(proc)
            role = roles[proc.pid]
            if role is not None:
                peaks[role] = max(peaks.get(role, 0.0), _hwm_mb(proc.pid))


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str],
    log: Path,
    cwd: Path = PROJECT_ROOT,
    stdin: Path | None = None,
    stdout: Path | None = None,
    timeout: float = 3600,
) -> Measured:
    """Run ``cmd`` in its own process group; stdout to a file or /dev/null, stderr to log."""
    with contextlib.ExitStack() as stack:
        out = stack.enter_context((stdout or Path(os.devnull)).open("wb"))
        inp = stack.enter_context((stdin or Path(os.devnull)).open("rb"))
        err = stack.enter_context(log.open("wb"))
        peaks: dict[str, float] = {}
        done = threading.Event()
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=inp, stdout=out, stderr=err, start_new_session=True
        )
        sampler = threading.Thread(target=_sample_peaks, args=(proc.pid, peaks, done))
        sampler.start()
        killer = threading.Timer(timeout, _kill_group, args=(proc.pid,))
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
            done.set()
            sampler.join()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        seconds=seconds,
        returncode=proc.returncode,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        maxrss_mb=usage.ru_maxrss * 1024 / MB,
        peaks_mb=peaks,
        log=log,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


# -- the simulator ----------------------------------------------------------------------


class Simulator:
    """``strava-sim`` in its own process, driven through its ``/_sim/`` control calls."""

    def __init__(self, activities: int, seed: int, workdir: Path) -> None:
        info_file = workdir / "simulator.json"
        limit = str(UNLIMITED)
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                str(BIN / "strava-sim"),
                *("--port", "0", "--seed", str(seed), "--activities", str(activities)),
                *("--read-limit-15min", limit, "--read-limit-daily", limit),
                *("--overall-limit-15min", limit, "--overall-limit-daily", limit),
                *("--info-file", str(info_file), "--quiet"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "simulator.log").open("wb"),
            start_new_session=True,
        )
        while not (info_file.exists() and info_file.stat().st_size):
            if self.proc.poll() is not None or time.perf_counter() - started > 900:
                self.stop()
                sys.exit(f"bench: the simulator did not start; see {workdir}/simulator.log")
            time.sleep(0.1)
        self.startup_seconds = time.perf_counter() - started
        self.info: JSONDict = json.loads(info_file.read_text())
        self.base_url: str = self.info["base_url"]
        self.api_url: str = self.info["api_url"]

    def call(self, method: str, path: str, body: JSONDict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())

    @property
    def refresh_token(self) -> str:
        return str(self.call("GET", "/_sim/info")["refresh_token"])

    def access_token(self) -> str:
        return str(self.call("POST", "/_sim/access_token")["access_token"])

    def clear_requests(self) -> None:
        self.call("DELETE", "/_sim/requests")

    def requests(self) -> list[JSONDict]:
        return list(self.call("GET", "/_sim/requests"))

    def upload(self, count: int) -> None:
        for _ in range(count):
            self.call("POST", "/_sim/activities", {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- request accounting -----------------------------------------------------------------


def _is_list(record: JSONDict) -> bool:
    return str(record["path"]).rstrip("/").endswith("/athlete/activities")


def _is_api(record: JSONDict) -> bool:
    return str(record["path"]).startswith("/api/v3/")


@dataclasses.dataclass
class RequestCount:
    """What one sync cost in Strava's quota, as the simulator saw it."""

    label: str
    api: int
    list_pages: int
    min_list: int
    fixed: int
    token: int
    windows: int | None = None
    empty: int | None = None
    reread: int | None = None

    @property
    def allowed(self) -> int:
        """The goal: the minimum plus at most one extra request per finished window."""
        return self.min_list + (self.windows if self.windows is not None else 1)


def count_requests(
    label: str, records: list[JSONDict], min_list: int, counts: list[JSONDict] | None = None
) -> RequestCount:
    """Sort a sync's requests; ``counts`` (per list page: items, ids) adds the details."""
    api = [r for r in records if _is_api(r)]
    pages = [r for r in api if _is_list(r)]
    result = RequestCount(
        label=label,
        api=len(api),
        list_pages=len(pages),
        min_list=min_list,
        fixed=len(api) - len(pages),
        token=sum(1 for r in records if "/oauth/" in str(r["path"])),
    )
    if counts is not None:
        windows: dict[tuple[str, str], list[int]] = {}
        for record, page in zip(pages, counts, strict=True):
            query = record["query"]
            key = (str(query.get("after")), str(query.get("before")))
            windows.setdefault(key, []).append(int(page["items"]))
        # A window whose last page read was full was left unfinished (read again as
        # smaller windows); a finished one ends with a short or empty page.
        abandoned = sum(1 for items in windows.values() if items[-1] == PAGE)
        result.windows = len(windows) - abandoned
        result.empty = sum(1 for page in counts if page["items"] == 0)
        seen: set[int] = set()
        total = 0
        for page in counts:
            total += len(page["ids"])
            seen.update(page["ids"])
        result.reread = total - len(seen)
    return result


# -- the baseline loops (run as their own processes: python -m devtools.bench --loop) -----


def loop_main(kind: str, spec_file: Path) -> None:
    """Fetch the URLs of ``spec_file`` in order; print what came back as JSON."""
    spec = json.loads(spec_file.read_text())
    urls: list[str] = spec["urls"]
    token: str = spec["access_token"]
    started = time.perf_counter()
    pages: list[JSONDict] = []
    body_bytes = 0
    if kind == "baseline":
        import requests

        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        for url in urls:
            answer = session.get(url, timeout=120)
            answer.raise_for_status()
            body = answer.json()
            if isinstance(body, list):
                pages.append({"items": len(body), "ids": [item["id"] for item in body]})
            else:
                pages.append({"items": 1, "ids": []})
    else:
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            conn = http.client.HTTPConnection(parts.netloc, timeout=120)
            conn.request(
                "GET", f"{parts.path}?{parts.query}", headers={"Authorization": f"Bearer {token}"}
            )
            body_bytes += len(conn.getresponse().read())
            conn.close()
    result = {"seconds": time.perf_counter() - started, "pages": pages, "bytes": body_bytes}
    json.dump(result, sys.stdout)


def installed_env() -> dict[str, str]:
    """This environment, with bytecode caching on, as for an installed tap.

    ``PYTHONDONTWRITEBYTECODE`` (set in some shells and CI images) makes every process
    compile the editable packages' sources again at each start: about 0.4 s of a tap's
    start-up that an installed tap (whose ``.pyc`` files pip wrote) never pays.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


#: Issue 27's bare loop, run as ``python -c`` so that it imports nothing but what it uses
#: (``python -m devtools.bench`` would import the benchmark, the simulator and psutil,
#: about 0.2 s of CPU the loop does not need): the same URLs with urllib, each answer
#: decoded, each record re-emitted as a Singer RECORD line (to /dev/null, as the tap's
#: output is here); what it read, as JSON on stdout.
BARE_LOOP = """
import json, os, sys, time, urllib.request
spec = json.load(open(sys.argv[1]))
started = time.perf_counter()
pages = []
with open(os.devnull, "w", encoding="utf-8") as sink:
    for url in spec["urls"]:
        request = urllib.request.Request(
            url, headers={"Authorization": "Bearer " + spec["access_token"]}
        )
        with urllib.request.urlopen(request, timeout=120) as answer:
            body = json.loads(answer.read())
        items = body if isinstance(body, list) else [body]
        stream = "activities" if isinstance(body, list) else "other"
        for item in items:
            sink.write(json.dumps({"type": "RECORD", "stream": stream, "record": item}) + "\\n")
        pages.append({"items": len(items), "ids": []})
json.dump({"seconds": time.perf_counter() - started, "pages": pages, "bytes": 0}, sys.stdout)
"""


def run_loop(kind: str, spec_file: Path, workdir: Path) -> tuple[Measured, JSONDict]:
    out = workdir / f"loop-{kind}.json"
    cmd = [sys.executable, "-m", "devtools.bench", "--loop", kind, str(spec_file)]
    if kind == "bare":
        cmd = [sys.executable, "-c", BARE_LOOP, str(spec_file)]
    measured = run_measured(cmd, env=installed_env(), log=workdir / f"loop-{kind}.log", stdout=out)
    if not measured.ok:
        sys.exit(f"bench: the {kind} loop failed: {measured.tail()}")
    return measured, json.loads(out.read_text())


# -- Singer output ----------------------------------------------------------------------

_STREAM = re.compile(r'"stream"\s*:\s*"([^"]+)"')


@dataclasses.dataclass
class SingerOutput:
    """Counts of a tap's output file and its last state."""

    records: dict[str, int]
    state: JSONDict | None
    state_bytes_max: int
    state_messages: int

    @property
    def total(self) -> int:
        return sum(self.records.values())


def read_output(path: Path) -> SingerOutput:
    records: dict[str, int] = {}
    state: str | None = None
    biggest = 0
    states = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            head = line[:120].replace(" ", "")
            if head.startswith('{"type":"RECORD"'):
                match = _STREAM.search(line[:200])
                stream = match.group(1) if match else "?"
                records[stream] = records.get(stream, 0) + 1
            elif head.startswith('{"type":"STATE"'):
                state = line
                states += 1
                biggest = max(biggest, len(line))
    value = json.loads(state)["value"] if state else None
    return SingerOutput(records, value, biggest, states)


# -- Meltano ----------------------------------------------------------------------------


def private_meltano_dir(workdir: Path) -> Path:
    """A system folder whose plugin folders are the project's installed ones (see tests)."""
    sys_dir = workdir / "meltano-sys"
    if not sys_dir.exists():
        sys_dir.mkdir(parents=True)
        for entry in (PROJECT_ROOT / ".meltano").iterdir():
            if entry.is_dir() and entry.name not in ("run", "logs"):
                (sys_dir / entry.name).symlink_to(entry, target_is_directory=True)
    return sys_dir


def variant_project(workdir: Path, name: str, loader: str, settings: JSONDict) -> Path:
    """A copy of meltano.yml whose ``loader`` also has ``settings`` (declared if need be)."""
    import yaml

    project = yaml.safe_load((PROJECT_ROOT / "meltano.yml").read_text())
    for plugin in project["plugins"]["loaders"]:
        if plugin["name"] == loader:
            declared = {s["name"] for s in plugin.get("settings", [])}
            for key, value in settings.items():
                if key not in declared:
                    kind = "boolean" if isinstance(value, bool) else "integer"
                    plugin.setdefault("settings", []).append({"name": key, "kind": kind})
                plugin.setdefault("config", {})[key] = value
    folder = workdir / f"project-{loader}-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    return folder


def _copy_value(value: Any, array: bool) -> Any:
    """A JSON value as COPY's text format wants it (arrays as {a,b}, objects as JSON)."""
    if array and isinstance(value, list):
        return "{" + ",".join(str(v) for v in value) + "}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def _csv_rows(path: Path) -> int:
    """Data rows of a CSV file with a header (quoted newlines allowed)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _plugin_bin(kind: str, name: str) -> Path:
    return PROJECT_ROOT / ".meltano" / kind / name / "venv" / "bin" / name


# -- one account size -------------------------------------------------------------------


@dataclasses.dataclass
class SizeResult:
    """Everything measured for one account size."""

    size: int
    sim_startup: float = 0.0
    records: int = 0
    activities: int = 0
    state_bytes_max: int = 0
    state_messages: int = 0
    requests: list[RequestCount] = dataclasses.field(default_factory=list)
    tap_seconds: list[float] = dataclasses.field(default_factory=list)
    baseline_seconds: list[float] = dataclasses.field(default_factory=list)
    serve_seconds: list[float] = dataclasses.field(default_factory=list)
    ratios: list[float] = dataclasses.field(default_factory=list)
    #: Issue 27: the bare urllib loop that re-emits every record, and tap / bare per round.
    bare_seconds: list[float] = dataclasses.field(default_factory=list)
    bare_ratios: list[float] = dataclasses.field(default_factory=list)
    #: The same in CPU seconds (user + system, the kernel's account): steadier than wall
    #: time on a shared machine, where a process also waits for a core.
    tap_cpu: list[float] = dataclasses.field(default_factory=list)
    bare_cpu: list[float] = dataclasses.field(default_factory=list)
    bare_cpu_ratios: list[float] = dataclasses.field(default_factory=list)
    #: CPU seconds of each process's start-up alone (its imports), medians of 3.
    tap_startup_cpu: float | None = None
    bare_startup_cpu: float | None = None
    #: cProfile of one first sync (``--profile``): total seconds and the top entries.
    profile: str = ""
    loads: dict[str, float | None] = dataclasses.field(default_factory=dict)
    memory: dict[str, float] = dataclasses.field(default_factory=dict)
    failures: list[str] = dataclasses.field(default_factory=list)


class SizeBench:
    """The benchmark of one account size, in its own work folder."""

    def __init__(
        self, size: int, args: argparse.Namespace, workdir: Path, postgres_url: str
    ) -> None:
        self.size = size
        self.args = args
        self.workdir = workdir
        self.postgres_url = postgres_url
        self.result = SizeResult(size)
        self.tokens = workdir / "tokens.json"
        self.sim: Simulator
        self.first_output = workdir / "first-sync.jsonl"

    def log(self, message: str) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        print(f"bench [{stamp}] {self.size:>7,}: {message}", file=sys.stderr, flush=True)

    # -- the tap alone --------------------------------------------------------------------
    def tap_config(self) -> Path:
        info = self.sim.info
        config = {
            "client_id": info["client_id"],
            "client_secret": info["client_secret"],
            "refresh_token": self.sim.refresh_token,
            "api_url": info["api_url"],
            "token_url": info["token_url"],
            "token_store_path": str(self.tokens),
            "max_rate_limit_wait_seconds": 5,
        }
        path = self.workdir / "tap-config.json"
        path.write_text(json.dumps(config))
        return path

    def run_tap(self, name: str, state: JSONDict | None, out: Path | None) -> Measured:
        cmd = [str(BIN / "tap-strava"), "--config", str(self.tap_config())]
        if state is not None:
            state_file = self.workdir / f"{name}.state.json"
            state_file.write_text(json.dumps(state))
            cmd += ["--state", str(state_file)]
        measured = run_measured(
            cmd,
            env=installed_env(),
            log=self.workdir / f"{name}.log",
            stdout=out,
            timeout=self.args.timeout,
        )
        if not measured.ok:
            self.fail(f"tap {name} exited {measured.returncode}: {measured.tail(600)}")
        return measured

    def fail(self, message: str) -> None:
        self.log(f"FAILED: {message}")
        self.result.failures.append(message)

    def list_counts(self, records: list[JSONDict]) -> tuple[Path, list[JSONDict]]:
        """Write the spec of the baseline loops (the tap's GETs) and read every page once."""
        urls = [
            f"{self.sim.base_url}{r['path']}?{urllib.parse.urlencode(r['query'])}"
            if r["query"]
            else f"{self.sim.base_url}{r['path']}"
            for r in records
            if _is_api(r) and r["method"] == "GET" and r["status"] == 200
        ]
        spec = self.workdir / "loop-spec.json"
        spec.write_text(json.dumps({"urls": urls, "access_token": self.sim.access_token()}))
        _, answer = run_loop("baseline", spec, self.workdir)
        pages = [
            page
            for page, url in zip(answer["pages"], urls, strict=True)
            if "/athlete/activities" in url
        ]
        return spec, pages

    def first_sync(self) -> None:
        self.sim.clear_requests()
        measured = self.run_tap("first-sync", None, self.first_output)
        records = self.sim.requests()
        output = read_output(self.first_output)
        result = self.result
        result.records = output.total
        result.activities = output.records.get("activities", 0)
        result.state_bytes_max = output.state_bytes_max
        result.state_messages = output.state_messages
        result.memory["tap alone"] = measured.maxrss_mb
        self.state1 = output.state
        self.spec, pages = self.list_counts(records)
        min_list = result.activities // PAGE + 1
        result.requests.append(count_requests("tap: first sync", records, min_list, pages))
        self.log(
            f"first sync {measured.seconds:.1f}s, {output.total:,} records, "
            f"{result.requests[-1].api} API requests"
        )

    def throughput(self) -> None:
        """Tap, baseline and serve loops in turn; each round gives one tap/baseline ratio."""
        result = self.result
        rounds = self.args.repeats if self.size <= ROUNDS_UP_TO else 1
        for round_ in range(rounds):
            tap = self.run_tap(f"throughput-{round_}", None, None)
            bare, _ = run_loop("bare", self.spec, self.workdir)
            base, _ = run_loop("baseline", self.spec, self.workdir)
            serve, _ = run_loop("serve", self.spec, self.workdir)
            result.tap_seconds.append(tap.seconds)
            result.bare_seconds.append(bare.seconds)
            result.bare_ratios.append(tap.seconds / bare.seconds)
            result.tap_cpu.append(tap.cpu_seconds)
            result.bare_cpu.append(bare.cpu_seconds)
            result.bare_cpu_ratios.append(tap.cpu_seconds / max(bare.cpu_seconds, 0.01))
            result.baseline_seconds.append(base.seconds)
            result.serve_seconds.append(serve.seconds)
            result.ratios.append(base.seconds / tap.seconds)
            result.memory["tap alone"] = max(result.memory["tap alone"], tap.maxrss_mb)
            result.memory["baseline loop"] = base.maxrss_mb
            self.log(
                f"round {round_ + 1}: tap {tap.seconds:.2f}s, bare loop {bare.seconds:.2f}s "
                f"({tap.seconds / bare.seconds:.2f}x; CPU {tap.cpu_seconds:.2f}s against "
                f"{bare.cpu_seconds:.2f}s), baseline {base.seconds:.2f}s, "
                f"serve {serve.seconds:.2f}s"
            )

    def profile(self) -> None:
        """One more first sync of the tap alone, under cProfile: where its time goes."""
        import pstats

        out = self.workdir / "tap.prof"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), str(BIN / "tap-strava")]
        cmd += ["--config", str(self.tap_config())]
        measured = run_measured(
            cmd, env=installed_env(), log=self.workdir / "profile.log", timeout=self.args.timeout
        )
        if not measured.ok:
            self.fail(f"profiled tap exited {measured.returncode}: {measured.tail(600)}")
            return
        self.result.profile = profile_table(pstats.Stats(str(out)), measured.seconds)

    def startup(self) -> None:
        """CPU of the tap's and the bare loop's start-up alone (their imports)."""

        def cpu(code: str) -> float:
            runs = [
                run_measured(
                    [sys.executable, "-c", code], env=installed_env(), log=self.workdir / "s.log"
                )
                for _ in range(3)
            ]
            return _med([run.cpu_seconds for run in runs])

        self.result.tap_startup_cpu = cpu("import tap_strava.tap")
        self.result.bare_startup_cpu = cpu("import json, os, sys, time, urllib.request")

    def incremental(self, label: str, state: JSONDict | None) -> JSONDict | None:
        self.sim.clear_requests()
        out = self.workdir / f"{label.replace(' ', '-')}.jsonl"
        self.run_tap(label.replace(" ", "-"), state, out)
        output = read_output(out)
        self.result.requests.append(count_requests(f"tap: {label}", self.sim.requests(), 1))
        self.log(
            f"{label}: {output.records.get('activities', 0)} activities emitted, "
            f"{self.result.requests[-1].api} API requests"
        )
        return output.state

    # -- Meltano --------------------------------------------------------------------------
    def meltano_env(self, database: str, schema: str) -> dict[str, str]:
        info = self.sim.info
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TAP_STRAVA_", "TARGET_", "MELTANO_"))
        }
        stamp = f"{database}-{time.time_ns()}"
        (self.workdir / "tally").mkdir(exist_ok=True)
        env.update(
            {
                "MELTANO_DATABASE_URI": f"sqlite:///{self.workdir / (database + '.db')}",
                "MELTANO_SYS_DIR_ROOT": str(private_meltano_dir(self.workdir)),
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "TAP_STRAVA_CLIENT_ID": str(info["client_id"]),
                "TAP_STRAVA_CLIENT_SECRET": str(info["client_secret"]),
                "TAP_STRAVA_REFRESH_TOKEN": self.sim.refresh_token,
                "TAP_STRAVA_API_URL": str(info["api_url"]),
                "TAP_STRAVA_TOKEN_URL": str(info["token_url"]),
                "TAP_STRAVA_TOKEN_STORE_PATH": str(self.tokens),
                "TAP_STRAVA_MAX_RATE_LIMIT_WAIT_SECONDS": "5",
                "TARGET_POSTGRES_SQLALCHEMY_URL": self.postgres_url,
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
                "TARGET_CSV_OUTPUT_PATH": str(self.workdir / "output" / stamp),
                # The daily job's spool and CSV folders, one spool folder per system database
                # (its replay states are there): never the project's own spool/ (issue 14).
                "TARGET_CSV_REPLAY_OUTPUT_PATH": str(self.workdir / "output"),
                "STRAVA_SPOOL_DIR": str(self.workdir / "spool" / database),
                "STRAVA_RUN_STAMP": stamp,
                "STRAVA_TALLY_DIR": str(self.workdir / "tally"),
            }
        )
        return env

    def meltano(
        self, name: str, *args: str, database: str, schema: str, project: Path = PROJECT_ROOT
    ) -> Measured:
        measured = run_measured(
            [str(BIN / "meltano"), *args],
            env=self.meltano_env(database, schema),
            cwd=project,
            log=self.workdir / f"meltano-{name}.log",
            timeout=self.args.timeout,
        )
        if not measured.ok:
            self.fail(f"meltano {' '.join(args)} exited {measured.returncode}")
        return measured

    def schema(self, name: str) -> str:
        schema = f"bench_{self.size}_{name}"
        with connect(self.postgres_url) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return schema

    def end_to_end(self) -> None:
        """First syncs through Meltano: CSV, Postgres, Postgres with use_copy."""
        result = self.result
        main = self.schema("main")
        self.sim.clear_requests()
        csv_run = self.meltano(
            "csv", "run", "tap-strava", "target-csv", database="job", schema=main
        )
        csv_requests = self.sim.requests()
        self.sim.clear_requests()
        pg = self.meltano("pg", "run", "tap-strava", "target-postgres", database="job", schema=main)
        both = csv_requests + self.sim.requests()
        min_list = result.activities // PAGE + 1
        result.requests.append(
            count_requests("meltano run: first sync, CSV and Postgres blocks", both, min_list)
        )
        result.loads["meltano run -> target-postgres"] = pg.seconds if pg.ok else None
        result.loads["meltano run -> target-csv"] = csv_run.seconds if csv_run.ok else None
        for role, peak in pg.peaks_mb.items():
            result.memory[f"{role} (meltano run, postgres)"] = peak
        for role, peak in csv_run.peaks_mb.items():
            if role != "tap-strava":
                result.memory[f"{role} (meltano run, csv)"] = peak
        self.log(f"meltano run: csv {csv_run.seconds:.1f}s, postgres {pg.seconds:.1f}s")
        self.main_schema = main
        for loader, variants in LOADER_VARIANTS.items():
            name = next(reversed(variants))  # the proposed one: the last
            project = variant_project(self.workdir, name, loader, variants[name])
            schema = self.schema(name.replace("+", "_"))
            run = self.meltano(
                f"{loader}-{name}",
                "run",
                "tap-strava",
                loader,
                database=f"{loader}-{name}",
                schema=schema,
                project=project,
            )
            result.loads[f"meltano run -> {loader} ({name})"] = run.seconds if run.ok else None
            for role, peak in run.peaks_mb.items():
                if role == loader:
                    result.memory[f"{role} (meltano run, {name})"] = peak
            self.log(f"meltano run, {loader} {name}: {run.seconds:.1f}s")

    def job(self) -> None:
        """``strava-daily`` (one extraction into the spool, then CSV and Postgres from it):
        its first run (its state id is the spool's, not the single blocks'), nothing new,
        then new uploads. Fixed calls are once a UTC day: the blocks above had them."""
        min_list = self.result.activities // PAGE + 1
        for label, minimum in (("first sync", min_list), ("nothing new", 2)):
            self.sim.clear_requests()
            name = f"job-{label.replace(' ', '-')}"
            self.meltano(name, "run", "strava-daily", database="job", schema=self.main_schema)
            self.result.requests.append(
                count_requests(f"strava-daily: {label}", self.sim.requests(), minimum)
            )
        self.sim.upload(NEW_UPLOADS)
        self.incremental(f"{NEW_UPLOADS} new", self.state2)
        self.sim.clear_requests()
        self.meltano("job-new", "run", "strava-daily", database="job", schema=self.main_schema)
        self.result.requests.append(
            count_requests(f"strava-daily: {NEW_UPLOADS} new", self.sim.requests(), 2)
        )

    # -- loaders fed from the file, and the COPY floor -----------------------------------
    def from_file(self) -> None:
        """Each loader alone, fed the tap's first-sync output; rows checked afterwards."""
        result = self.result
        for loader, variants in LOADER_VARIANTS.items():
            default: dict[str, JSONDict] = {"default": {}}
            for name, settings in {**default, **variants}.items():
                label = f"{loader} from file" + ("" if name == "default" else f" ({name})")
                seconds, peak = self.load_file(loader, name, settings)
                result.loads[label] = seconds
                result.memory[label] = peak
                self.log(f"{label}: {_secs(seconds)}s")
        result.loads["COPY floor (activities)"] = self.copy_floor()

    def load_file(self, loader: str, name: str, settings: JSONDict) -> tuple[float | None, float]:
        """Run ``loader`` (its own executable, Meltano's config) on the first-sync file."""
        schema = self.schema(f"file_{name}".replace("+", "_"))
        folder = self.workdir / f"{loader}-{name}"
        config: JSONDict = (
            {
                "sqlalchemy_url": self.postgres_url,
                "default_target_schema": schema,
                "add_record_metadata": True,
            }
            if loader == "target-postgres"
            else {
                "output_path": str(folder),
                "file_naming_scheme": "{stream_name}-{timestamp}.csv",
                "timestamp_format": "%Y%m%dT%H%M%SZ",
                "flattening_enabled": True,
                "flattening_max_depth": 1,
            }
        )
        config_file = self.workdir / f"{loader}-{name}.json"
        config_file.write_text(json.dumps({**config, **settings}))
        run = run_measured(
            [str(_plugin_bin("loaders", loader)), "--config", str(config_file)],
            env=dict(os.environ),
            log=self.workdir / f"{loader}-{name}.log",
            stdin=self.first_output,
            stdout=self.workdir / f"{loader}-{name}.out",
            timeout=self.args.timeout,
        )
        if not run.ok:
            self.fail(f"{loader} ({name}) from file exited {run.returncode}: {run.tail(600)}")
            return None, run.maxrss_mb
        if loader == "target-postgres":
            with connect(self.postgres_url) as conn:
                row = conn.execute(f'SELECT count(*) FROM "{schema}".activities').fetchone()
            rows = int(row[0]) if row else 0
        else:
            rows = sum(_csv_rows(path) for path in folder.glob("activities-*.csv"))
        if rows != self.result.activities:
            self.fail(f"{loader} ({name}) loaded {rows} activities of {self.result.activities}")
        return run.seconds, run.maxrss_mb

    def copy_floor(self) -> float:
        """Parse the file's activities and COPY them into an empty table of the same columns."""
        floor = self.schema("floor")
        with connect(self.postgres_url) as conn:
            conn.execute(f'CREATE SCHEMA "{floor}"')
            conn.execute(
                f'CREATE TABLE "{floor}".activities (LIKE "{self.main_schema}".activities)'
            )
            typed = conn.execute(
                "SELECT column_name, udt_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'activities' "
                "AND column_name NOT LIKE '\\_sdc\\_%%' ORDER BY ordinal_position",
                (floor,),
            ).fetchall()
        columns = [str(name) for name, _ in typed]
        arrays = {str(name) for name, udt in typed if str(udt).startswith("_")}
        started = time.perf_counter()
        with connect(self.postgres_url) as conn, conn.cursor() as cur:
            names = ", ".join(f'"{c}"' for c in columns)
            copy_sql = f'COPY "{floor}".activities ({names}) FROM STDIN'
            with (
                self.first_output.open(encoding="utf-8") as handle,
                cur.copy(copy_sql) as copy,  # type: ignore[arg-type]
            ):
                for line in handle:
                    if not line.startswith('{"type":"RECORD","stream":"activities"'):
                        continue
                    record = json.loads(line)["record"]
                    copy.write_row([_copy_value(record.get(c), c in arrays) for c in columns])
        seconds = time.perf_counter() - started
        self.log(f"COPY floor: {seconds:.2f}s")
        return seconds

    # -- XML (issue 18) -----------------------------------------------------------------
    def xml(self) -> None:
        """target-xml end to end (``meltano run``) and alone on the first-sync file.

        Its peak memory must not grow with the stream (a RecordSink writing each record
        as it comes): the goal is 10,000 activities within 1.5x of 1,000.
        """
        result = self.result
        if not _plugin_bin("loaders", "target-xml").exists():
            self.log("installing target-xml (meltano install target-xml)")
            install = run_measured(
                [str(BIN / "meltano"), "install", "target-xml"],
                env=dict(os.environ),
                log=self.workdir / "meltano-install-xml.log",
            )
            if not install.ok:
                self.fail(f"meltano install target-xml exited {install.returncode}")
                return
        folder = self.workdir / "xml-run"
        env = self.meltano_env("xml", "unused")
        env["TARGET_XML_OUTPUT_PATH"] = str(folder)
        run = run_measured(
            [str(BIN / "meltano"), "run", "tap-strava", "target-xml"],
            env=env,
            log=self.workdir / "meltano-xml.log",
            timeout=self.args.timeout,
        )
        if not run.ok:
            self.fail(f"meltano run tap-strava target-xml exited {run.returncode}")
        result.loads["meltano run -> target-xml"] = run.seconds if run.ok else None
        if "target-xml" in run.peaks_mb:
            result.memory["target-xml (meltano run)"] = run.peaks_mb["target-xml"]
        self._check_xml(folder, "meltano run")
        alone_folder = self.workdir / "target-xml-default"
        config_file = self.workdir / "target-xml.json"
        # meltano.yml's settings (validate_records off), so that the two rows compare.
        config = {"output_path": str(alone_folder), "validate_records": False}
        config_file.write_text(json.dumps(config))
        alone = run_measured(
            [str(_plugin_bin("loaders", "target-xml")), "--config", str(config_file)],
            env=dict(os.environ),
            log=self.workdir / "target-xml-default.log",
            stdin=self.first_output,
            stdout=self.workdir / "target-xml-default.out",
            timeout=self.args.timeout,
        )
        if not alone.ok:
            self.fail(f"target-xml from file exited {alone.returncode}: {alone.tail(600)}")
        result.loads["target-xml from file"] = alone.seconds if alone.ok else None
        # VmHWM, not wait4's maxrss: the forked child counts the benchmark's own pages
        # until exec (about 65 MB at 100,000 activities), which hides a flat loader.
        result.memory["target-xml from file"] = alone.peaks_mb.get("target-xml", alone.maxrss_mb)
        self._check_xml(alone_folder, "from file")
        self.log(f"target-xml: meltano run {run.seconds:.1f}s, from file {alone.seconds:.1f}s")

    def _check_xml(self, folder: Path, label: str) -> None:
        """Every activity in the run's one finished activities file (records start lines)."""
        files = list(folder.glob("activities-*.xml"))
        if len(files) != 1 or list(folder.glob("*.part")):
            self.fail(f"target-xml ({label}): {len(files)} activities files, or a .part left")
            return
        with files[0].open("rb") as handle:
            rows = sum(1 for line in handle if line.startswith(b"<record "))
        if rows != self.result.activities:
            self.fail(f"target-xml ({label}) wrote {rows} activities of {self.result.activities}")

    # -- all of it ------------------------------------------------------------------------
    def run(self) -> SizeResult:
        self.log("starting the simulator")
        self.sim = Simulator(self.size, self.args.seed, self.workdir)
        self.result.sim_startup = self.sim.startup_seconds
        try:
            self.first_sync()
            if self.result.failures:
                return self.result
            if self.args.xml_only:
                self.xml()
                return self.result
            self.throughput()
            self.startup()
            if self.args.profile:
                self.profile()
            if self.args.throughput_only:
                return self.result
            self.state2 = self.incremental("nothing new", self.state1)
            if not self.args.no_meltano:
                self.end_to_end()
                self.from_file()
                self.xml()
                self.job()
            else:
                self.sim.upload(NEW_UPLOADS)
                self.incremental(f"{NEW_UPLOADS} new", self.state2)
        finally:
            self.sim.stop()
        return self.result


# -- issue 14: requests against Strava's minimum (the in-process simulator's log) -------

#: First-sync sizes of issue 14's report (447: the account the issue measured).
REQUEST_SIZES = (447, 2000, 10000)
#: The quota-limited first sync of the issue: 2,010 activities under 4 reads per window.
QUOTA_ACTIVITIES = 2010
QUOTA_READS = 4
QUOTA_RUN_BAR = 14
#: Runs after which the quota scenario gives up (the bar is 14: this only ends a loop).
QUOTA_RUN_LIMIT = 40
#: The daily job's accounts: one athlete of the issue's 447 activities, then the standard
#: tier's ten athletes (each of 447 activities) sharing one app's quota.
DAILY_ACTIVITIES = 447
ATHLETES = 10
#: Strava's real short window: the ten athletes' job must fit it without a wait.
STRAVA_WINDOW_READS = 100


def _pages(activities: int) -> int:
    """Pages of 200 that hold ``activities`` (the ⌈N/200⌉ of the issue)."""
    return -(-activities // PAGE)


@dataclasses.dataclass
class Figure:
    """One figure of issue 14's report: measured, Strava's minimum, the issue's bar."""

    name: str
    measured: int
    minimum: int | None
    bar: int | None
    detail: str = ""
    #: A failed side condition (a 429, a wait, a lost activity) fails the bar too.
    ok: bool = True

    @property
    def met(self) -> bool | None:
        """Against the bar; without a bar only a failed side condition gives a verdict."""
        if self.bar is None:
            return None if self.ok else False
        return self.ok and self.measured <= self.bar


@dataclasses.dataclass
class QuotaRun:
    """One run of the quota-limited first sync: reads spent, activities new to the table."""

    reads: int
    list_pages: int
    new: int
    emitted: int


@dataclasses.dataclass
class JobRun:
    """One ``meltano run strava-daily``: the simulator's log of it, and whether it ran clean."""

    records: list[RequestRecord]
    ok: bool


@dataclasses.dataclass
class RequestsResult:
    """Everything the requests section measured, in report order."""

    first_syncs: list[Figure] = dataclasses.field(default_factory=list)
    daily: list[Figure] = dataclasses.field(default_factory=list)
    quota: list[Figure] = dataclasses.field(default_factory=list)
    quota_runs: list[QuotaRun] = dataclasses.field(default_factory=list)
    #: The ten athletes' first sync, one ``strava-daily`` run per window: (reads, 429s).
    ten_first_sync: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)


class _Capture(io.TextIOBase):
    """The in-process tap's stdout, kept small: activity ids and the last STATE only.

    A 10,000-activity first sync writes about 25 MB of Singer lines; only the ids (is the
    table exact?) and the final state (the next run's input) are needed.
    """

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.state: JSONDict = {}
        #: RECORD messages per stream (the streams other than activities are small).
        self.records: collections.Counter[str] = collections.Counter()
        self._partial = ""

    def writable(self) -> bool:
        """``redirect_stdout`` targets must say so (print checks it on some paths)."""
        return True

    def write(self, text: str) -> int:
        """Split into whole lines (the SDK may write a message in pieces) and keep ours."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            head = line[:60].replace(" ", "")
            if head.startswith('{"type":"RECORD","stream":"activities"'):
                self.ids.append(int(json.loads(line)["record"]["id"]))
                self.records["activities"] += 1
            elif head.startswith('{"type":"RECORD"'):
                self.records[str(json.loads(line)["stream"])] += 1
            elif head.startswith('{"type":"STATE"'):
                self.state = json.loads(line)["value"]
        return len(text)


def run_tap_in_process(
    config: JSONDict, state: JSONDict, streams: tuple[str, ...] | None = None
) -> _Capture:
    """One whole sync of the tap in this process, as ``tap-strava --config --state`` runs.

    In-process so that the first syncs cost seconds, not a process start each (the figure
    is the simulator's request log, which does not depend on how the tap is started).
    """
    from tap_strava.tap import TapStrava

    capture = _Capture()
    logging.disable(logging.WARNING)  # the SDK's per-request metrics, thousands of lines
    try:
        tap = TapStrava(config=config, state=state, validate_config=True)
        if streams is not None:
            for stream in tap.streams.values():
                stream.selected = stream.name in streams
        with contextlib.redirect_stdout(capture):
            tap.sync_all()
    finally:
        logging.disable(logging.NOTSET)
    return capture


def _tap_config(sim: StravaSimulator, folder: Path, **overrides: Any) -> JSONDict:
    """The tap's config for ``sim``, with a token store (and facts file) of its own per
    scenario: a shared one would carry one scenario's "fetched today" into the next."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "refresh_token": sim.refresh_token,
        "api_url": sim.api_url,
        "token_url": sim.token_url,
        "token_store_path": str(folder / "tokens.json"),
        "max_rate_limit_wait_seconds": 5,
        **overrides,
    }


def _api_reads(records: list[RequestRecord]) -> list[RequestRecord]:
    """What Strava's read quota counts: every API GET (token calls are not counted)."""
    return [r for r in records if r.path.startswith("/api/v3/") and r.method == "GET"]


def _list_pages(records: list[RequestRecord]) -> list[RequestRecord]:
    """The activity-list reads: the figure the issue's first-sync bar counts."""
    return [r for r in _api_reads(records) if r.path.rstrip("/").endswith("/athlete/activities")]


def _extractions(records: list[RequestRecord]) -> int:
    """How many times Strava's activity list was read from its start (one per athlete per
    extraction): the first page of a run carries no ``before`` cursor."""
    return sum(
        1 for r in _list_pages(records) if r.query.get("page") == "1" and "before" not in r.query
    )


def _unlimited_simulator(seed: int, activities: int) -> StravaSimulator:
    """A simulator whose quota never stops a first sync: the figure is the requests
    themselves, not how a quota spreads them over runs (that is the 2,010 scenario)."""
    return StravaSimulator(
        seed=seed,
        activity_count=activities,
        read_limit_15min=UNLIMITED,
        read_limit_daily=UNLIMITED,
        overall_limit_15min=UNLIMITED,
        overall_limit_daily=UNLIMITED,
    )


def _forget_quota(sim: StravaSimulator, config: JSONDict) -> None:
    """The next quota window, as the clock would bring it: the simulator's counts reset and
    the tap's saved reading forgotten (else a run rightly refuses to ask a spent quota)."""
    sim.reset_rate_limits()
    facts = Path(config["token_store_path"]).with_name("facts.json")
    if facts.exists():
        document = json.loads(facts.read_text(encoding="utf-8"))
        document.pop("quota", None)
        facts.write_text(json.dumps(document), encoding="utf-8")


def _next_utc_day(facts: Path) -> None:
    """Make the cached profile and stats yesterday's answers, as the next UTC day would
    (they are read at most once per day; gear ages by a week)."""
    document = json.loads(facts.read_text(encoding="utf-8"))
    for entry in document.get("athletes", {}).values():
        for kind in ("profile", "stats"):
            if isinstance(entry.get(kind), dict):
                entry[kind]["fetched_at"] -= 86400
    document.pop("quota", None)
    facts.write_text(json.dumps(document), encoding="utf-8")


class RequestsBench:
    """Issue 14's report: requests per first sync, per daily job, runs under a tiny quota.

    Every figure is counted from the simulator's own request log (``sim.requests``), beside
    Strava's minimum and the issue's bar. The simulator runs in this process; first syncs
    run the tap in-process, the daily-job figures are real ``meltano run strava-daily``
    runs (spool, then CSV and Postgres from it) against that simulator.
    """

    def __init__(self, args: argparse.Namespace, workdir: Path, postgres_url: str | None) -> None:
        self.args = args
        self.workdir = workdir
        self.postgres_url = postgres_url
        self.result = RequestsResult()

    def log(self, message: str) -> None:
        stamp = datetime.datetime.now().strftime("%H:%M:%S")
        print(f"bench [{stamp}] requests: {message}", file=sys.stderr, flush=True)

    def fail(self, message: str) -> None:
        self.log(f"FAILED: {message}")
        self.result.failures.append(message)

    def run(self) -> RequestsResult:
        """Every scenario; the daily-job ones only with a Postgres (not ``--no-meltano``)."""
        for size in REQUEST_SIZES:
            self.first_sync(size)
        self.second_pipeline()
        self.quota_limited()
        if self.postgres_url is not None:
            self.daily_one_athlete()
            self.daily_ten_athletes()
        return self.result

    # -- first syncs, in-process ----------------------------------------------------------
    def first_sync(self, size: int) -> None:
        """A first sync of every default stream; the list pages against ⌈N/200⌉ + 1."""
        with _unlimited_simulator(1, size) as sim:
            config = _tap_config(sim, self.workdir / f"first-{size}")
            sim.clear_requests()
            out = run_tap_in_process(config, {})
            records = sim.requests
            pages = _list_pages(records)
            fetched = [i for r in pages for i in (r.ids or ())]
            reread = len(fetched) - len(set(fetched))
            exact = sorted(out.ids) == sorted(a["id"] for a in sim.activities)
        if not exact:
            self.fail(f"first sync of {size:,}: the emitted activities are not the account's")
        reads = len(_api_reads(records))
        self.result.first_syncs.append(
            Figure(
                f"first sync, {size:,} activities: list requests",
                len(pages),
                _pages(size) + 1,
                _pages(size) + 2,
                f"{reads} reads in all ({reads - len(pages)} profile, stats, gear); "
                f"{reread} activities read twice (the cursor's second)",
                ok=exact,
            )
        )
        self.log(f"first sync {size:,}: {len(pages)} list requests, {reads} reads")

    # -- a second pipeline of the same token store (issue 23) ------------------------------
    def second_pipeline(self) -> None:
        """Two pipelines, one token store, each its own state: the second one's first run.

        It gets athlete, stats and gear from the shared cache of Strava's answers: no
        profile, stats or gear read (its own activities are its own first sync).
        """
        size = REQUEST_SIZES[0]
        with _unlimited_simulator(1, size) as sim:
            config = _tap_config(sim, self.workdir / "two-pipelines")
            run_tap_in_process(config, {})
            sim.clear_requests()
            out = run_tap_in_process(config, {})  # another pipeline: a fresh state
            records = sim.requests
        pages = len(_list_pages(records))
        fixed = len(_api_reads(records)) - pages
        got = {name: out.records[name] for name in ("athlete", "athlete_stats", "gear")}
        self.result.first_syncs.append(
            Figure(
                f"second pipeline of one token store, {size} activities: profile, stats, "
                "gear reads",
                fixed,
                0,
                0,
                "its first run emitted "
                + ", ".join(f"{name} {n}" for name, n in got.items())
                + f" from the shared cache; {pages} list requests (its own first sync)",
                ok=got["athlete"] == 1 and got["athlete_stats"] == 1 and got["gear"] > 0,
            )
        )
        self.log(f"second pipeline: {fixed} fixed reads, {got}")

    # -- a 2,010-activity history under 4 reads per window --------------------------------
    def quota_limited(self) -> None:
        """Runs until the bookmark is set, each with a fresh window of 4 reads."""
        sim = StravaSimulator(
            seed=14, activity_count=QUOTA_ACTIVITIES, read_limit_15min=QUOTA_READS
        )
        with sim:
            config = _tap_config(sim, self.workdir / "quota", max_rate_limit_wait_seconds=0)
            state: JSONDict = {}
            seen: set[int] = set()
            emitted = 0
            progress = True
            while len(self.result.quota_runs) < QUOTA_RUN_LIMIT:
                sim.clear_requests()
                out = run_tap_in_process(config, state, ("activities",))
                state = out.state
                new = set(out.ids) - seen
                seen |= new
                emitted += len(out.ids)
                records = sim.requests
                self.result.quota_runs.append(
                    QuotaRun(
                        len(_api_reads(records)), len(_list_pages(records)), len(new), len(out.ids)
                    )
                )
                statuses = [r.status for r in records]
                if 429 in statuses:
                    self.fail(f"quota run {len(self.result.quota_runs)} provoked a 429")
                done = any(
                    "replication_key_value" in part
                    for part in state.get("bookmarks", {})
                    .get("activities", {})
                    .get("partitions", [])
                )
                if done:
                    break
                progress = progress and bool(new)
                _forget_quota(sim, config)
            source = {a["id"] for a in sim.activities}
        runs = len(self.result.quota_runs)
        exact = seen == source
        no_429 = not any("429" in f for f in self.result.failures)
        minimum = -(-(_pages(QUOTA_ACTIVITIES) + 1) // QUOTA_READS)
        self.result.quota.append(
            Figure(
                f"{QUOTA_ACTIVITIES:,}-activity first sync, {QUOTA_READS} reads per window: runs",
                runs,
                minimum,
                QUOTA_RUN_BAR,
                f"{sum(r.reads for r in self.result.quota_runs)} reads in all; every run made "
                f"progress: {'yes' if progress else 'NO'}; 429s: {'none' if no_429 else 'SOME'}; "
                f"table exact: {'yes' if exact else 'NO'} ({len(seen):,} of {len(source):,}, "
                f"{emitted - len(seen)} emitted twice, upserted)",
                ok=exact and progress and no_429,
            )
        )
        if not exact:
            self.fail(f"quota-limited first sync: {len(seen)} of {len(source)} activities")
        self.log(f"{QUOTA_ACTIVITIES:,} under {QUOTA_READS} reads/window: {runs} runs")

    # -- the daily job, real meltano runs -------------------------------------------------
    def authorize(self, sim: StravaSimulator) -> None:
        """The refresh tokens as ``.env`` holds them: taken once, then rotated by the tap in
        its token store (a token configured anew would take over from the stored chain)."""
        self.refresh_token = str(sim.refresh_token)
        self.athletes = [
            {"name": f"athlete{n}", "refresh_token": str(a.refresh_token)}
            for n, a in enumerate(sim.athletes[1:], start=2)
        ]

    def job_env(self, sim: StravaSimulator, folder: Path, schema: str) -> dict[str, str]:
        """The environment of ``meltano run strava-daily`` for one scenario's folder: its own
        system database, spool, CSV folders, token store and schema (never the project's)."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TAP_STRAVA_", "TARGET_", "MELTANO_", "STRAVA_"))
        }
        env.update(
            {
                "MELTANO_DATABASE_URI": f"sqlite:///{folder / 'meltano.db'}",
                "MELTANO_SYS_DIR_ROOT": str(private_meltano_dir(folder)),
                "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
                "TAP_STRAVA_CLIENT_ID": sim.client_id,
                "TAP_STRAVA_CLIENT_SECRET": sim.client_secret,
                "TAP_STRAVA_REFRESH_TOKEN": self.refresh_token,
                "TAP_STRAVA_API_URL": sim.api_url,
                "TAP_STRAVA_TOKEN_URL": sim.token_url,
                "TAP_STRAVA_TOKEN_STORE_PATH": str(folder / "tokens.json"),
                # A wait would be a stop (and show as one): the bar is "no wait".
                "TAP_STRAVA_MAX_RATE_LIMIT_WAIT_SECONDS": "0",
                "TARGET_POSTGRES_SQLALCHEMY_URL": str(self.postgres_url),
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
                "TARGET_CSV_REPLAY_OUTPUT_PATH": str(folder / "output"),
                "STRAVA_SPOOL_DIR": str(folder / "spool"),
                "STRAVA_RUN_STAMP": datetime.datetime.now(datetime.timezone.utc).strftime(
                    "%Y%m%dT%H%M%SZ"
                ),
            }
        )
        if self.athletes:
            env["TAP_STRAVA_ATHLETES"] = json.dumps(self.athletes)
        return env

    def job(self, sim: StravaSimulator, folder: Path, schema: str, name: str) -> JobRun:
        """One ``meltano run strava-daily``; its requests from the simulator's log."""
        sim.clear_requests()
        time.sleep(1.0)  # one run stamp (and spool name) per second
        run = run_measured(
            [str(BIN / "meltano"), "run", "strava-daily"],
            env=self.job_env(sim, folder, schema),
            log=folder / f"{name.replace(' ', '-').replace(',', '')}.log",
            timeout=self.args.timeout,
        )
        ok = run.ok
        if not run.ok:
            self.fail(f"meltano run strava-daily ({name}) exited {run.returncode}: {run.tail(800)}")
        if WAIT_MARKER in run.log.read_text(errors="replace"):
            ok = False
            self.fail(f"strava-daily ({name}) waited for the quota")
        records = sim.requests
        self.log(f"strava-daily, {name}: {len(_api_reads(records))} reads, {run.seconds:.0f}s")
        return JobRun(records, ok)

    def _schema(self, name: str) -> str:
        """A fresh ``bench_requests_*`` schema: a leftover would make the first sync's
        Postgres rows look exact or not for reasons of an earlier run."""
        schema = f"bench_requests_{name}"
        with connect(str(self.postgres_url)) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        return schema

    def _check_tables(self, sim: StravaSimulator, folder: Path, schema: str, label: str) -> bool:
        """Postgres and the CSV folders hold every activity of every athlete, once."""
        source = {a["id"] for athlete in sim.athletes for a in athlete.activities}
        with connect(str(self.postgres_url)) as conn:
            rows = conn.execute(f'SELECT id FROM "{schema}".activities').fetchall()
        in_pg = [int(row[0]) for row in rows]
        in_csv: set[int] = set()
        for path in (folder / "output").glob("*/activities-*.csv"):
            with path.open(newline="", encoding="utf-8") as handle:
                in_csv.update(int(row["id"]) for row in csv.DictReader(handle))
        ok = sorted(in_pg) == sorted(source) and in_csv == source
        if not ok:
            self.fail(
                f"{label}: Postgres {len(in_pg)} rows, CSV {len(in_csv)} ids, "
                f"Strava {len(source)} activities"
            )
        return ok

    def _daily(
        self, name: str, job: JobRun, athletes: int, minimum: int, bar: int | None, *, ok: bool
    ) -> None:
        """A daily-job figure in reads: Strava must have been read once for both targets
        (one list read from its start per athlete), without a 429."""
        records = job.records
        extractions = _extractions(records)
        statuses = [r.status for r in records]
        self.result.daily.append(
            Figure(
                name,
                len(_api_reads(records)),
                minimum,
                bar,
                f"{len(_list_pages(records))} list pages; Strava read "
                f"{extractions / athletes:g}x for both targets; 429s: {statuses.count(429)}",
                ok=ok and job.ok and extractions == athletes and 429 not in statuses,
            )
        )

    def daily_one_athlete(self) -> None:
        """One athlete of 447 activities: first day, next day and a later run, 10 new."""
        folder = self.workdir / "daily-1"
        folder.mkdir(parents=True, exist_ok=True)
        schema = self._schema("one")
        with StravaSimulator(seed=1, activity_count=DAILY_ACTIVITIES) as sim:
            self.authorize(sim)
            first = self.job(sim, folder, schema, "first sync")
            exact = self._check_tables(sim, folder, schema, "first sync")
            pages = _list_pages(first.records)
            self.result.daily.append(
                Figure(
                    f"daily job, first sync of {DAILY_ACTIVITIES}: list requests",
                    len(pages),
                    _pages(DAILY_ACTIVITIES) + 1,
                    _pages(DAILY_ACTIVITIES) + 2,
                    f"{len(_api_reads(first.records))} reads in all; Strava read "
                    f"{_extractions(first.records)}x for both targets; tables exact: "
                    f"{'yes' if exact else 'NO'}",
                    ok=exact and first.ok and _extractions(first.records) == 1,
                )
            )
            _next_utc_day(folder / "facts.json")
            nothing = self.job(sim, folder, schema, "nothing new, first run of the day")
            self._daily("daily job, nothing new, first run of the day", nothing, 1, 4, 4, ok=True)
            later = self.job(sim, folder, schema, "nothing new, later the same day")
            self._daily("daily job, nothing new, later the same day", later, 1, 2, 4, ok=True)
            for _ in range(NEW_UPLOADS):
                sim.add_activity()
            new = self.job(sim, folder, schema, f"{NEW_UPLOADS} new")
            exact = self._check_tables(sim, folder, schema, f"{NEW_UPLOADS} new")
            self._daily(
                f"daily job, {NEW_UPLOADS} new uploads, later the same day",
                new,
                1,
                2,
                None,
                ok=exact,
            )
        self._drop(schema)

    def daily_ten_athletes(self) -> None:
        """Ten athletes of one app (``athletes``), Strava's real 100 reads per 15 minutes."""
        folder = self.workdir / "daily-10"
        folder.mkdir(parents=True, exist_ok=True)
        schema = self._schema("ten")
        with StravaSimulator(seed=1, activity_count=DAILY_ACTIVITIES) as sim:
            for n in range(1, ATHLETES):
                sim.add_athlete(seed=100 + n, activity_count=DAILY_ACTIVITIES)
            self.authorize(sim)
            # Ten first syncs need more than one window of 100 reads: the job stops at the
            # quota and goes on in the next window (the window reset here, not waited for).
            source = {a["id"] for athlete in sim.athletes for a in athlete.activities}
            while len(self.result.ten_first_sync) < 5:
                run = self.job(
                    sim,
                    folder,
                    schema,
                    f"ten athletes, first sync run {len(self.result.ten_first_sync) + 1}",
                )
                statuses = [r.status for r in run.records]
                self.result.ten_first_sync.append(
                    (len(_api_reads(run.records)), statuses.count(429))
                )
                if self._first_sync_done(folder):
                    break
                _forget_quota(sim, {"token_store_path": str(folder / "tokens.json")})
            self.log(
                f"ten athletes' first sync: {len(self.result.ten_first_sync)} runs of strava-daily"
            )
            exact = self._check_tables(sim, folder, schema, "ten athletes, first sync")
            if len(source) != ATHLETES * DAILY_ACTIVITIES:
                self.fail("ten athletes: the simulator's accounts are not of 447 each")
            _next_utc_day(folder / "facts.json")
            sim.reset_rate_limits()
            nothing = self.job(sim, folder, schema, "ten athletes, nothing new, first of the day")
            reads = len(_api_reads(nothing.records))
            self._daily(
                f"daily job, {ATHLETES} athletes, nothing new, first run of the day",
                nothing,
                ATHLETES,
                4 * ATHLETES,
                4 * ATHLETES,
                ok=exact,
            )
            self.result.daily.append(
                Figure(
                    f"{ATHLETES} athletes' daily job in one 15-minute window of "
                    f"{STRAVA_WINDOW_READS} reads, no wait",
                    reads,
                    4 * ATHLETES,
                    STRAVA_WINDOW_READS,
                    "Strava's real limits (100 per 15 min, 1,000 a day); a wait would have "
                    "been a quota stop (max_rate_limit_wait_seconds 0); quota stops: "
                    f"{self._quota_stops(folder)}",
                    ok=nothing.ok and self._quota_stops(folder) == 0,
                )
            )
            later = self.job(sim, folder, schema, "ten athletes, nothing new, later")
            self._daily(
                f"daily job, {ATHLETES} athletes, nothing new, later the same day",
                later,
                ATHLETES,
                2 * ATHLETES,
                4 * ATHLETES,
                ok=True,
            )
        self._drop(schema)

    def _spool_state(self, folder: Path) -> JSONDict:
        """The tap's state of the daily job (the spool block's), as Meltano keeps it."""
        env = self.job_env_for_state(folder)
        proc = subprocess.run(
            [str(BIN / "meltano"), "state", "get", "dev:tap-strava-to-target-strava-spool"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            return {}
        state: JSONDict = json.loads(proc.stdout).get("singer_state", {})
        # An earlier spool target saved the whole STATE message: its value is the state.
        return dict(state.get("value", state)) if state.get("type") == "STATE" else dict(state)

    def job_env_for_state(self, folder: Path) -> dict[str, str]:
        """Enough of the scenario's environment for ``meltano state get``: its own system
        database, never the project's (the bench must not read or touch real state)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MELTANO_")}
        env["MELTANO_DATABASE_URI"] = f"sqlite:///{folder / 'meltano.db'}"
        env["MELTANO_SYS_DIR_ROOT"] = str(private_meltano_dir(folder))
        env["MELTANO_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        return env

    def _partitions(self, folder: Path) -> list[JSONDict]:
        """The activities stream's per-athlete partitions of the spool block's state."""
        state = self._spool_state(folder)
        return list(state.get("bookmarks", {}).get("activities", {}).get("partitions", []))

    def _first_sync_done(self, folder: Path) -> bool:
        """Every athlete's history read (a bookmark each) and no stream cut short by the
        quota: the profile, stats and gear of a stopped run come in the next one, and
        would otherwise be counted as the next day's."""
        state = self._spool_state(folder)
        partitions = self._partitions(folder)
        stopped = [
            part
            for stream in state.get("bookmarks", {}).values()
            for part in [stream, *stream.get("partitions", [])]
            if part.get("quota_stop")
        ]
        booked = sum(1 for p in partitions if "replication_key_value" in p)
        return booked == ATHLETES and not stopped

    def _quota_stops(self, folder: Path) -> int:
        """Streams or athletes the last run left cut short by the quota (a wait is one)."""
        state = self._spool_state(folder)
        return sum(
            1
            for stream in state.get("bookmarks", {}).values()
            for part in [stream, *stream.get("partitions", [])]
            if part.get("quota_stop")
        )

    def _drop(self, schema: str) -> None:
        """Leave the bench database as found (the bench runs beside the tests)."""
        with connect(str(self.postgres_url)) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def requests_report(result: RequestsResult) -> str:
    """Issue 14's table: each figure beside Strava's minimum and the issue's bar."""
    lines = [
        "### Requests against Strava's minimum (issue 14, counted from the simulator's log)\n",
        "| figure | measured | minimum | bar | met | notes |",
        "|---|---:|---:|---:|---|---|",
    ]
    for figure in [*result.first_syncs, *result.quota, *result.daily]:
        met = figure.met
        verdict = "—" if met is None else ("met" if met else "NOT met")
        bar = "—" if figure.bar is None else f"≤ {figure.bar}"
        lines.append(
            f"| {figure.name} | {figure.measured} | {_opt(figure.minimum)} | {bar} "
            f"| {verdict} | {figure.detail} |"
        )
    if result.quota_runs:
        lines += [
            f"\n#### The {QUOTA_ACTIVITIES:,}-activity first sync under {QUOTA_READS} reads "
            "per window, run by run\n",
            "| run | reads | list pages | activities new to the table | emitted |",
            "|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {n} | {run.reads} | {run.list_pages} | {run.new} | {run.emitted} |"
            for n, run in enumerate(result.quota_runs, start=1)
        ]
    if result.ten_first_sync:
        reads = ", ".join(str(r) for r, _ in result.ten_first_sync)
        provoked = sum(n for _, n in result.ten_first_sync)
        lines.append(
            f"\nThe {ATHLETES} athletes' first sync ({ATHLETES} x {DAILY_ACTIVITIES} activities, "
            f"{STRAVA_WINDOW_READS} reads per window): {len(result.ten_first_sync)} run(s) of "
            f"strava-daily, one per window, reads {reads}; 429s: {provoked}."
        )
    if result.failures:
        lines.append("\n#### Failures\n")
        lines += [f"- {failure}" for failure in result.failures]
    return "\n".join(lines) + "\n"


# -- report -----------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem = next(
        (
            int(line.split()[1]) / 1024 / 1024
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0.0,
    )

    def git(*args: str) -> str:
        command = ["git", "-C", str(PROJECT_ROOT), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    versions = []
    for dist in ("singer-sdk", "meltano"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{dist} {version(dist)}")
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, {', '.join(versions)}, "
        f"meltanolabs-target-postgres 0.8.1, commit {commit or '?'}"
        f"{' (with uncommitted changes)' if dirty else ''}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


#: Issue 27: the tap alone at most this many times the bare loop's seconds at 10,000.
BARE_LOOP_BAR = 2.0
#: Where a first sync's time goes: (group, file suffix, function, own or cumulative time).
#: The functions do not call one another, so their times add up; the rest is the SDK's
#: per-record path, the tap's streams and windows, and the interpreter.
PROFILE_GROUPS = (
    ("socket reads (waiting for the simulator)", "~", "<method 'recv_into'", "own"),
    ("decoding answers (JSON)", "decoder.py", "raw_decode", "own"),
    ("imports", "<frozen importlib._bootstrap>", "_find_and_load", "cumulative"),
    (
        "RECORD lines (BackgroundWriter.format_message)",
        "message_writer.py",
        "format_message",
        "cumulative",
    ),
    ("digest (record_digest)", "digest.py", "record_digest", "cumulative"),
    ("conforming (conform_to_schema)", "conform.py", "conform_to_schema", "cumulative"),
)


def profile_table(stats: Any, seconds: float) -> str:
    """The profile's time by group, then its 15 costliest functions by own time."""
    entries = stats.stats  # {(file, line, function): (calls, primitive, own, cumulative, _)}
    total = float(stats.total_tt)
    groups: dict[str, float] = {}
    for label, suffix, function, kind in PROFILE_GROUPS:
        groups[label] = sum(
            entry[2] if kind == "own" else entry[3]
            for (filename, _, name), entry in entries.items()
            if filename.endswith(suffix) and (name == function or name.startswith(f"{function} "))
        )
    groups["the rest: the SDK's per-record path, streams, interpreter"] = total - sum(
        groups.values()
    )
    lines = [
        f"Under the profiler: {seconds:.2f} s wall, {total:.2f} s profiled.\n",
        "| where | s | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {group} | {spent:.2f} | {spent / total:.0%} |" for group, spent in groups.items()]
    lines += ["", "| function | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
    top = sorted(entries.items(), key=lambda item: -item[1][2])[:15]
    for (filename, line, function), entry in top:
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
        name = f"{short}:{line}({function})" if short else function
        lines.append(f"| `{name}` | {entry[0]:,} | {entry[2]:.2f} | {entry[3]:.2f} |")
    return "\n".join(lines) + "\n"


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _rate(records: int, seconds: float | None) -> str:
    return f"{records / seconds:,.0f}" if seconds else "—"


def report(results: list[SizeResult]) -> str:
    lines: list[str] = []
    add = lines.append
    add("### API requests per sync (counted by the simulator)\n")
    add(
        "| activities | sync | API requests | list pages | min list | list - min "
        "| finished windows | empty pages | re-read activities | fixed calls | token calls |"
    )
    add("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        for req in res.requests:
            add(
                f"| {res.size:,} | {req.label} | {req.api} | {req.list_pages} | {req.min_list} "
                f"| {req.list_pages - req.min_list} | {_opt(req.windows)} | {_opt(req.empty)} "
                f"| {_opt(req.reread)} | {req.fixed} | {req.token} |"
            )
    add("\n### Tap throughput (first sync, medians)\n")
    add(
        "| activities | records | tap s | tap rec/s | bare loop s | tap / bare loop "
        "| baseline s | baseline rec/s | serve s | serve rec/s | tap/baseline | rounds |"
    )
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for res in results:
        if not res.tap_seconds:
            continue
        tap, base, serve = (
            _med(res.tap_seconds),
            _med(res.baseline_seconds),
            _med(res.serve_seconds),
        )
        add(
            f"| {res.size:,} | {res.records:,} | {tap:.2f} | {_rate(res.records, tap)} "
            f"| {_med(res.bare_seconds):.2f} | {_med(res.bare_ratios):.2f}x "
            f"| {base:.2f} | {_rate(res.records, base)} | {serve:.2f} "
            f"| {_rate(res.records, serve)} | {_med(res.ratios):.0%} | {len(res.ratios)} |"
        )
    if any(res.bare_cpu for res in results):
        add("\n### Tap against the bare loop in CPU seconds (user + system, medians)\n")
        add(
            "| activities | tap CPU s | of which start-up | bare loop CPU s | of which start-up "
            "| tap / bare loop (CPU) | the same after start-up (per record) | rounds |"
        )
        add("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for res in results:
            if res.bare_cpu:
                tap_cpu, bare_cpu = _med(res.tap_cpu), _med(res.bare_cpu)
                tap_start, bare_start = res.tap_startup_cpu or 0.0, res.bare_startup_cpu or 0.0
                per_record = (tap_cpu - tap_start) / max(bare_cpu - bare_start, 0.01)
                add(
                    f"| {res.size:,} | {tap_cpu:.2f} | {tap_start:.2f} | {bare_cpu:.2f} "
                    f"| {bare_start:.2f} | {_med(res.bare_cpu_ratios):.2f}x | {per_record:.2f}x "
                    f"| {len(res.bare_cpu_ratios)} |"
                )
    for res in results:
        if res.profile:
            add(f"\n### Where the tap's time goes ({res.size:,} activities, cProfile)\n")
            add(res.profile)
    add("\n### Loads (first sync; seconds and records/s)\n")
    add("| activities | load | seconds | records/s | vs same target from file |")
    add("|---:|---|---:|---:|---:|")
    for res in results:
        for label, seconds in res.loads.items():
            add(
                f"| {res.size:,} | {label} | {_secs(seconds)} "
                f"| {_rate(res.activities if 'COPY' in label else res.records, seconds)} "
                f"| {_vs_file(label, seconds, res.loads)} |"
            )
    add("\n### Peak memory (MB, max RSS)\n")
    keys: list[str] = []
    for res in results:
        keys += [k for k in res.memory if k not in keys]
    add("| process | " + " | ".join(f"{r.size:,}" for r in results) + " | growth (last/previous) |")
    add("|---|" + "---:|" * len(results) + "---:|")
    for key in keys:
        values = [r.memory.get(key) for r in results]
        growth = (
            f"{values[-1] / values[-2]:.2f}x"
            if len(values) > 1 and values[-1] and values[-2]
            else "—"
        )
        add(f"| {key} | " + " | ".join(_opt(v, ".0f") for v in values) + f" | {growth} |")
    add("\n### Tap state\n")
    add("| activities | STATE messages | largest STATE message (bytes) | simulator start s |")
    add("|---:|---:|---:|---:|")
    for res in results:
        add(
            f"| {res.size:,} | {res.state_messages} | {res.state_bytes_max:,} "
            f"| {res.sim_startup:.1f} |"
        )
    failures = [f"- {r.size:,}: {f}" for r in results for f in r.failures]
    if failures:
        add("\n### Failures\n")
        lines += failures
    return "\n".join(lines) + "\n"


def _opt(value: float | None, spec: str = "") -> str:
    return "—" if value is None else format(value, spec)


def _secs(seconds: float | None) -> str:
    return "failed" if seconds is None else f"{seconds:.2f}"


def _vs_file(label: str, seconds: float | None, loads: dict[str, float | None]) -> str:
    if not label.startswith("meltano run") or seconds is None:
        return ""
    target = next((n for n in ("target-csv", "target-xml") if n in label), "target-postgres")
    variant = label.split(target, 1)[1].strip()
    base = loads.get(f"{target} from file{(' ' + variant) if variant else ''}")
    return f"{seconds / base:.2f}x" if base else ""


def goals(results: list[SizeResult]) -> str:
    """One line per goal of the issue, judged on the measured figures."""
    lines = ["### Goals\n"]
    for res in results:
        first = next((r for r in res.requests if r.label == "tap: first sync"), None)
        nothing = next((r for r in res.requests if r.label == "tap: nothing new"), None)
        if first is not None:
            # Issue 14's bar: the ⌈N/200⌉ pages, the closing empty one, one more.
            allowed = -(-res.activities // PAGE) + 2
            ok = first.list_pages <= allowed
            lines.append(
                f"- {res.size:,} requests: first sync {first.list_pages} list pages, "
                f"allowed {allowed} (⌈N/200⌉ + 2): {'met' if ok else 'NOT met'}"
            )
        if nothing is not None:
            lines.append(
                f"- {res.size:,} nothing new: {nothing.list_pages} list request(s): "
                f"{'met' if nothing.list_pages <= 1 else 'NOT met'}"
            )
        if res.ratios:
            ratio = _med(res.ratios)
            lines.append(
                f"- {res.size:,} tap/baseline {ratio:.0%}: {'met' if ratio >= 0.5 else 'NOT met'}"
            )
        if res.bare_ratios:
            bare = _med(res.bare_ratios)
            cpu = _med(res.bare_cpu_ratios)
            lines.append(
                f"- {res.size:,} tap / bare loop {bare:.2f}x wall, {cpu:.2f}x CPU (issue 27: "
                f"at most 2.0x at 10,000): {'met' if bare <= BARE_LOOP_BAR else 'NOT met'} "
                f"(wall), {'met' if cpu <= BARE_LOOP_BAR else 'NOT met'} (CPU)"
            )
        e2e = res.loads.get("meltano run -> target-postgres")
        alone = res.loads.get("target-postgres from file")
        if e2e and alone:
            lines.append(
                f"- {res.size:,} end to end / from file {e2e / alone:.2f}x: "
                f"{'met' if e2e / alone <= 1.5 else 'NOT met'}"
            )
    by_size = {r.size: r for r in results}
    if 1000 in by_size and 10000 in by_size:
        for key in ("target-xml (meltano run)", "target-xml from file"):
            small, big = by_size[1000].memory.get(key), by_size[10000].memory.get(key)
            if small and big:
                verdict = "met" if big <= 1.5 * small else "NOT met"
                lines.append(f"- memory {key}: 10k/1k {big / small:.2f}x: {verdict}")
    if 10000 in by_size and 100000 in by_size:
        for key in by_size[100000].memory:
            small, big = by_size[10000].memory.get(key), by_size[100000].memory[key]
            if small:
                verdict = "met" if big <= 1.5 * small else "NOT met"
                lines.append(f"- memory {key}: 100k/10k {big / small:.2f}x: {verdict}")
    return "\n".join(lines) + "\n"


# -- main -------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres(url: str | None, workdir: Path) -> Iterator[str]:
    """The server to load into: --postgres-url, TARGET_POSTGRES_*, 127.0.0.1, or embedded."""
    chosen = url or configured_url() or DEFAULT_POSTGRES_URL
    try:
        ensure_database(chosen)
    except Exception as exc:
        if url or configured_url():
            raise
        print(f"bench: no PostgreSQL at {chosen} ({exc}); starting an embedded one")
        with postgres_server(workdir / "pg") as embedded:
            yield embedded
        return
    yield chosen


def drop_schemas(url: str, size: int) -> None:
    """Drop the schemas the benchmark of one size created."""
    with connect(url) as conn:
        found = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (f"bench\\_{size}\\_%",)
        ).fetchall()
        for (schema,) in found:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def ensure_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or "postgres"
    admin = parsed.set(database="postgres").render_as_string(hide_password=False)
    with connect(admin) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="account sizes, comma-separated (default 1000,10000; add 100000, ~15 min more)",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 activities only")
    parser.add_argument("--repeats", type=int, default=3, help="throughput rounds (3)")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (1)")
    parser.add_argument("--postgres-url", default=None, help="SQLAlchemy URL to load into")
    parser.add_argument("--no-meltano", action="store_true", help="tap, baseline, requests only")
    parser.add_argument(
        "--xml-only", action="store_true", help="first sync, then only target-xml (issue 18)"
    )
    parser.add_argument(
        "--requests-only",
        action="store_true",
        help="only issue 14's requests section (first syncs, 4 reads/window, strava-daily)",
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="per size only the first sync and the throughput rounds (issue 27's ratio)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="one more first sync per size under cProfile"
    )
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per process")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here")
    parser.add_argument("--output", type=Path, default=None, help="also write the report here")
    parser.add_argument("--loop", nargs=2, metavar=("KIND", "SPEC"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.loop:
        loop_main(args.loop[0], Path(args.loop[1]))
        return
    sizes = [1000] if args.quick else [int(s.replace("_", "")) for s in args.sizes.split(",")]
    if args.requests_only:
        sizes = []
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="strava-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: list[SizeResult] = []
    requests_result: RequestsResult | None = None
    started = time.perf_counter()
    # The requests section's daily job loads Postgres; without Meltano nothing does.
    needs_postgres = (bool(sizes) or not args.no_meltano) and not args.throughput_only
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(postgres(args.postgres_url, workdir)) if needs_postgres else None
        for size in sizes:
            assert url is not None or args.throughput_only
            folder = workdir / str(size)
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            results.append(SizeBench(size, args, folder, url or "").run())
            if url is not None:
                drop_schemas(url, size)
        if not (args.xml_only or args.throughput_only):
            folder = workdir / "requests"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            job_url = None if args.no_meltano else url
            requests_result = RequestsBench(args, folder, job_url).run()
    sections = [report(results), goals(results)] if results else []
    if requests_result is not None:
        sections.append(requests_report(requests_result))
    text = (
        f"Machine: {machine()}\n\nCommand: `python -m devtools.bench "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}` "
        f"({time.perf_counter() - started:.0f} s in all)\n\n" + "\n".join(sections)
    )
    print(text)
    if args.output:
        args.output.write_text(text)
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
