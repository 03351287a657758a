"""The ``target-mysql`` command: settings and the Singer entry point."""

from __future__ import annotations

from singer_sdk import SQLTarget
from singer_sdk import typing as th

from target_mysql.sinks import MySQLSink


class TargetMySQL(SQLTarget):
    """Singer target for MySQL 8 and MariaDB 10.5+ (utf8mb4, upsert on key properties)."""

    name = "target-mysql"
    default_sink_class = MySQLSink

    config_jsonschema = th.PropertiesList(
        th.Property(
            "sqlalchemy_url",
            th.StringType,
            secret=True,
            title="SQLAlchemy URL",
            description="Full URL (mysql+pymysql://user:password@host:port/database); "
            "overrides host, port, user, password and database.",
        ),
        th.Property("host", th.StringType, default="127.0.0.1", title="Host"),
        th.Property("port", th.IntegerType, default=3306, title="Port"),
        th.Property("user", th.StringType, default="root", title="User"),
        th.Property("password", th.StringType, secret=True, title="Password"),
        th.Property(
            "database",
            th.StringType,
            title="Database",
            description="Database to connect to; tables go there unless "
            "default_target_schema names another one (created if missing).",
        ),
    ).to_dict()


if __name__ == "__main__":
    TargetMySQL.cli()
