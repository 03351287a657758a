"""What issue 24's guards cost: the storable-strings rule per record, the answer cap's memory.

The records are the simulator's own answers (a list page of 200 summaries, detailed
activities, and streams answers keyed by type), conformed exactly as the tap conforms
them (:func:`tap_strava.conform.conform_to_schema`, which applies the rule first). For each
kind it prints the time per record of the rule alone (:func:`make_storable` on clean
records: the usual case), of the whole conforming step, and of the SDK's serialization of
the record (``singer_sdk``'s ``serialize_json``, what every record costs on its way out),
and the rule's share of the last two. Best of ``--repeats`` runs, each over fresh copies.

Then the answer size cap (:mod:`tap_strava.answer_size`): ``tap-strava`` as a process
against the simulator's ``oversized`` fault (a 256 MiB gzip bomb as the first list page),
with the default cap and with the cap out of reach (``max_answer_mib`` 1,000,000, i.e. the
answer read whole as before): exit code and the kernel's peak RSS of the process
(``wait4``).

``make bench-strings`` (``python -m devtools.bench_strings``, about a minute); the figures
are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request
from pathlib import Path

from singer_sdk.singerlib.json import serialize_json

from strava_simulator import StravaSimulator
from tap_strava.conform import conform_to_schema
from tap_strava.schemas.activity import ACTIVITY_SCHEMA
from tap_strava.schemas.details import ACTIVITY_DETAIL_SCHEMA, ACTIVITY_STREAMS_SCHEMA
from tap_strava.storable_text import make_storable

JSONDict = dict[str, t.Any]


def _get(sim: StravaSimulator, token: str, path: str) -> t.Any:
    request = urllib.request.Request(
        f"{sim.api_url}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _records(count: int) -> dict[str, tuple[list[JSONDict], t.Mapping[str, t.Any]]]:
    with StravaSimulator(
        seed=7, activity_count=200, read_limit_15min=10**6, overall_limit_15min=10**6
    ) as sim:
        token = sim.issue_access_token()
        summaries = _get(sim, token, "/athlete/activities?per_page=200&page=1")
        ids = [a["id"] for a in summaries if a.get("start_latlng")][:count]
        details = [_get(sim, token, f"/activities/{i}") for i in ids]
        streams = []
        for activity_id in ids:
            body = _get(
                sim,
                token,
                f"/activities/{activity_id}/streams?keys=latlng,"
                "time,distance,altitude,velocity_smooth,heartrate,cadence,watts,"
                "temp,moving,grade_smooth&key_by_type=true",
            )
            streams.append({key: series.get("data") for key, series in body.items()})
    return {
        "activities (list page)": (summaries, ACTIVITY_SCHEMA),
        "activity_details": (details, ACTIVITY_DETAIL_SCHEMA),
        "activity_streams": (streams, ACTIVITY_STREAMS_SCHEMA),
    }


def _best(repeats: int, records: list[JSONDict], work: t.Callable[[JSONDict], t.Any]) -> float:
    """Best time per record, in microseconds, over fresh copies each repeat."""
    best = float("inf")
    for _ in range(repeats):
        copies = copy.deepcopy(records)
        start = time.perf_counter()
        for record in copies:
            work(record)
        best = min(best, (time.perf_counter() - start) / len(copies))
    return best * 1e6


BOMB = 256 * 2**20


def _bomb_run(max_answer_mib: int | None) -> tuple[int, int]:
    """Exit code and peak RSS (MiB) of ``tap-strava`` fed a gzip bomb as its first page."""
    with (
        StravaSimulator(seed=71, activity_count=30) as sim,
        tempfile.TemporaryDirectory() as work,
    ):
        sim.inject_fault(r"^/api/v3/athlete/activities$", "oversized", size=BOMB)
        config = {
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "refresh_token": sim.refresh_token,
            "api_url": sim.api_url,
            "token_url": sim.token_url,
            "token_store_path": f"{work}/tokens.json",
        }
        if max_answer_mib is not None:
            config["max_answer_mib"] = max_answer_mib
        path = Path(work) / "config.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tap_strava.tap", "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        return os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024


def main(argv: t.Sequence[str] | None = None) -> None:
    """Print the table."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeats", type=int, default=7)
    options.add_argument("--activities", type=int, default=20, help="details and streams")
    args = options.parse_args(argv)
    logger = logging.getLogger("bench.strings")
    print(
        "| records | rule alone (µs) | conform, rule included (µs) | serialize (µs) "
        "| rule / conform | rule / (conform + serialize) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind, (records, schema) in _records(args.activities).items():
        rule = _best(args.repeats, records, make_storable)
        conform = _best(
            args.repeats,
            records,
            lambda r, s=schema: conform_to_schema(r, s, logger=logger, label="bench"),
        )
        serialize = _best(args.repeats, records, serialize_json)
        print(
            f"| {kind}, {len(records)} | {rule:.1f} | {conform:.1f} | {serialize:.1f} "
            f"| {rule / conform:.0%} | {rule / (conform + serialize):.1%} |"
        )
    print()
    print(f"| a {BOMB // 2**20} MiB gzip bomb as the first page | exit | peak RSS (MiB) |")
    print("|---|---:|---:|")
    for label, cap in (("default cap (64 MiB)", None), ("cap out of reach", 1_000_000)):
        code, peak = _bomb_run(cap)
        print(f"| {label} | {code} | {peak:,} |")


if __name__ == "__main__":
    main()
