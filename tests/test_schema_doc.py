"""docs/schema.md is generated from the declared schemas and matches what PostgreSQL holds.

When a stream's schema changes, the first test fails and says to run `make schema-doc`.
The second loads one record per stream through the project's installed target-postgres
into a real PostgreSQL and compares every column's type with the page's, so the page is
what a user finds in the database, not only what the generator believes. The third loads
a table as the previous version did and again after a field is declared: what the page
says an upgrade does.

The page's last section, the dbt models, comes from transform/models/*/schema.yml. Here,
without a database: the section is what the generator writes, every column a model's SQL
selects is documented (and no other), with a PostgreSQL type and a meaning, and no
timestamp leaves its zone unsaid. That the types are what a build holds is the extras'
tests/test_models_all_sources.py (it builds the models on PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import re
import typing as t
import uuid
from pathlib import Path

import pytest

from devtools import schema_doc
from devtools.postgres import connect
from tap_strava.conform import conform_to_schema
from tap_strava.schemas.details import ZONE_SCHEMA
from tests.support import load_into_postgres

TARGET = schema_doc.TARGET_PYTHON.parent / "target-postgres"
needs_target = pytest.mark.skipif(
    not TARGET.exists(), reason="target-postgres is not installed (make setup)"
)


def _run_target(
    messages: list[dict[str, t.Any]], postgres_url: str, schema: str, tmp: Path
) -> None:
    """Pipe Singer messages into the project's target-postgres, configured as meltano.yml."""
    load_into_postgres(messages, postgres_url, schema, tmp)


ANALYTICS = "## Analytics models (dbt)"


def _page_types(page: str) -> dict[str, dict[str, str]]:
    """Per stream on the page: column -> the PostgreSQL type the page gives it."""
    tables: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in page.splitlines():
        if line.startswith(ANALYTICS):
            break
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
    _run_target(messages, postgres_url, schema, tmp_path)
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


@needs_target
def test_an_upgrade_that_declares_a_field_adds_a_column(postgres_url, tmp_path):
    """What docs/schema.md says an upgrade does: a new column, null in the older rows.

    A zone answer with ``max`` is conformed by the schema before ``max`` was declared (it
    lands in ``_unknown_fields``) and loaded; then one by today's schema into the same table.
    """
    old_schema = json.loads(json.dumps(ZONE_SCHEMA))
    del old_schema["properties"]["max"]
    logger = logging.getLogger("test")

    def zone(activity_id: int, schema_: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        answer = {"type": "heartrate", "score": 12.0, "max": 7, "sensor_based": True}
        record = {
            **answer,
            "athlete_id": 1,
            "activity_id": activity_id,
            "activity_start_date": "2026-12-04T18:13:34Z",
        }
        conform_to_schema(record, schema_, logger=logger, label="activity_zones")
        return [
            {
                "type": "SCHEMA",
                "stream": "activity_zones",
                "schema": schema_,
                "key_properties": ["activity_id", "type"],
            },
            {"type": "RECORD", "stream": "activity_zones", "record": record},
        ]

    schema = f"schema_up_{uuid.uuid4().hex[:10]}"
    _run_target(zone(1, old_schema), postgres_url, schema, tmp_path)
    _run_target(zone(2, ZONE_SCHEMA), postgres_url, schema, tmp_path)
    with connect(postgres_url) as conn:
        rows = conn.execute(
            f'SELECT activity_id, "max", _unknown_fields FROM "{schema}".activity_zones '
            "ORDER BY activity_id"
        ).fetchall()
        column = conn.execute(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = 'activity_zones' AND a.attname = 'max'",
            (schema,),
        ).fetchone()
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    assert rows == [(1, None, {"max": 7}), (2, 7, None)]
    assert column == ("bigint",)


# -- the analytics models (dbt): cheap, no database -------------------------------------

#: The PostgreSQL types a model column may declare, as information_schema.columns names them.
POSTGRES_TYPES = {
    "bigint",
    "integer",
    "double precision",
    "numeric",
    "text",
    "boolean",
    "date",
    "timestamp with time zone",
    "timestamp without time zone",
    "jsonb",
}


def selected_columns(sql: str) -> list[str]:
    """The columns a model's final SELECT names, read from its SQL text (no dbt, no parse).

    The final SELECT is the one at the start of a line (a CTE's is indented); a model with
    more than one (stg_gear's branches, a union in a loop) must name the same columns in
    each. Each item is ``expr AS name`` or a bare ``[alias.]name``; anything else fails, so
    a model written another way changes this reader, not the check.
    """
    text = re.sub(r"\{#.*?#\}", "", sql, flags=re.S)
    text = re.sub(r"--[^\n]*", "", text)
    text = re.sub(r"\{\{\s*adapter\.quote\('(\w+)'\)\s*\}\}", r"\1", text)
    text = re.sub(r"\{\{.*?\}\}", "x", text, flags=re.S)
    lists = []
    for start in re.finditer(r"^select\b", text, flags=re.M):
        body = text[start.end() :]
        end = re.search(r"^(?:from|where|group|\{%)", body, flags=re.M)
        body = body[: end.start()] if end else body
        items, depth, current = [], 0, ""
        for char in body:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == "," and depth == 0:
                items.append(current)
                current = ""
            else:
                current += char
        items.append(current)
        names = []
        for item in (" ".join(i.split()) for i in items):
            named = re.search(r"\bas (\w+)$", item) or re.fullmatch(r"(?:\w+\.)?(\w+)", item)
            assert named, f"cannot tell the name of the selected column {item!r}"
            names.append(named.group(1))
        lists.append(names)
    assert lists, "no SELECT at the start of a line"
    assert all(names == lists[0] for names in lists), f"the SELECTs differ: {lists}"
    return lists[0]


def test_the_analytics_section_is_generated_from_schema_yml():
    """The page's last section is the generator's, even without target-postgres."""
    page = schema_doc.PAGE.read_text(encoding="utf-8")
    assert page.endswith(schema_doc.analytics_section()), (
        "docs/schema.md's 'Analytics models (dbt)' differs from transform/models/*/schema.yml: "
        "run `make schema-doc` and commit docs/schema.md"
    )


def test_every_column_a_model_selects_is_documented():
    """schema.yml lists each model's columns, in the order its SQL selects them."""
    models = schema_doc.dbt_models()
    assert {model["name"] for _, model in models} == {
        path.stem for path in schema_doc.MODELS_DIR.glob("*/*.sql")
    }
    for layer, model in models:
        path = schema_doc.MODELS_DIR / layer / f"{model['name']}.sql"
        documented = [column["name"] for column in model.get("columns") or []]
        selected = selected_columns(path.read_text(encoding="utf-8"))
        assert documented == selected, (
            f"{layer}/schema.yml, {model['name']}: document every column the SQL selects, in "
            f"its order; undocumented {sorted(set(selected) - set(documented))}, not selected "
            f"{sorted(set(documented) - set(selected))}"
        )


def test_every_model_column_has_a_type_a_meaning_and_no_ambiguous_zone():
    problems = []
    for layer, model in schema_doc.dbt_models():
        where = f"{layer}/schema.yml, {model['name']}"
        if not str(model.get("description", "")).strip():
            problems.append(f"{where}: no description")
        for column in model.get("columns") or []:
            name, kind = f"{where}.{column['name']}", column.get("data_type")
            meaning = " ".join(str(column.get("description", "")).split()).lower()
            if kind not in POSTGRES_TYPES:
                problems.append(f"{name}: data_type {kind!r} is none of {sorted(POSTGRES_TYPES)}")
            if not meaning:
                problems.append(f"{name}: no description")
            if kind == "timestamp with time zone" and "instant" not in meaning:
                problems.append(f"{name}: a timestamptz whose description does not say instant")
            if kind == "timestamp without time zone" and "local wall time" not in meaning:
                problems.append(f"{name}: a timestamp without zone not called a local wall time")
            if kind == "date" and "local" not in meaning:
                problems.append(f"{name}: a date that does not say it is the local calendar's")
    assert not problems, "\n".join(problems)
