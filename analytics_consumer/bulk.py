"""Set-based SQL for a batch: hundreds of rows per statement, on SQLite and PostgreSQL.

A batch writes hundreds of rows to each table; one round trip per row would cost far more
than the work itself. Each database gets its fastest bulk form, behind one interface:

* PostgreSQL: one statement per table whose rows arrive as one array per column, read with
  `unnest` (`INSERT ... SELECT * FROM unnest(...) ON CONFLICT ...`): a single round trip;
* SQLite (in-process, no round trips): the driver's `executemany`, a C loop over one
  prepared statement, which measured faster than reading rows out of a JSON parameter;
  where rows must come back (`RETURNING`), the keys arrive as one JSON array (`json_each`).

Identifiers in the SQL built here and in `flush` are constants of this package; every value
is a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine
from sqlmodel import Session

SqlType = Literal["text", "bigint"]
Row = tuple[Any, ...]
Columns = Sequence[tuple[str, SqlType]]

_PG_ARRAYS: dict[SqlType, str] = {"text": "varchar[]", "bigint": "bigint[]"}


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two databases, in one place."""

    name: Literal["sqlite", "postgresql"]

    @classmethod
    def of(cls, engine: Engine) -> Dialect:
        name = engine.dialect.name
        if name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {name!r}: use SQLite or PostgreSQL")
        return cls(name)  # type: ignore[arg-type]

    def insert(
        self, session: Session, table: str, columns: Columns, rows: Sequence[Row], tail: str
    ) -> None:
        """`INSERT INTO table (columns) <rows> tail` in one statement (`tail`: ON CONFLICT...)."""
        names = ", ".join(name for name, _ in columns)
        connection = session.connection()
        if self.name == "sqlite":
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO {table} ({names}) VALUES ({marks}) {tail}"  # noqa: S608
            connection.exec_driver_sql(sql, list(rows))
            return
        arrays = ", ".join(f"%s::{_PG_ARRAYS[kind]}" for _, kind in columns)
        sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) AS r({names}) {tail}"  # noqa: S608
        connection.exec_driver_sql(
            sql, tuple([row[i] for row in rows] for i in range(len(columns)))
        )

    def insert_keys(
        self, session: Session, table: str, key: str, keys: Sequence[str], fixed: dict[str, Any]
    ) -> set[str]:
        """Insert one row per key (plus `fixed` columns), skipping existing ones; returns the new keys."""
        columns = ", ".join([*fixed, key])
        mark = "?" if self.name == "sqlite" else "%s"
        values = ", ".join([mark] * len(fixed))
        keys_param: str | list[str]
        if self.name == "sqlite":
            source = f"SELECT {values}, value FROM json_each(?)"  # noqa: S608
            keys_param = json.dumps(list(keys))
        else:
            source = f"SELECT {values}, k FROM unnest(%s::varchar[]) AS r(k)"  # noqa: S608
            keys_param = list(keys)
        sql = f"INSERT INTO {table} ({columns}) {source} WHERE true ON CONFLICT DO NOTHING RETURNING {key}"
        params = (*[self._value(v) for v in fixed.values()], keys_param)
        return set(session.connection().exec_driver_sql(sql, params).scalars())

    def least(self, first: str, second: str) -> str:
        """The smaller of two nullable values, ignoring NULL (NULL only if both are)."""
        if self.name == "sqlite":
            return f"coalesce(min({first}, {second}), {first}, {second})"
        return f"LEAST({first}, {second})"

    def _value(self, value: Any) -> Any:
        """A parameter as SQLAlchemy would store it; datetimes are naive UTC."""
        if isinstance(value, datetime):
            naive = value.astimezone(UTC).replace(tzinfo=None)
            return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.name == "sqlite" else naive
        return value
