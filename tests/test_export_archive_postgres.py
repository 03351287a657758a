"""An archive import lands in a real PostgreSQL through target-postgres (COPY), typed.

The tap's output is piped into the project's installed target-postgres with the settings
meltano.yml gives it (``use_copy``, record metadata, no validation), as ``meltano run``
would: integer series must arrive as integer arrays (one ``72.0`` fails the COPY), and a
re-import must leave the tables as they were.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from devtools.postgres import connect
from tests.export_fixtures import Activity, gpx_bytes, samples, standard_activities, start_at
from tests.export_fixtures import write_archive as write_test_archive
from tests.support import load_into_postgres, run_tap

TARGET = (
    Path(__file__).resolve().parents[1]
    / ".meltano/loaders/target-postgres/venv/bin/target-postgres"
)


def _load(messages: list[dict], postgres_url: str, schema: str, tmp_path: Path) -> None:
    load_into_postgres(messages, postgres_url, schema, tmp_path, batch_size_rows=50)


@pytest.mark.skipif(not TARGET.exists(), reason="target-postgres is not installed (make setup)")
def test_an_archive_lands_in_postgres_typed_and_a_re_import_changes_nothing(postgres_url, tmp_path):
    schema = f"archive_{uuid.uuid4().hex[:10]}"
    # A GPX whose heart rate is written as 72.0: an integer series all the same.
    text = (
        gpx_bytes(start_at(8), samples(5)).decode().replace("<gpxtpx:hr>110<", "<gpxtpx:hr>110.0<")
    )
    assert "<gpxtpx:hr>110.0</gpxtpx:hr>" in text
    activities = [
        *standard_activities(),
        Activity(108, start_at(8), filename="activities/108.gpx", content=text.encode()),
    ]
    archive = write_test_archive(tmp_path / "export_4242.zip", activities)
    config = {
        "export_archive_path": str(archive),
        "token_store_path": str(tmp_path / "store" / "tokens.json"),
    }
    first = run_tap(config)
    _load(first.messages, postgres_url, schema, tmp_path)
    with connect(postgres_url) as conn:
        try:
            types = dict(
                conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = 'export_tracks'",
                    (schema,),
                ).fetchall()
            )
            assert types["heartrate"] == "ARRAY"
            element = conn.execute(
                "SELECT pg_typeof(heartrate[1])::text, heartrate[1:3], time[1:3] "
                f'FROM "{schema}".export_tracks WHERE activity_id = 108'
            ).fetchone()
            assert element[0] in {"bigint", "integer"}
            assert element[1] == [110, 111, 112]
            assert element[2] == [0, 1, 2]
            nulls = conn.execute(
                f'SELECT heartrate[4], heartrate[5] FROM "{schema}".export_tracks '
                "WHERE activity_id = 101"
            ).fetchone()
            assert nulls == (None, None)  # FIT invalid values
            counts = {
                table: conn.execute(f'SELECT count(*) FROM "{schema}".{table}').fetchone()[0]
                for table in ("export_activities", "export_tracks", "export_gear")
            }
            assert counts == {"export_activities": 6, "export_tracks": 5, "export_gear": 2}
            description = conn.execute(
                f'SELECT description FROM "{schema}".export_activities WHERE id = 102'
            ).fetchone()[0]
            assert description.count("\n") == 2
            # The same archive again, with the first run's state: the tables do not change.
            before = conn.execute(
                f'SELECT max(_sdc_received_at) FROM "{schema}".export_activities'
            ).fetchone()[0]
            again = run_tap(config, state=first.final_state)
            assert not [m for m in again.messages if m["type"] == "RECORD"]
            _load(again.messages, postgres_url, schema, tmp_path)
            after = conn.execute(
                f'SELECT count(*), max(_sdc_received_at) FROM "{schema}".export_activities'
            ).fetchone()
            assert after == (6, before)
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
