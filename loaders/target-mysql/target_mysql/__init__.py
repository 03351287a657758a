"""A thin Singer target for MySQL and MariaDB, built on the Meltano Singer SDK.

The package index's MySQL targets do not install on a current Python (they pin
singer-sdk 0.30 and Python 3.10/3.11.0), so this one stays small: the SDK's SQL classes
do the Singer side, SQLAlchemy's MySQL dialect the SQL, and only what MySQL needs
differently is written here (upsert, column types, utf8mb4).
"""

from target_mysql.target import TargetMySQL

__all__ = ["TargetMySQL"]
