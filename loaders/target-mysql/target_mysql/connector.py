"""How JSON Schema maps to MySQL/MariaDB tables, and how the connection is made."""

from __future__ import annotations

import functools
import typing as t

import sqlalchemy as sa
from singer_sdk.helpers._util import dump_json
from singer_sdk.sql import SQLConnector
from singer_sdk.sql.connector import FullyQualifiedName, JSONSchemaToSQL
from sqlalchemy.dialects import mysql

#: Every table and the schema (a MySQL "database") are created in this character set:
#: MySQL's older `utf8` holds no emoji, and names on Strava often have some.
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_unicode_ci"
#: Key columns compare byte for byte, so that keys differing only in case or accents
#: stay distinct rows (the case-insensitive default would merge them on upsert).
KEY_COLLATION = "utf8mb4_bin"
#: A string key needs a bounded length to be indexed (TEXT cannot be a primary key).
KEY_VARCHAR_LENGTH = 255


class _JSONOrNull(mysql.JSON):
    """A JSON column that stores Python None as SQL NULL, not as the JSON text 'null'."""

    def __init__(self) -> None:
        super().__init__(none_as_null=True)


def _json_column(_schema: dict) -> sa.types.TypeEngine:
    return _JSONOrNull()


class MySQLJSONSchemaToSQL(JSONSchemaToSQL):
    """The SDK's mapping, with the types MySQL needs.

    The SDK's defaults do not suit MySQL: ``DECIMAL`` without precision is
    ``DECIMAL(10,0)`` there (every fraction lost), ``INTEGER`` is 32 bits (Strava's ids
    are larger), ``VARCHAR`` needs a length, and objects and arrays are better stored as
    ``JSON`` than as text.
    """

    def __init__(self, *, max_varchar_length: int | None = None) -> None:
        """Register MySQL's types over the SDK's defaults."""
        super().__init__(max_varchar_length=max_varchar_length)
        self.register_type_handler("integer", mysql.BIGINT)
        self.register_type_handler("number", mysql.DOUBLE)
        self.register_type_handler("boolean", mysql.BOOLEAN)
        # A JSON null would be stored as the text 'null'; SQL NULL is what readers expect.
        self.register_type_handler("object", _json_column)
        self.register_type_handler("array", _json_column)
        # Microseconds kept (Singer's _sdc_* timestamps have them; Strava's do not).
        self.register_format_handler("date-time", lambda _: mysql.DATETIME(fsp=6))
        self.register_format_handler("time", lambda _: mysql.TIME(fsp=6))
        self.register_format_handler("uuid", lambda _: mysql.CHAR(36))
        # A property without a type may hold anything: JSON keeps any value intact.
        self.fallback_type = _JSONOrNull

    def handle_raw_string(self, schema: dict) -> sa.types.TypeEngine:
        """Short bounded strings as VARCHAR, anything else as TEXT (up to 16 MB)."""
        max_length = schema.get("maxLength")
        if isinstance(max_length, int) and max_length <= KEY_VARCHAR_LENGTH:
            return mysql.VARCHAR(max_length)
        return mysql.MEDIUMTEXT()

    def handle_multiple_types(self, types: t.Sequence[str]) -> sa.types.TypeEngine:
        """A property of several types (``["integer", "string"]``) keeps its JSON form."""
        _ = types
        return _JSONOrNull()


class MySQLConnector(SQLConnector):
    """SQLAlchemy's MySQL dialect with PyMySQL, utf8mb4 everywhere, no type changes."""

    allow_column_add = True
    allow_column_rename = False
    allow_column_alter = False
    allow_merge_upsert = True
    allow_temp_tables = False
    jsonschema_to_sql_converter = MySQLJSONSchemaToSQL

    def get_sqlalchemy_url(self, config: dict[str, t.Any]) -> str:
        """``sqlalchemy_url`` if given, else one built from host, port, user and so on."""
        if config.get("sqlalchemy_url"):
            return str(config["sqlalchemy_url"])
        url = sa.engine.URL.create(
            drivername="mysql+pymysql",
            username=config.get("user") or "root",
            password=config.get("password") or None,
            host=config.get("host") or "127.0.0.1",
            port=int(config.get("port") or 3306),
            database=config.get("database") or None,
            query={"charset": CHARSET},
        )
        return url.render_as_string(hide_password=False)

    def create_engine(self) -> sa.Engine:
        """An engine whose connections talk utf8mb4 whatever the URL or server default."""
        return sa.create_engine(
            self.sqlalchemy_url,
            echo=False,
            pool_pre_ping=True,
            json_serializer=self.serialize_json,
            json_deserializer=self.deserialize_json,
            connect_args={"charset": CHARSET},
        )

    def serialize_json(self, obj: object) -> str:
        """JSON with the characters themselves, not escapes, for people reading the SQL."""
        return dump_json(obj, ensure_ascii=False)

    def create_schema(self, schema_name: str) -> None:
        """A MySQL schema is a database: create it in utf8mb4 (servers may default to latin1)."""
        quoted = self._dialect.identifier_preparer.quote(schema_name)
        with self._connect() as conn, conn.begin():
            conn.execute(
                sa.text(
                    f"CREATE DATABASE IF NOT EXISTS {quoted} "
                    f"CHARACTER SET {CHARSET} COLLATE {COLLATION}"
                )
            )

    def create_empty_table(
        self,
        full_table_name: str | FullyQualifiedName,
        schema: dict,
        primary_keys: t.Sequence[str] | None = None,
        partition_keys: list[str] | None = None,
        as_temp_table: bool = False,
    ) -> None:
        """A utf8mb4 InnoDB table whose key columns are indexable and NOT NULL.

        The SDK's version would give string keys a TEXT type, which MySQL cannot use in
        a primary key, and would use the server's default character set.
        """
        if as_temp_table:
            msg = "Temporary tables are not supported."
            raise NotImplementedError(msg)
        _ = partition_keys
        _, schema_name, table_name = self.parse_full_table_name(full_table_name)
        properties: dict = schema.get("properties") or {}
        if not properties:
            msg = f"Schema for '{full_table_name}' does not define properties: {schema}"
            raise RuntimeError(msg)
        keys = [key for key in (primary_keys or []) if key in properties]
        columns = [
            sa.Column(
                name,
                self._key_type(spec) if name in keys else self.to_sql_type(spec),
                nullable=name not in keys,
                # SQLAlchemy makes a lone integer key AUTO_INCREMENT, and MySQL then
                # replaces an inserted 0 by the next number: the record with key 0
                # would overwrite another row. Keys are the source's, never generated.
                autoincrement=False,
            )
            for name, spec in properties.items()
        ]
        constraints = [sa.PrimaryKeyConstraint(*keys)] if keys else []
        table = sa.Table(
            table_name,
            sa.MetaData(schema=schema_name),
            *columns,
            *constraints,
            mysql_engine="InnoDB",
            mysql_charset=CHARSET,
            mysql_collate=COLLATION,
        )
        table.create(self._engine)

    def _key_type(self, spec: dict) -> sa.types.TypeEngine:
        """The column type of a key property: text types become a bounded VARCHAR."""
        sql_type = self.to_sql_type(spec)
        if isinstance(sql_type, (sa.types.Text, sa.types.JSON)) or (
            isinstance(sql_type, sa.types.String) and not sql_type.length
        ):
            return mysql.VARCHAR(KEY_VARCHAR_LENGTH, collation=KEY_COLLATION)
        if isinstance(sql_type, sa.types.String):
            return mysql.VARCHAR(sql_type.length, collation=KEY_COLLATION)
        return sql_type

    def prepare_column(
        self,
        full_table_name: str | FullyQualifiedName,
        column_name: str,
        sql_type: sa.types.TypeEngine,
    ) -> None:
        """Add a new column; never change an existing column's type.

        MariaDB reports JSON columns back as LONGTEXT and BOOLEAN as TINYINT, so the
        SDK's type comparison would find a "change" on every run and refuse it.
        A real type change is a schema change for the table's owner to make.
        The table's columns are read once per run, not once per property (the SDK
        reflects the whole table for each of the ~60 properties of an activity).
        """
        columns = self._columns_seen.get(str(full_table_name))
        if columns is None:
            columns = set(self.get_table_columns(full_table_name))
            self._columns_seen[str(full_table_name)] = columns
        if column_name not in columns:
            self._create_empty_column(
                full_table_name=full_table_name,
                column_name=column_name,
                sql_type=sql_type,
            )
            columns.add(column_name)

    @functools.cached_property
    def _columns_seen(self) -> dict[str, set[str]]:
        """Column names of the tables prepared in this run, by full table name."""
        return {}
