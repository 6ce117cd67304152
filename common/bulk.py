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
* PostgreSQL: `SELECT CAST(r->>0 AS ...), ... FROM jsonb_array_elements(%s)`, all rows as
  one JSON array of arrays, one round trip whatever the batch size. The SQL text is the same
  for every batch (psycopg rewrites each `%s` to `$n` in Python: a 10,000-placeholder VALUES
  list took longer to convert than PostgreSQL took to run it); msgspec writes the rows as
  they are (tuples as arrays, decimals as exact text, aware datetimes in RFC 3339), which
  cost a fraction of the client CPU of one JSON object per row (`json_to_recordset`, as
  before) or of psycopg's array dumpers (one array per column through `unnest`).

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
    """SQLAlchemy's own SQLite DATETIME text, in UTC (what its `DateTime` reads back).

    A time in UTC already (every event's, hence most rows') is written the short way: its
    own text without the offset, the same characters in less time (a voyage batch writes
    two per event).
    """
    if value is None:
        return None
    if value.tzinfo is UTC:
        return value.isoformat(" ", "microseconds")[:26]
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


def _decimal_text(value: object) -> str:
    """msgspec's hook for `Decimal` subclasses (`common.events.Amount`): their exact text."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to the database")


_JSON: Final = msgspec.json.Encoder(decimal_format="string", enc_hook=_decimal_text).encode
"""PostgreSQL rows as one JSON array of arrays; UTF-8 text, as the driver wants it."""


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
        source = _pg_source(table, tuple(columns), connection.dialect)
        result = connection.exec_driver_sql(head + source + tail, (_JSON(rows).decode(),))
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
def _pg_source(table: Table, columns: tuple[str, ...], dialect: SqlDialect) -> str:
    """`SELECT` of `columns` out of the JSON array of arrays, each cast to its column's type."""
    values = ", ".join(
        f"CAST(r->>{n} AS {table.c[c].type.compile(dialect=dialect)})"
        for n, c in enumerate(columns)
    )
    return f"SELECT {values} FROM jsonb_array_elements(CAST(%s AS jsonb)) AS r"  # noqa: S608


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
    for chunk in padded_chunks(distinct):
        yield column.in_(chunk)


def padded_chunks(values: Iterable[str]) -> Iterator[list[str]]:
    """SQLite's `IN` lists for `values` (see `where_in`): the distinct values in lists of at
    most `IN_CHUNK`, each padded to a power of two with its last value."""
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), IN_CHUNK):
        chunk = distinct[start : start + IN_CHUNK]
        yield chunk + chunk[-1:] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
