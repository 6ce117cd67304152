"""Multi-row `INSERT ... ON CONFLICT ...` straight through the driver, for SQLite and PostgreSQL.

Why not SQLAlchemy's executemany: profiling a batch of a thousand events showed a large
share of its time in SQLAlchemy building and type-processing parameters row by row. Here the
values arrive already in the driver's types (see `Encoders`) and go out as one statement
(the measurements behind each choice are in docs/performance.md):

* SQLite (in-process, no round trips): `executemany` of one prepared statement, a C loop;
  to get rows back (`RETURNING`), `VALUES (?,?,...),(?,?,...)`, which measured faster than
  reading whole rows out of one JSON parameter with `json_each`. Its row count is cut into
  a fixed ladder of sizes (`ladder`), and `IN` lists are padded to one (`where_in`), so a
  table's statements have a few texts whatever the batch sizes: the sqlite3 driver keeps a
  prepared statement per text, 128 per connection, and a text per size had a steady stream
  prepare and evict ever larger statements, the process's memory climbing with the events
  handled (issue 22; `benchmarks/soak.py`);
* PostgreSQL: `SELECT ... FROM json_to_recordset(%s::json)`, all rows as one JSON document,
  one round trip whatever the batch size. The SQL text is the same for every batch (psycopg
  rewrites each `%s` to `$n` in Python: a 10,000-placeholder VALUES list took longer to
  convert than PostgreSQL took to run it), and the standard library's C encoder costs less
  client CPU than psycopg's array dumpers for the same rows sent as one array per column
  through `unnest`.

Reads keep going through SQLAlchemy, whose column types decode what `Encoders` wrote: money
as exact decimal text, times in UTC. Table and column names come from the models (never
from data) and every value is bound.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec
from sqlalchemy import ARRAY, ColumnElement, Engine, String, Table, any_, bindparam
from sqlalchemy import Dialect as SqlDialect
from sqlmodel import Session

Dialect = Literal["sqlite", "postgresql"]

MAX_PARAMETERS: Final = 30_000
"""Bound values per SQLite statement: under its limit of 32,766."""

MAX_ROWS: Final = 1024
"""Rows per multi-row `VALUES` statement on SQLite, at most (fewer for wide tables)."""

IN_CHUNK: Final = 1024
"""Values per `IN (...)` list on SQLite (`where_in`): a power of two, as each list is padded."""


def dialect_of(bind: Session | Engine) -> Dialect:
    """The database behind `bind`; anything but SQLite and PostgreSQL is refused here, once."""
    name = (bind.get_bind() if isinstance(bind, Session) else bind).dialect.name
    if name == "sqlite":
        return "sqlite"
    if name == "postgresql":
        return "postgresql"
    raise NotImplementedError(f"the consumers support SQLite and PostgreSQL, not {name}")


@dataclass(frozen=True, slots=True)
class Encoders:
    """How values of each column type are passed to `insert_rows` on one database.

    Callers encode only the columns that need it, when they build a row: applying a
    function to every value of every row would cost more than the insert saves.
    """

    decimal: Callable[[Decimal | None], str | None]
    """Exact decimal text, for NUMERIC on PostgreSQL and a text column on SQLite (a NUMERIC
    column there would turn it into a binary float), as `common.columns.Money` is."""
    time: Callable[[datetime | None], str | None]
    """An aware datetime for `DateTime(timezone=True)` columns."""
    naive_time: Callable[[datetime | None], str | None]
    """An aware datetime for plain `DateTime` columns, which hold naive UTC."""


def _decimal(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's own SQLite DATETIME text, in UTC (what its `DateTime` reads back)."""
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _iso_time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _iso_naive_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None).isoformat()


_ENCODERS: Final[dict[Dialect, Encoders]] = {
    "sqlite": Encoders(_decimal, _sqlite_time, _sqlite_time),
    "postgresql": Encoders(_decimal, _iso_time, _iso_naive_time),
}


def encoders(session: Session) -> Encoders:
    """The value encoders of the session's database."""
    return _ENCODERS[dialect_of(session)]


_JSON: Final = msgspec.json.Encoder().encode


def insert_rows(
    *,
    session: Session,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    on_conflict: str | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (values in `columns` order, encoded) in the session's transaction.

    `on_conflict` is the clause after `ON CONFLICT`: `DO NOTHING`, `(key) DO NOTHING`, or an
    upsert such as `update_all(...)`; without it a duplicate key raises. With `returning`
    (a column name), the values of that column of the rows actually inserted or updated
    are returned, in no particular order: rows skipped by DO NOTHING return nothing.
    Rows are written in the order given, which is the order their keys get locked. The
    statement runs on the session's connection as it is: ORM objects still pending in the
    session are not flushed first.
    """
    if not rows:
        return []
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) "
    tail = (f" ON CONFLICT {on_conflict}" if on_conflict else "") + (
        f" RETURNING {returning}" if returning else ""
    )
    connection = session.connection()
    if dialect_of(session) == "postgresql":
        typed = ", ".join(f"{c} {_pg_type(table, c, connection.dialect)}" for c in columns)
        names = ", ".join(columns)
        source = f"SELECT {names} FROM json_to_recordset(%s::json) AS r({typed})"  # noqa: S608
        # msgspec writes the same JSON as json.dumps several times faster (a third of
        # voyage's encoding time on PostgreSQL went here); UTF-8 text, as the driver wants.
        document = _JSON([dict(zip(columns, row, strict=True)) for row in rows]).decode()
        result = connection.exec_driver_sql(head + source + tail, (document,))
        return [row[0] for row in result] if returning else []
    one_row = "(" + ",".join("?" * len(columns)) + ")"
    if not returning:  # one prepared statement, stepped per row: cheaper than parsing VALUES
        connection.exec_driver_sql(f"{head}VALUES {one_row}{tail}", list(map(tuple, rows)))
        return []
    returned: list[Any] = []
    start = 0
    for size in ladder(len(rows), min(MAX_ROWS, max(1, MAX_PARAMETERS // len(columns)))):
        chunk = rows[start : start + size]
        start += size
        sql = f"{head}VALUES {','.join([one_row] * size)}{tail}"
        result = connection.exec_driver_sql(sql, tuple(value for row in chunk for value in row))
        returned.extend(row[0] for row in result)
    return returned


def ladder(count: int, most: int) -> Iterator[int]:
    """`count` cut into statement sizes: `most` as often as it fits, then the powers of two
    of the rest, largest first (1000 of at most 1024: 512, 256, 128, 64, 32, 8).

    Whatever the batch sizes, a statement then has one of about log2(most) + 2 sizes, hence
    texts; a batch costs a few statements more, each prepared once per connection.
    """
    full, rest = divmod(count, most)
    yield from itertools.repeat(most, full)
    while rest:
        step = 1 << (rest.bit_length() - 1)
        yield step
        rest -= step


@functools.cache
def _pg_type(table: Table, column: str, dialect: SqlDialect) -> str:
    """The PostgreSQL type of a column (`VARCHAR(64)`, `NUMERIC`, `TIMESTAMP WITH TIME ZONE`)."""
    return str(table.c[column].type.compile(dialect=dialect))


def update_all(columns: Sequence[str], key: Sequence[str]) -> str:
    """The `on_conflict` of a plain upsert: on `key`, overwrite every other column."""
    changed = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"({', '.join(key)}) DO UPDATE SET {changed}"


def where_in(
    *, session: Session, column: ColumnElement[str], values: Iterable[str]
) -> Iterator[ColumnElement[bool]]:
    """`column IN values` as few times as it takes: one array on PostgreSQL, lists on SQLite.

    Run one query per condition (none for no values). On PostgreSQL `= ANY(:values)` binds a
    single array and keeps the SQL text constant (a thousand-item IN list cost psycopg more
    to rewrite than the query cost to run); SQLite gets lists of at most `IN_CHUNK` distinct
    values, far under its variable limit, each padded to a power of two with its last value
    (a value listed twice selects nothing more) so that the lists take few texts.
    """
    distinct = list(dict.fromkeys(values))
    if not distinct:
        return
    if dialect_of(session) == "postgresql":
        yield column == any_(bindparam("values", distinct, type_=ARRAY(String())))
        return
    for start in range(0, len(distinct), IN_CHUNK):
        chunk = distinct[start : start + IN_CHUNK]
        padding = (1 << (len(chunk) - 1).bit_length()) - len(chunk)
        yield column.in_(chunk + chunk[-1:] * padding)
