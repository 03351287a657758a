"""docs/schema.md is generated from the declared schemas and matches what PostgreSQL holds.

When a stream's schema changes, the first test fails and says to run `make schema-doc`.
The second loads one record per stream through the project's installed target-postgres
into a real PostgreSQL and compares every column's type with the page's, so the page is
what a user finds in the database, not only what the generator believes.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
import uuid

import pytest

from devtools import schema_doc
from devtools.postgres import connect

TARGET = schema_doc.TARGET_PYTHON.parent / "target-postgres"
needs_target = pytest.mark.skipif(
    not TARGET.exists(), reason="target-postgres is not installed (make setup)"
)


def _page_types(page: str) -> dict[str, dict[str, str]]:
    """Per stream on the page: column -> the PostgreSQL type the page gives it."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in page.splitlines():
        if line.startswith("### "):
            current = tables.setdefault(line[4:].strip(), {})
        row = re.match(r"\| `([^`.]+)`(?: \(key\))? \| [^|]+ \| ([^|(][^|]*) \|", line)
        if row:
            current[row.group(1)] = row.group(2).strip()
    return tables


@needs_target
def test_the_schema_page_is_generated_from_the_schemas():
    assert schema_doc.PAGE.read_text(encoding="utf-8") == schema_doc.generated_page(), (
        "docs/schema.md differs from the declared schemas: run `make schema-doc` "
        "(python -m devtools.schema_doc) and commit docs/schema.md"
    )


def _value(spec: t.Mapping[str, t.Any]) -> t.Any:
    types = spec.get("type", [])
    types = [types] if isinstance(types, str) else types
    if spec.get("format") == "date-time":
        return "2026-12-04T18:13:34Z"
    if spec.get("format") == "date":
        return "2026-12-04"
    if "integer" in types:
        return 1
    return "x"


@needs_target
def test_the_page_gives_the_types_postgresql_holds(postgres_url, tmp_path):
    streams = [stream for _, _, group in schema_doc.MODES for stream in group]
    messages: list[dict[str, t.Any]] = []
    for stream in streams:
        properties = stream.schema["properties"]
        keys = [*stream.schema.get("required", []), *(stream.primary_keys or ())]
        record = {key: _value(properties[key]) for key in keys}
        messages.append(
            {
                "type": "SCHEMA",
                "stream": stream.name,
                "schema": stream.schema,
                "key_properties": list(stream.primary_keys or ()),
            }
        )
        messages.append({"type": "RECORD", "stream": stream.name, "record": record})
    schema = f"schema_doc_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(
            {
                "sqlalchemy_url": postgres_url,
                "default_target_schema": schema,
                "add_record_metadata": True,
                "use_copy": True,
                "validate_records": False,
            }
        )
    )
    proc = subprocess.run(
        [str(TARGET), "--config", str(config)],
        input="".join(json.dumps(m) + "\n" for m in messages),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 "
            "AND NOT a.attisdropped AND a.attname NOT LIKE '\\_sdc\\_%%'",
            (schema,),
        ).fetchall()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    database: dict[str, dict[str, str]] = {}
    for table, column, sql_type in rows:
        database.setdefault(table, {})[column] = sql_type
    page = _page_types(schema_doc.PAGE.read_text(encoding="utf-8"))
    assert set(database) == {stream.name for stream in streams}
    for table, columns in database.items():
        assert page[table] == columns, f"docs/schema.md, {table}: run `make schema-doc`"
