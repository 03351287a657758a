"""Local wall times and receipt times in the destinations, fresh and over an older database.

Issue 25: ``activities.start_date_local`` arrived in the CSV as ``2026-12-04 18:13:34+00:00``
(Strava's false ``Z``), and ``event_receipts.received_at`` was declared text. The tap now
sends the wall time without a label and the receipt time as a ``date-time``.
target-postgres never alters an existing column (``Altering columns is not supported``
when the types merge to another one), so each change is loaded here over a database that
the previous version's messages created, through the project's installed target:

* the previous version's ``activities`` messages are the golden capture's with the ``Z``
  back and the old declaration (``tests/test_output_golden.py`` showed those two are the
  only differences);
* the previous ``event_receipts`` declared ``received_at`` as a plain string.
"""

from __future__ import annotations

import copy
import csv
import datetime
import gzip
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from devtools.postgres import connect
from strava_events.events import event_from_dict
from strava_events.queue import PostgresStore, StoredEvent
from strava_events.settings import to_libpq
from tap_strava.event_inbox import parse_event, utc_instant
from tap_strava.schemas.events import EVENT_RECEIPT_SCHEMA
from tests.support import load_into_postgres

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "golden_output.jsonl.gz"
LOADERS = ROOT / ".meltano" / "loaders"
TARGET_POSTGRES = LOADERS / "target-postgres/venv/bin/target-postgres"
TARGET_CSV = LOADERS / "target-csv/venv/bin/target-csv"
needs_targets = pytest.mark.skipif(
    not (TARGET_POSTGRES.exists() and TARGET_CSV.exists()),
    reason="the Meltano loaders are not installed (make setup)",
)


def _activities_now() -> list[dict]:
    """The activities SCHEMA and RECORD messages the tap emits (the golden capture)."""
    lines = gzip.decompress(GOLDEN.read_bytes()).decode().splitlines()
    messages = [json.loads(line) for line in lines if line.startswith("{")]
    wanted = [m for m in messages if m.get("stream") == "activities"]
    first_schema = next(i for i, m in enumerate(wanted) if m["type"] == "SCHEMA")
    kept = [m for m in wanted[first_schema:] if m["type"] in {"SCHEMA", "RECORD"}]
    for message in kept:  # the capture's wall-clock placeholders are no values
        message.pop("time_extracted", None)
        message.pop("version", None)
    return kept


def _as_previous_version(messages: list[dict]) -> list[dict]:
    """What the version before issue 25 sent: a plain date-time, and Strava's ``Z``."""
    previous = copy.deepcopy(messages)
    for message in previous:
        if message["type"] == "SCHEMA":
            message["schema"]["properties"]["start_date_local"] = {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "Start as local wall-clock time; Strava writes it with a false 'Z'.",
            }
        elif message["record"].get("start_date_local"):
            message["record"]["start_date_local"] += "Z"
    return previous


def _postgres(messages: list[dict], url: str, schema: str, tmp_path: Path) -> None:
    load_into_postgres(messages, url, schema, tmp_path)


def _column_type(conn, schema: str, table: str, column: str) -> str:
    return conn.execute(
        "SELECT data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s AND column_name = %s",
        (schema, table, column),
    ).fetchone()[0]


@needs_targets
def test_the_csv_shows_a_local_wall_time_without_a_zone(tmp_path):
    messages = _activities_now()
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    assert len(records) > 100
    config = tmp_path / "csv.json"
    config.write_text(json.dumps({"output_path": str(tmp_path / "out")}))
    (tmp_path / "out").mkdir()
    proc = subprocess.run(
        [str(TARGET_CSV), "--config", str(config)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (written,) = (tmp_path / "out").glob("activities*.csv")
    with written.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_id = {row["id"]: row for row in rows}
    for record in records:
        row = by_id[str(record["id"])]
        # The athlete's clock, as Strava gave it, with no zone label at all.
        assert row["start_date_local"] == record["start_date_local"].replace("T", " ")
        assert row["start_date"].endswith("+00:00")  # the instant keeps its UTC label


def _receipt_messages(schema: dict, key: str, received_at: str) -> list[dict]:
    record = {
        "event_key": key,
        "received_at": received_at,
        "processed_at": "2026-12-06T22:00:00Z",
        "object_type": "activity",
        "object_id": 7,
        "aspect_type": "update",
        "owner_id": 9,
        "subscription_id": 1,
        "event_time": "2026-12-06T21:59:58Z",
        "updates": "{}",
        "outcome": "applied",
        "reason": None,
    }
    return [
        {
            "type": "SCHEMA",
            "stream": "event_receipts",
            "schema": schema,
            "key_properties": ["event_key"],
        },
        {"type": "RECORD", "stream": "event_receipts", "record": record},
    ]


def test_a_receive_time_is_an_instant_in_utc():
    event = {
        "object_type": "activity",
        "aspect_type": "update",
        "object_id": 7,
        "owner_id": 9,
        "subscription_id": 1,
        "event_time": 1796594400,
    }
    parsed = parse_event({"key": "k", "received_at": "2026-12-06T22:09:00.5Z", "event": event})
    assert parsed.received_at == "2026-12-06T22:09:00.500000Z"
    assert utc_instant("2026-12-06T23:09:00+01:00") == "2026-12-06T22:09:00.000000Z"
    assert utc_instant(1796594400.25) == "2026-12-06T22:00:00.250000Z"
    assert utc_instant("2026-12-06 22:09:00") == "2026-12-06T22:09:00.000000Z"  # UTC
    assert utc_instant("yesterday") is None
    assert utc_instant(True) is None
    assert EVENT_RECEIPT_SCHEMA["properties"]["received_at"]["format"] == "date-time"


@pytest.mark.e2e
@needs_targets
def test_an_upgrade_over_a_database_of_the_previous_version(postgres_url, tmp_path):
    """Three loads (the previous version, the upgrade, a new user): each column's type."""
    now = _activities_now()
    sample = next(m["record"] for m in now if m["type"] == "RECORD")
    previous_receipts = copy.deepcopy(EVENT_RECEIPT_SCHEMA)
    previous_receipts["properties"]["received_at"] = {"type": ["string", "null"]}
    old = _as_previous_version(now) + _receipt_messages(
        previous_receipts, "old", "2026-12-05T10:00:00.000000Z"
    )
    new = now + _receipt_messages(EVENT_RECEIPT_SCHEMA, "new", "2026-12-06T22:09:00.500000Z")
    schema = f"upgrade_{uuid.uuid4().hex[:10]}"
    fresh = f"fresh_{uuid.uuid4().hex[:10]}"
    with connect(postgres_url) as conn:
        try:
            _postgres(old, postgres_url, schema, tmp_path)
            assert _column_type(conn, schema, "event_receipts", "received_at") == "text"
            _postgres(new, postgres_url, schema, tmp_path)  # the upgrade: loads, alters nothing
            _postgres(new, postgres_url, fresh, tmp_path)  # a new user
            for where in (schema, fresh):
                assert _column_type(conn, where, "activities", "start_date_local") == (
                    "timestamp without time zone"
                )
                stored = conn.execute(
                    f'SELECT start_date_local::text FROM "{where}".activities WHERE id = %s',
                    (sample["id"],),
                ).fetchone()[0]
                assert stored == sample["start_date_local"].replace("T", " ")
            # received_at: text where the previous version created it, a timestamp for a
            # new user; the old and the new texts read as the same kind of UTC timestamp.
            assert _column_type(conn, schema, "event_receipts", "received_at") == "text"
            assert _column_type(conn, fresh, "event_receipts", "received_at") == (
                "timestamp without time zone"
            )
            rows = dict(
                conn.execute(
                    f'SELECT event_key, received_at::timestamp::text FROM "{schema}".event_receipts'
                ).fetchall()
            )
            assert rows == {"old": "2026-12-05 10:00:00", "new": "2026-12-06 22:09:00.5"}
            typed = conn.execute(
                f'SELECT received_at::text FROM "{fresh}".event_receipts'
            ).fetchone()[0]
            assert typed == "2026-12-06 22:09:00.5"
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'DROP SCHEMA IF EXISTS "{fresh}" CASCADE')


def _queued_event(object_id: int, received_at: float) -> StoredEvent:
    document = {
        "aspect_type": "create",
        "event_time": 1_796_000_000 + object_id,
        "object_id": object_id,
        "object_type": "activity",
        "owner_id": 4242,
        "subscription_id": 7,
        "updates": {},
    }
    return StoredEvent(event_from_dict(document), received_at)


def test_the_receivers_postgres_queue_keeps_instants_and_converts_an_old_one(postgres_url):
    """The queue's times are timestamptz; a queue of epoch doubles is converted in place."""
    dsn = to_libpq(postgres_url)
    old, fresh = f"queue_old_{uuid.uuid4().hex[:8]}", f"queue_new_{uuid.uuid4().hex[:8]}"
    received = [1_796_000_000.25, 1_796_000_100.5, 1_796_000_050.75]  # not in order
    events = [_queued_event(i, at) for i, at in enumerate(received, start=1)]
    with connect(postgres_url) as conn:
        try:
            # The table as versions before issue 25 created it, with two events waiting and
            # one acknowledged.
            conn.execute(f'CREATE SCHEMA "{old}"')
            conn.execute(
                f'CREATE TABLE "{old}".events (key text PRIMARY KEY CHECK (length(key) = 64),'
                " received_at double precision NOT NULL, event text NOT NULL,"
                " owner_id bigint NOT NULL, object_type text NOT NULL, object_id bigint NOT NULL,"
                " acked_at double precision)"
            )
            for stored in events:
                conn.execute(
                    f'INSERT INTO "{old}".events VALUES (%s, %s, %s, 4242, %s, %s, %s)',
                    (
                        stored.key,
                        stored.received_at,
                        json.dumps(stored.event.as_dict()),
                        "activity",
                        stored.event.object_id,
                        1_796_000_200.0 if stored.event.object_id == 3 else None,
                    ),
                )
            for schema in (old, fresh):
                store = PostgresStore(dsn, schema)
                store.setup()
                store.setup()  # a second start finds it converted
                assert [
                    _column_type(conn, schema, "events", c) for c in ("received_at", "acked_at")
                ] == ["timestamp with time zone"] * 2
                store.close()
            # The converted queue: the same events waiting, oldest first, at the same times.
            store = PostgresStore(dsn, old)
            waiting = store.pending(10)
            assert [s.key for s in waiting] == [events[0].key, events[1].key]
            assert [s.received_at for s in waiting] == [received[0], received[1]]
            assert store.counts() == {"pending": 2, "acknowledged": 1}
            (acked,) = conn.execute(
                f'SELECT acked_at FROM "{old}".events WHERE acked_at IS NOT NULL'
            ).fetchone()
            assert acked == datetime.datetime(2026, 11, 30, 0, 56, 40, tzinfo=datetime.UTC)
            # New events go in and out as instants, to the microsecond.
            late = _queued_event(9, 1_796_000_300.123456)
            assert store.insert([late]) == 1
            assert store.pending(10)[-1].received_at == late.received_at
            assert store.ack([late.key]) == 1
            store.close()
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{old}" CASCADE')
            conn.execute(f'DROP SCHEMA IF EXISTS "{fresh}" CASCADE')
