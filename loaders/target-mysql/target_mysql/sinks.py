"""The sink: batches of records upserted with INSERT ... ON DUPLICATE KEY UPDATE."""

from __future__ import annotations

import datetime
import typing as t

import sqlalchemy as sa
from singer_sdk.sql import SQLSink
from sqlalchemy.dialects import mysql

from target_mysql.connector import MySQLConnector


def _to_utc_naive(value: object) -> object:
    """MySQL's DATETIME has no time zone: store UTC, as target-postgres does."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


class MySQLSink(SQLSink[MySQLConnector]):
    """Writes each batch in one transaction; a stream with key properties is upserted.

    Upserting makes a replayed batch (a re-run after a crash, a look-back window read
    again) update the rows it already wrote instead of duplicating or failing on them.
    """

    connector_class = MySQLConnector

    def _table(self, schema: dict) -> sa.Table:
        """The table as SQLAlchemy sees it, with real types so JSON values serialize."""
        conformed = self.conform_schema(schema)
        _, schema_name, table_name = self.connector.parse_full_table_name(self.full_table_name)
        return sa.Table(
            table_name,
            sa.MetaData(),
            *[
                sa.Column(name, self.connector.to_sql_type(spec))
                for name, spec in conformed["properties"].items()
            ],
            schema=schema_name,
        )

    def bulk_insert_records(
        self,
        full_table_name: t.Any,
        schema: dict,
        records: t.Iterable[dict[str, t.Any]],
    ) -> int | None:
        """Insert the batch, updating rows whose key already exists."""
        _ = full_table_name  # the table is this sink's own (see _table)
        table = self._table(schema)
        names = [column.name for column in table.columns]
        rows = [
            {name: _to_utc_naive(record.get(name)) for name in names}
            for record in (self.conform_record(r) for r in records)
        ]
        if not rows:
            return 0
        statement = mysql.insert(table)
        keys = set(self.key_properties)
        if keys:
            # A table of keys only still needs an assignment to be an upsert.
            updated = [name for name in names if name not in keys] or names[:1]
            statement = statement.on_duplicate_key_update(
                {name: statement.inserted[name] for name in updated}
            )
        # The SDK's own sinks write through this (private) connection helper too.
        with self.connector._connect() as conn, conn.begin():
            result = conn.execute(statement, rows)
        return result.rowcount
