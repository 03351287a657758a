"""The export archive's import against a bare decoding loop and against the API (issue 16).

For a simulated athlete (``strava-sim``'s archive writer, one-second tracks):

1. **FIT decoders compared** on the archive's own FIT files: fitdecode (what the tap uses)
   and garmin-fit-sdk, time for all files and whether both read the same values;
2. **the bare decoding loop**: every original decoded with the fastest reader of its
   format (no CSV, no JSON, no database), in one process of its own: the floor of any
   importer;
3. **the import**: ``tap-strava`` (``export_archive_path``) piped into the project's
   ``target-postgres`` with the archive import's settings (batches of 50, COPY), wall time
   and each process's peak memory, at the full size (with the default ``export_workers``
   and with 1) and at a tenth of it;
4. **the API for the same data**: list pages plus one request per activity for each of
   details, laps, zones and streams, counted from the simulator's log, in days of the
   default read quota (1,000 a day).

``make bench-archive`` (``python -m devtools.bench_archive``) prints the table for
docs/benchmarks.md. Ratios are taken within the one run, on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import typing as t
import zipfile
from pathlib import Path

import requests

from devtools.bench import (
    BIN,
    PROJECT_ROOT,
    WORKER_ROLE,
    _api_reads,
    _plugin_bin,
    _tap_config,
    _unlimited_simulator,
    run_measured,
    run_tap_in_process,
)
from devtools.postgres import connect, postgres_server
from tap_strava.track_decoding import default_workers

if t.TYPE_CHECKING:
    from strava_simulator import StravaSimulator
    from strava_simulator.archive import ArchiveManifest

JSONDict = dict[str, t.Any]
DAILY_READS = 1000
PER_ACTIVITY = ("activity_details_per_run", "laps_per_run", "zones_per_run", "streams_per_run")


def _originals(archive: Path) -> t.Iterator[tuple[str, bytes]]:
    """(name, decompressed bytes) of every original file in the archive."""
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            if not info.filename.startswith("activities/") or info.is_dir():
                continue
            data = zipped.read(info)
            name = info.filename
            if name.endswith(".gz"):
                with contextlib.suppress(OSError, EOFError):
                    data = gzip.decompress(data)
                name = name[:-3]
            yield name, data


def _fitdecode_values(data: bytes) -> list[tuple[t.Any, ...]]:
    import fitdecode

    values = []
    with fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.RAISE) as reader:
        for frame in reader:
            if isinstance(frame, fitdecode.FitDataMessage) and frame.name == "record":
                values.append(
                    tuple(
                        frame.get_value(name, fallback=None)
                        for name in ("position_lat", "heart_rate", "power", "cadence")
                    )
                )
    return values


def _garmin_values(data: bytes) -> list[tuple[t.Any, ...]]:
    from garmin_fit_sdk import Decoder, Stream

    messages, errors = Decoder(Stream.from_byte_array(bytearray(data))).read(
        apply_scale_and_offset=True, convert_datetimes_to_dates=False
    )
    if errors:
        raise ValueError(str(errors[0]))
    return [
        tuple(record.get(name) for name in ("position_lat", "heart_rate", "power", "cadence"))
        for record in messages.get("record_mesgs", [])
    ]


def compare_fit_decoders(archive: Path) -> JSONDict:
    """Both FIT decoders on every FIT original: seconds, and files where values differ."""
    files = [(name, data) for name, data in _originals(archive) if name.endswith(".fit")]
    result: JSONDict = {"files": len(files)}
    decoded: dict[str, dict[str, list[tuple[t.Any, ...]] | None]] = {}
    for label, decode in (("fitdecode", _fitdecode_values), ("garmin-fit-sdk", _garmin_values)):
        started = time.perf_counter()
        out: dict[str, list[tuple[t.Any, ...]] | None] = {}
        for name, data in files:
            try:
                out[name] = decode(data)
            except Exception:  # a corrupt file: both must refuse it
                out[name] = None
        result[label] = time.perf_counter() - started
        decoded[label] = out
    a, b = decoded["fitdecode"], decoded["garmin-fit-sdk"]
    result["records"] = sum(len(v or []) for v in a.values())
    result["differ"] = sorted(name for name in a if a[name] != b[name])
    return result


def _tcx_values(root: t.Any) -> int:
    """Every value of every Trackpoint read as a number or a time (lxml only parses: a
    loop that just counted the points would not have decoded them); the point count."""
    import datetime

    count = 0
    for point in root.iter("{*}Trackpoint"):
        for node in point.iter():
            text = node.text
            if text is None or len(node):
                continue
            try:
                float(text)
            except ValueError:
                datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        count += 1
    return count


def bare_loop_process(archive: Path, fit_reader: str) -> JSONDict:
    """:func:`bare_loop` in a fresh interpreter, as the import's processes are.

    In this process the loop would share the heap of the simulator kept for the checks,
    and the garbage collector's passes over it made the loop about 1.5x slower: a floor
    that flattered every ratio.
    """
    command = [
        str(BIN / "python"), "-m", "devtools.bench_archive", "--loop-only", str(archive),
        "--fit-reader", fit_reader,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=3600
    )
    return t.cast("JSONDict", json.loads(done.stdout.strip().splitlines()[-1]))


def bare_loop(archive: Path, fit_reader: str) -> JSONDict:
    """Every original decoded once with the fastest reader of its format; seconds."""
    import gpxpy
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    started = time.perf_counter()
    points = 0
    for name, data in _originals(archive):
        try:
            if name.endswith(".fit"):
                decode = _garmin_values if fit_reader == "garmin-fit-sdk" else _fitdecode_values
                points += len(decode(data))
            elif name.endswith(".gpx"):
                track = gpxpy.parse(data.decode("utf-8", "replace").lstrip())
                points += sum(len(s.points) for k in track.tracks for s in k.segments)
            elif name.endswith(".tcx"):
                points += _tcx_values(etree.fromstring(data.lstrip(), parser))
        except Exception:  # the quirk files: skipped, as the tap does
            continue
    return {"seconds": time.perf_counter() - started, "points": points}


def import_archive(
    archive: Path,
    postgres_url: str,
    workdir: Path,
    schema: str,
    manifest: ArchiveManifest | None = None,
    sim: StravaSimulator | None = None,
    workers: int | None = None,
) -> JSONDict:
    """tap-strava | target-postgres on the archive, as the strava-archive job runs them.

    ``workers``: the tap's ``export_workers`` (None: its default, one per CPU).
    """
    settings: JSONDict = {
        "export_archive_path": str(archive),
        "token_store_path": str(workdir / schema),
    }
    if workers is not None:
        settings["export_workers"] = workers
    tap_config = workdir / f"{schema}-tap.json"
    tap_config.write_text(json.dumps(settings), encoding="utf-8")
    target_config = workdir / f"{schema}-target.json"
    target_config.write_text(
        json.dumps(
            {
                "sqlalchemy_url": postgres_url,
                "default_target_schema": schema,
                "batch_size_rows": 50,
                "use_copy": True,
                "validate_records": False,
                "add_record_metadata": True,
            }
        ),
        encoding="utf-8",
    )
    tap = BIN / "tap-strava"
    target = _plugin_bin("loaders", "target-postgres")
    command = f"'{tap}' --config '{tap_config}' | '{target}' --config '{target_config}'"
    measured = run_measured(
        ["bash", "-o", "pipefail", "-c", command],
        env={**os.environ},
        log=workdir / f"{schema}.log",
        cwd=PROJECT_ROOT,
    )
    if not measured.ok:
        msg = f"the import failed: {measured.tail()}"
        raise RuntimeError(msg)
    checks = verify(postgres_url, schema, manifest, sim) if manifest and sim else {}
    with connect(postgres_url) as conn:
        rows = conn.execute(f'SELECT count(*) FROM "{schema}".export_activities').fetchone()
        tracks = conn.execute(f'SELECT count(*) FROM "{schema}".export_tracks').fetchone()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return {
        "seconds": measured.seconds,
        "peaks": measured.peaks_mb,
        "activities": rows[0] if rows else 0,
        "tracks": tracks[0] if tracks else 0,
        **checks,
    }


def api_requests(seed: int, activities: int, track_seconds: int, workdir: Path) -> JSONDict:
    """What the API needs for the same history: list pages and four calls per activity."""
    from strava_simulator.archive import set_track_seconds

    with _unlimited_simulator(seed, activities) as sim:
        set_track_seconds(sim.primary, track_seconds)
        config = _tap_config(sim, workdir / "api", **dict.fromkeys(PER_ACTIVITY, activities))
        run_tap_in_process(config, {})
        reads = _api_reads(sim.requests)
    per_activity = sum(1 for r in reads if re.match(r"^/api/v3/activities/\d+", r.path))
    return {"reads": len(reads), "per_activity": per_activity, "days": len(reads) / DAILY_READS}


def write(
    stack: contextlib.ExitStack, seed: int, activities: int, track_seconds: int, folder: Path
) -> tuple[ArchiveManifest, StravaSimulator, float]:
    """The simulated athlete's archive, and its simulator kept open for the checks.

    The writer's time is reported, not compared.
    """
    from strava_simulator.archive import write_archive

    started = time.perf_counter()
    sim = stack.enter_context(_unlimited_simulator(seed, activities))
    manifest = write_archive(sim, folder, track_seconds=track_seconds)
    return manifest, sim, time.perf_counter() - started


def verify(url: str, schema: str, manifest: ArchiveManifest, sim: StravaSimulator) -> JSONDict:
    """Every activity once, every decodable track equal to the simulator's streams."""
    keys = "time,latlng,altitude,distance,heartrate,cadence,watts,temp"
    token = sim.issue_access_token()
    with connect(url) as conn:
        ids = [row[0] for row in conn.execute(f'SELECT id FROM "{schema}".export_activities')]
        tracks = conn.execute(f'SELECT * FROM "{schema}".export_tracks')
        names = [c.name for c in tracks.description or []]
        by_id = {
            row[names.index("activity_id")]: dict(zip(names, row, strict=True)) for row in tracks
        }
    exact = sorted(ids) == sorted(manifest.entries) and len(ids) == len(set(ids))
    checked = mismatched = 0
    for entry in manifest.entries.values():
        if entry.outcome != "ok":
            continue
        answer = requests.get(
            f"{sim.api_url}/activities/{entry.activity_id}/streams",
            headers={"Authorization": f"Bearer {token}"},
            params={"keys": keys, "key_by_type": "true"},
            timeout=30,
        ).json()
        track = by_id.get(entry.activity_id) or {}
        for name in entry.series:
            tolerance = manifest.precision[entry.format].get(name, 0.0) + 1e-6
            want = answer[name]["data"]
            got = track.get(name) or []
            flat_want = [v for p in want for v in (p if isinstance(p, list) else [p])]
            flat_got = [v for p in got for v in (p if isinstance(p, list) else [p])]
            same = len(flat_got) == len(flat_want) and all(
                abs(float(a) - float(b)) <= tolerance
                for a, b in zip(flat_got, flat_want, strict=True)
            )
            mismatched += not same
        checked += 1
    return {"exactly_once": exact, "tracks_checked": checked, "series_mismatched": mismatched}


# -- the hostile archive (issue 24) ----------------------------------------------------------

HOSTILE_FIELD_MB = 300
HOSTILE_BOMB_MB = 1024
NUL_NAME = "Morning\u0000Run"


def hostile_archive(clean: Path, out: Path, *, nul: bool = True) -> JSONDict:
    """``clean`` (the simulator's zip) with a gzip bomb, a huge field and a NUL name.

    * the first ``.fit.gz`` original becomes 1 GiB of zeros gzipped (about 1 MB);
    * the next activity's description becomes 300 MiB of text that packs about 80:1 (a
      4 KiB random block repeated: not a bomb by the ratio), then a line break and forged
      rows (``""``-quoted, as Strava writes quotes in a quoted field);
    * the activity after that is named ``Morning\\u0000Run`` (``nul``).

    Written as a stream: the bench itself never holds the 300 MiB either.
    """
    import csv
    import random

    block = (random.Random(24).randbytes(3072)).hex()[:4096]
    with zipfile.ZipFile(clean) as source:
        text = source.read("activities.csv").decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header = rows[0]
        col = {name: header.index(name) for name in ("Activity Description", "Filename")}
        name_col = header.index("Activity Name")
        bombed = next(
            i for i, r in enumerate(rows[1:], 1) if r[col["Filename"]].endswith(".fit.gz")
        )
        bomb_name = rows[bombed][col["Filename"]]
        huge, named = bombed % (len(rows) - 1) + 1, (bombed + 1) % (len(rows) - 1) + 1
        marker = "@@HUGE\n@@"  # quoted by csv.writer, then replaced by the stream below
        rows[huge][col["Activity Description"]] = marker
        if nul:
            rows[named][name_col] = NUL_NAME
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        before, after = buffer.getvalue().split(marker)
        forged = "\n".join(f'{n},""May 1, 2024, 1:00:00 PM"",Forged' for n in range(900, 905))
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
            with target.open("activities.csv", "w", force_zip64=True) as member:
                member.write(before.encode())
                chunk = (block * 256).encode()  # 1 MiB
                for _ in range(HOSTILE_FIELD_MB):
                    member.write(chunk)
                member.write(("\n" + forged).encode() + after.encode())
            bomb = _gzip_of_zeros(HOSTILE_BOMB_MB * 2**20)
            for info in source.infolist():
                if info.filename == "activities.csv":
                    continue
                if info.filename == bomb_name:
                    target.writestr(bomb_name, bomb)
                else:
                    target.writestr(info, source.read(info))
    return {
        "bomb": bomb_name,
        "bomb_packed_mb": len(bomb) / 2**20,
        "huge_id": int(rows[huge][0]),
        "nul_id": int(rows[named][0]) if nul else None,
        "activities": sum(1 for r in rows[1:] if r and r[0].strip().isdigit()),
        "zip_mb": out.stat().st_size / 2**20,
    }


def _gzip_of_zeros(size: int) -> bytes:
    """``size`` zero bytes gzipped, written in pieces (never ``size`` bytes at once)."""
    buffer = io.BytesIO()
    zeros = b"\0" * 2**20
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        for _ in range(size // len(zeros)):
            handle.write(zeros)
    return buffer.getvalue()


def _tree_memory(root: int, done: threading.Event, out: JSONDict) -> None:
    """Every 50 ms, the RSS of the whole process tree summed: its highest sum, and each
    process's own peak (VmHWM) by command."""
    import psutil

    peak_sum = 0.0
    hwm: dict[int, tuple[str, float]] = {}
    while not done.wait(0.05):
        try:
            procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        except psutil.Error:
            continue
        total = 0.0
        for proc in procs:
            try:
                total += proc.memory_info().rss / 2**20
                line = " ".join(proc.cmdline())
                name = next(
                    (r for r in ("spawn_main", "tap-strava", "target-", "meltano") if r in line),
                    "other",
                )
                if name == "target-":
                    name = "target-" + line.split("target-", 1)[1].split()[0].split("/")[0]
                name = {"spawn_main": "tap-strava worker"}.get(name, name)
            except psutil.Error:
                continue
            hwm[proc.pid] = (name, max(hwm.get(proc.pid, ("", 0.0))[1], _hwm(proc.pid)))
        peak_sum = max(peak_sum, total)
    out["peak_sum_mb"] = peak_sum
    out["processes"] = len(hwm)
    out["sum_of_peaks_mb"] = sum(mb for _, mb in hwm.values())
    out["largest"] = sorted(hwm.values(), key=lambda item: -item[1])[:6]


def _hwm(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(errors="replace").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _meltano_env(workdir: Path, postgres_url: str, schema: str, archive: Path) -> dict[str, str]:
    """The archive job's environment: its own Meltano system folder, no API setting."""
    sys_dir = workdir / "meltano-sys"
    if not sys_dir.exists():
        sys_dir.mkdir(parents=True)
        for entry in (PROJECT_ROOT / ".meltano").iterdir():
            if entry.is_dir() and entry.name not in ("run", "logs"):
                (sys_dir / entry.name).symlink_to(entry, target_is_directory=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_STRAVA_", "TARGET_", "MELTANO_"))
    }
    env.update(
        {
            "MELTANO_DATABASE_URI": f"sqlite:///{workdir / 'meltano.db'}",
            "MELTANO_SYS_DIR_ROOT": str(sys_dir),
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "TAP_STRAVA_TOKEN_STORE_PATH": str(workdir / "tokens.json"),
            "TARGET_POSTGRES_SQLALCHEMY_URL": postgres_url,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
            "TARGET_CSV_ARCHIVE_OUTPUT_PATH": str(workdir / "csv"),
            "STRAVA_EXPORT_ARCHIVE": str(archive),
            "STRAVA_RUN_STAMP": "hostile",
        }
    )
    return env


def _snapshot(url: str, schema: str) -> dict[str, list[str]]:
    """Every row of the archive's tables, without the ``_sdc_`` columns, as sorted text."""
    out: dict[str, list[str]] = {}
    with connect(url) as conn:
        for table in ("export_activities", "export_tracks", "export_gear"):
            result = conn.execute(f'SELECT * FROM "{schema}".{table}')
            names = [c.name for c in result.description or []]
            keep = [i for i, n in enumerate(names) if not n.startswith("_sdc_")]
            out[table] = sorted(repr([row[i] for i in keep]) for row in result)
    return out


def run_hostile(root: Path, postgres_url: str, clean: Path, *, nul: bool = True) -> JSONDict:
    """``meltano run strava-archive`` twice on the hostile archive, the tree's memory sampled."""
    archive = root / "hostile" / "export_hostile.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    made = hostile_archive(clean, archive, nul=nul)
    schema = "bench_hostile"
    env = _meltano_env(root / "hostile", postgres_url, schema, archive)
    runs = []
    snapshots = []
    for attempt in ("first", "second"):
        log = root / "hostile" / f"{attempt}.log"
        memory: JSONDict = {}
        done = threading.Event()
        started = time.perf_counter()
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [str(BIN / "meltano"), "run", "strava-archive"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
            sampler = threading.Thread(target=_tree_memory, args=(proc.pid, done, memory))
            sampler.start()
            code = proc.wait(timeout=3600)
            done.set()
            sampler.join()
        text = log.read_text(errors="replace")
        runs.append(
            {
                "exit": code,
                "seconds": time.perf_counter() - started,
                **memory,
                "skipped_warnings": text.count("its track is skipped"),
                "cut_warnings": text.count("cut to the first"),
                # A failure's own lines (not Meltano's traceback of the broken pipe after it).
                "tail": ""
                if code == 0
                else "\n".join(
                    line[:300]
                    for line in text.splitlines()
                    if "rror" in line and "│" not in line and "METRIC" not in line
                )[-1500:],
            }
        )
        snapshots.append(_snapshot(postgres_url, schema) if code == 0 else {})
    rows = snapshots[0]
    with connect(postgres_url) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return {
        **made,
        "runs": runs,
        "activities_loaded": len(rows.get("export_activities", [])),
        "tracks_loaded": len(rows.get("export_tracks", [])),
        "unchanged": bool(rows) and snapshots[0] == snapshots[1],
    }


def hostile_report(result: JSONDict) -> str:
    """The hostile archive's line(s) for docs/benchmarks.md."""
    first, second = result["runs"]
    lines = [
        "| hostile archive | exit (1st / 2nd run) | time | peak of the tree's summed RSS | "
        "sum of each process's peak | processes |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {result['activities']} activities, a {HOSTILE_BOMB_MB} MiB gzip bomb as "
        f"`{result['bomb']}` ({result['bomb_packed_mb']:.1f} MB packed), a "
        f"{HOSTILE_FIELD_MB} MiB description (activity {result['huge_id']}), "
        + (f"a NUL in a name (activity {result['nul_id']}); " if result["nul_id"] else "")
        + f"{result['zip_mb']:.0f} MB zip, `meltano run strava-archive` | "
        f"{first['exit']} / {second['exit']} | {first['seconds']:.0f} s / "
        f"{second['seconds']:.0f} s | **{first.get('peak_sum_mb', 0):.0f} MB** / "
        f"{second.get('peak_sum_mb', 0):.0f} MB | {first.get('sum_of_peaks_mb', 0):.0f} MB | "
        f"{first.get('processes', 0)} |",
        "",
        f"Rows landed: {result['activities_loaded']} activities, {result['tracks_loaded']} "
        f"tracks; warnings in the first run: {first['skipped_warnings']} skipped track(s), "
        f"{first['cut_warnings']} cut field(s); in the second: {second['skipped_warnings']} "
        f"and {second['cut_warnings']}; the second run changed no non-`_sdc_` column: "
        f"{result['unchanged']}. Largest processes (VmHWM, MB): "
        + ", ".join(f"{name} {mb:.0f}" for name, mb in first.get("largest", [])),
    ]
    for run in result["runs"]:
        if run["exit"] != 0:
            lines.append(f"\nA run failed: {run['tail'][-1500:]}")
    return "\n".join(lines)


def _peaks(run: JSONDict) -> str:
    peaks = run["peaks"]
    worker = peaks.get(WORKER_ROLE)
    workers = f" (+ {worker:.0f} per worker)" if worker else ""
    return f"{peaks.get('tap-strava', 0):.0f}{workers} / {peaks.get('target-postgres', 0):.0f} MB"


def _ratio(full: JSONDict, small: JSONDict, role: str) -> str:
    return f"{full['peaks'].get(role, 0) / max(small['peaks'].get(role, 0), 1):.2f}x"


def report(results: JSONDict) -> str:
    """The section of docs/benchmarks.md."""
    full, small, alone = results["full"], results["small"], results["one_worker"]
    fit = results["fit"]
    loop = results["loop"]
    size, small_size = results["activities"], results["small_activities"]
    ratio = full["seconds"] / loop["seconds"]
    alone_ratio = alone["seconds"] / loop["seconds"]
    workers = results["workers"]
    lines = [
        f"A simulated archive of {size:,} activities with {results['track_seconds']:,}-second "
        f"one-second tracks ({results['archive_mb']:.0f} MB zip, {loop['points']:,} points; "
        f"written in {results['write_seconds']:.0f} s), one run on this machine "
        f"({results['cpus']} CPUs):",
        "",
        "| | time | peak memory (tap / target) |",
        "|---|---:|---:|",
        f"| bare decoding loop, one process ({results['fit_reader']} for FIT, gpxpy, lxml) | "
        f"{loop['seconds']:.1f} s | |",
        f"| import, {size:,} activities (tap-strava into target-postgres, batches of 50; "
        f"{workers} decoding workers, the default here) | "
        f"{full['seconds']:.1f} s (**{ratio:.2f}x** the loop) | {_peaks(full)} |",
        f"| the same with `export_workers: 1` (decoded in the tap's process) | "
        f"{alone['seconds']:.1f} s ({alone_ratio:.2f}x) | {_peaks(alone)} |",
        f"| import, {small_size:,} activities | {small['seconds']:.1f} s | {_peaks(small)} |",
        "",
        f"Rows: {full['activities']:,} activities and {full['tracks']:,} tracks; every "
        f"activity exactly once: {full.get('exactly_once')}; {full.get('tracks_checked', 0):,} "
        f"decodable tracks compared point by point with the simulator's streams, series "
        f"that differ: {full.get('series_mismatched')}. Peak memory "
        f"at {size:,} against {small_size:,}: tap {_ratio(full, small, 'tap-strava')}, "
        f"each worker {_ratio(full, small, WORKER_ROLE)}, "
        f"target {_ratio(full, small, 'target-postgres')}.",
        "",
        f"FIT decoders on the archive's {fit['files']:,} FIT files ({fit['records']:,} "
        f"records): fitdecode {fit['fitdecode']:.1f} s, garmin-fit-sdk "
        f"{fit['garmin-fit-sdk']:.1f} s; files whose values differ: {len(fit['differ'])}.",
        "",
        f"The API for the same data: {results['api']['reads']:,} reads "
        f"({results['api']['per_activity']:,} of them one per activity for details, laps, "
        f"zones and streams), **{results['api']['days']:.1f} days** of the default quota "
        f"of {DAILY_READS:,} reads a day; the archive needs none.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Write the archive, measure, print the table."""
    parser = argparse.ArgumentParser(prog="python -m devtools.bench_archive")
    parser.add_argument("--activities", type=int, default=2000)
    parser.add_argument("--track-seconds", type=int, default=900)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-url", default=None, help="SQLAlchemy URL (else embedded)")
    parser.add_argument(
        "--hostile-only",
        action="store_true",
        help="only the hostile archive's line (a bomb, a 300 MiB field, a NUL name)",
    )
    parser.add_argument(
        "--no-nul", action="store_true", help="the hostile archive without its NUL name"
    )
    parser.add_argument("--loop-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fit-reader", default="garmin-fit-sdk", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop_only:  # the loop's own process (see bare_loop_process)
        print(json.dumps(bare_loop(args.loop_only, args.fit_reader)))
        return
    if args.hostile_only:
        with (
            tempfile.TemporaryDirectory(prefix="bench-hostile-") as folder,
            contextlib.ExitStack() as stack,
        ):
            root = Path(folder)
            manifest, _sim, _ = write(stack, args.seed, 200, args.track_seconds, root / "clean")
            url = args.postgres_url or stack.enter_context(postgres_server(root / "pg"))
            print(hostile_report(run_hostile(root, url, manifest.path, nul=not args.no_nul)))
        return
    small_size = max(1, args.activities // 10)
    with (
        tempfile.TemporaryDirectory(prefix="bench-archive-") as folder,
        contextlib.ExitStack() as stack,
    ):
        root = Path(folder)
        manifest, sim, write_seconds = write(
            stack, args.seed, args.activities, args.track_seconds, root
        )
        small, _small_sim, _ = write(
            stack, args.seed + 1, small_size, args.track_seconds, root / "small"
        )
        archive = manifest.path
        fit = compare_fit_decoders(archive)
        fastest = min(("fitdecode", "garmin-fit-sdk"), key=lambda k: fit[k])
        loop = bare_loop_process(archive, fastest)
        url = args.postgres_url or stack.enter_context(postgres_server(root / "pg"))
        full = import_archive(archive, url, root, "bench_archive_full", manifest, sim)
        one_worker = import_archive(archive, url, root, "bench_archive_one", workers=1)
        small_result = import_archive(small.path, url, root, "bench_archive_small")
        api = api_requests(args.seed, args.activities, args.track_seconds, root)
        hostile = run_hostile(root, url, small.path, nul=not args.no_nul)
        results = {
            "activities": args.activities,
            "small_activities": small_size,
            "track_seconds": args.track_seconds,
            "archive_mb": archive.stat().st_size / 2**20,
            "write_seconds": write_seconds,
            "fit": fit,
            "fit_reader": fastest,
            "loop": loop,
            "full": full,
            "one_worker": one_worker,
            "workers": default_workers(),
            "cpus": os.cpu_count(),
            "small": small_result,
            "api": api,
        }
    print(report(results))
    print()
    print(hostile_report(hostile))


if __name__ == "__main__":
    main()
