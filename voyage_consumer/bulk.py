"""Multi-row `INSERT ... ON CONFLICT ...` straight through the driver, in one round trip.

Why not SQLAlchemy's executemany: profiling a batch of a thousand events showed about 40 %
of its time in SQLAlchemy building and type-processing parameters row by row. Here the
values arrive already in the driver's types and go out as one statement:

* SQLite: `executemany` of one prepared statement, or, to get RETURNING rows back,
  `VALUES (?,?,...),(?,?,...)` with as many rows as fit under its bound-variable limit;
* PostgreSQL: `SELECT ... FROM json_to_recordset(%s::json)`, the rows as one JSON document:
  the SQL text is the same for every batch, and the standard library's C encoder costs
  half the client CPU of psycopg's array dumpers (a 10,000-placeholder VALUES list took
  psycopg longer to convert to `$n` parameters than PostgreSQL took to run it). Money
  travels as its exact decimal text, times as ISO 8601 with their offset.

The encoding of money and times is exactly what `voyage_consumer.models.Money`/`UtcDateTime`
(and SQLAlchemy's `DateTime` on SQLite) read back, so reads keep going through SQLAlchemy.
Table and column names come from the models, never from data; values are always bound.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Dialect, Table
from sqlmodel import Session

MAX_PARAMETERS: Final = 30_000
"""Per statement: under SQLite's 32,766 bound variables and PostgreSQL's 65,535."""

Encode = Callable[[Any], Any]


def _text_money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's own SQLite DATETIME text, in UTC."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _json_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _json_naive_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat()


ENCODERS: Final[dict[str, dict[str, Encode]]] = {
    "sqlite": {"money": _text_money, "time": _sqlite_time, "naive_time": _sqlite_time},
    "postgresql": {"money": _text_money, "time": _json_time, "naive_time": _json_naive_time},
}
"""Per dialect: `money` and `time` for the voyage types, `naive_time` for plain DateTime."""


def dialect_of(session: Session) -> str:
    name = session.get_bind().dialect.name
    if name not in ENCODERS:
        raise NotImplementedError(f"voyage-consumer supports SQLite and PostgreSQL, not {name}")
    return name


def encoders(session: Session) -> dict[str, Encode]:
    """The value encoders of the session's database."""
    return ENCODERS[dialect_of(session)]


def insert_rows(
    *,
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    on_conflict: str,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (values in `columns` order, already encoded) in as few statements as fit.

    `on_conflict` is the clause after `ON CONFLICT` (`(event_id) DO NOTHING`, or
    `(booking_id) DO UPDATE SET ...`); with `returning`, the inserted rows' values of that
    column are returned (rows skipped by DO NOTHING return nothing).
    """
    if not rows:
        return []
    tail = f" ON CONFLICT {on_conflict}" + (f" RETURNING {returning}" if returning else "")
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) "
    connection = session.connection()
    if dialect_of(session) == "postgresql":
        dialect = connection.dialect
        typed = ", ".join(f"{c} {_pg_type(table, c, dialect)}" for c in columns)
        selected = ", ".join(columns)
        sql = f"{head}SELECT {selected} FROM json_to_recordset(%s::json) AS r({typed}){tail}"  # noqa: S608
        document = json.dumps([dict(zip(columns, row, strict=True)) for row in rows])
        result = connection.exec_driver_sql(sql, (document,))
        return [row[0] for row in result] if returning else []
    one_row = "(" + ",".join("?" * len(columns)) + ")"
    if not returning:  # one prepared statement, stepped per row: cheaper than parsing VALUES
        connection.exec_driver_sql(f"{head}VALUES {one_row}{tail}", list(map(tuple, rows)))
        return []
    per_statement = max(1, MAX_PARAMETERS // len(columns))
    returned: list[Any] = []
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        sql = f"{head}VALUES {','.join([one_row] * len(chunk))}{tail}"
        result = connection.exec_driver_sql(sql, tuple(value for row in chunk for value in row))
        returned.extend(row[0] for row in result)
    return returned


@functools.cache
def _pg_type(table: Table, column: str, dialect: Dialect) -> str:
    """The PostgreSQL type of a column (`VARCHAR`, `NUMERIC`, `TIMESTAMP WITH TIME ZONE`)."""
    return str(table.c[column].type.compile(dialect=dialect))


def update_all(columns: Sequence[str], key: Sequence[str]) -> str:
    """The `ON CONFLICT` clause of an upsert: on `key`, overwrite every other column."""
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"({', '.join(key)}) DO UPDATE SET {changed}"
