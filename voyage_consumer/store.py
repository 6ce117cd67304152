"""Set-based reads and writes of the voyage tables; every function takes a keyword-only session.

A batch of a thousand events costs a handful of statements, never one round trip per event:
one SELECT loads the stored facts of the batch's bookings (one per thousand bookings on
SQLite), one multi-row INSERT stores the new facts, one upsert writes the derived `booking` rows, and anomalies, when there are
any, a statement or two more (`common.bulk`). Facts are read with their columns untyped and
decoded here (`_decoder`): SQLAlchemy's result processing of money and times cost more per
row than the query.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import msgspec
from sqlalchemy import and_, bindparam, delete, func, select, text
from sqlmodel import Session

from common import bulk
from voyage_consumer.anomalies import Anomaly
from voyage_consumer.domain import BookingState, Derivation
from voyage_consumer.facts import Fact
from voyage_consumer.tables import ANOMALIES, BOOKINGS, FACTS

LOCK_BUCKETS: Final = 1024
"""Advisory locks are taken per bucket of bookings, not per booking: each lock is an entry in
PostgreSQL's shared lock table (64 x max_connections = 6,400 by default, for the whole
server), so one per booking of a 5,000-event batch could exhaust it and stall every retry.
Two transactions whose bookings share a bucket simply run one after the other."""

_LOCK_BOOKINGS: Final = text(
    "SELECT pg_advisory_xact_lock(k) FROM ("
    " SELECT DISTINCT abs(hashtextextended('voyage:' || b, 0) % :buckets) AS k"
    " FROM jsonb_array_elements_text(CAST(:ids AS jsonb)) AS b ORDER BY k) AS keys"
)
_PG_IDS: Final = " = ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(%s AS jsonb))))"
"""PostgreSQL: matches a JSON array of ids, evaluated once (an initplan) and looked up in the
index like an array parameter. The ids travel as one JSON text, which the client writes
faster than psycopg dumps a Python list as an array."""
_FACTS_OF: Final = f"SELECT {', '.join(Fact._fields)} FROM payment_fact WHERE booking_id"  # noqa: S608
_ANOMALIES_OF: Final = "SELECT booking_id, kind, subject FROM booking_anomaly WHERE booking_id"
_WRITE_LOCK: Final = text("DELETE FROM booking_anomaly WHERE 0 = 1")
"""SQLite: a write that changes nothing, so the transaction holds the database's write lock
before its first read (see `lock_bookings`)."""
_BOOKING_COLUMNS: Final = (*BookingState._fields, "inventory_hold")
_SQLITE_REPLACE_BOOKINGS: Final = (
    f"INSERT OR REPLACE INTO booking ({', '.join(_BOOKING_COLUMNS)}) "  # noqa: S608 - names from the model
    f"VALUES ({', '.join('?' * len(_BOOKING_COLUMNS))})"
)
"""SQLite: a booking row is written whole, so replacing it (delete, insert) does what the
upsert does, and measured 9 against 11-12 µs a row (800 rows into 20,000, best of two).
Nothing references `booking`, so the delete touches nothing else."""


def lock_bookings(*, session: Session, booking_ids: Sequence[str]) -> None:
    """Serialise concurrent transactions touching the same bookings, until commit.

    Two consumers can apply events of one booking at once (its events are on four topics,
    so on different partitions and possibly members); without this, both would derive from
    the facts they see and the last commit would drop the other's fact from the booking.
    PostgreSQL: advisory transaction locks on the bookings' buckets (`LOCK_BUCKETS`), taken
    in one global order so they cannot deadlock. SQLite has a single writer: a write that
    changes nothing, as the transaction's first statement, takes its lock before any read
    (two transactions reading first and writing next could not both commit).
    """
    if not booking_ids:
        return
    if bulk.dialect_of(session) == "postgresql":
        session.execute(_LOCK_BOOKINGS, {"ids": _ids(booking_ids), "buckets": LOCK_BUCKETS})
    else:
        session.execute(_WRITE_LOCK)


def load_facts(*, session: Session, booking_ids: Sequence[str]) -> dict[str, list[Fact]]:
    """Every stored fact of `booking_ids`, by booking id."""
    found: dict[str, list[Fact]] = {}
    decode = _decoder(bulk.dialect_of(session))
    for row in _rows_of(session, _FACTS_OF, booking_ids):
        fact = decode(row)
        found.setdefault(fact.booking_id, []).append(fact)
    return found


def _rows_of(session: Session, select_where: str, booking_ids: Sequence[str]) -> Iterator[Any]:
    """The rows of `select_where` (a SELECT ending in `WHERE booking_id`) for `booking_ids`,
    as the driver returns them: no SQLAlchemy compiling or type processing per row or value.

    PostgreSQL: the ids as one JSON array (`_PG_IDS`). SQLite: `bulk.padded_chunks`, the
    lists `bulk.where_in` makes, so that a statement has a few texts whatever the batch sizes.
    """
    if not booking_ids:
        return
    connection = session.connection()
    if bulk.dialect_of(session) == "postgresql":
        yield from connection.exec_driver_sql(select_where + _PG_IDS, (_ids(booking_ids),))
        return
    for chunk in bulk.padded_chunks(booking_ids):
        marks = ",".join("?" * len(chunk))
        yield from connection.exec_driver_sql(f"{select_where} IN ({marks})", tuple(chunk))


def _ids(values: Sequence[str]) -> str:
    return _ENCODE_IDS(values).decode()


_ENCODE_IDS: Final = msgspec.json.Encoder().encode


def _decoder(dialect: bulk.Dialect) -> Callable[[Sequence[Any]], Fact]:
    """A stored fact's row (`Fact._fields` order, as the driver returns it) to its `Fact`.

    PostgreSQL's driver returns decimals and aware datetimes already; SQLite returns the
    text `common.bulk` wrote: exact decimal text, and naive UTC `YYYY-MM-DD HH:MM:SS.ffffff`.
    """
    if dialect == "postgresql":
        return Fact._make

    def decode(row: Sequence[Any]) -> Fact:
        e, k, b, p, u, amount, c, at, *rest = row
        when = datetime.fromisoformat(at).replace(tzinfo=UTC)
        return Fact(e, k, b, p, u, Decimal(amount), c, when, *rest)

    return decode


def insert_facts(*, session: Session, facts: Sequence[Fact]) -> None:
    """Store `facts`, none of which is stored yet (`handler.apply_facts` knows: it holds the
    locks of their bookings and has read their stored facts).

    Should one be stored after all, it is left as it is: the facts are a set, and deriving
    from a fact twice gives what deriving from it once does.
    """
    conflict = "(booking_id, event_id) DO NOTHING"
    if bulk.dialect_of(session) == "postgresql":
        bulk.insert_rows(
            session=session, table=FACTS, columns=Fact._fields, rows=facts, on_conflict=conflict
        )
        return
    for columns, rows in fact_rows(facts, bulk.encoders(session)).items():
        bulk.insert_rows(
            session=session, table=FACTS, columns=columns, rows=rows, on_conflict=conflict
        )


_REQUIRED: Final = Fact._fields[:8]
_OPTIONAL: Final = Fact._fields[8:]
"""A fact's kind-specific fields, which the other kinds leave empty (None)."""
_NONES: Final = (None,) * len(_OPTIONAL)


def fact_rows(
    facts: Sequence[Fact], encode: bulk.Encoders
) -> dict[tuple[str, ...], list[tuple[Any, ...]]]:
    """The `payment_fact` rows of `facts`, by the columns they fill: every field by name,
    in `Fact._fields` order, and no column that would be NULL.

    A fact of each kind leaves four to six fields empty, and the sqlite3 driver binds a
    `None` through its adapter lookup (several times the cost of binding a string: 5.1
    against 2.2 µs a row for these rows). Left out of the statement, the column is NULL all
    the same; facts of one kind share one statement.
    """
    money, time = encode.decimal, encode.time
    found: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    columns_of: dict[tuple[bool, ...], tuple[str, ...]] = {}
    for f in facts:
        extra = f[8:]
        shape = tuple(map(operator.is_not, extra, _NONES))
        columns = columns_of.get(shape)
        if columns is None:
            columns = _REQUIRED + tuple(itertools.compress(_OPTIONAL, shape))
            columns_of[shape] = columns
        row = (
            f.event_id,
            f.kind,
            f.booking_id,
            f.payment_id,
            f.user_id,
            money(f.amount),
            f.currency,
            time(f.occurred_at),
            *itertools.compress(extra, shape),
        )
        found.setdefault(columns, []).append(row)
    return found


def save_derivations(*, session: Session, derivations: Sequence[Derivation]) -> None:
    """Write the `booking` rows (hold included) of `derivations`, whole: an upsert on
    PostgreSQL, a replace on SQLite (`_SQLITE_REPLACE_BOOKINGS`)."""
    if bulk.dialect_of(session) == "postgresql":
        values = [(*d.booking, d.hold) for d in derivations]
        upsert = bulk.update_all(_BOOKING_COLUMNS, ["booking_id"])
        bulk.insert_rows(
            session=session,
            table=BOOKINGS,
            columns=_BOOKING_COLUMNS,
            rows=values,
            on_conflict=upsert,
        )
        return
    encode = bulk.encoders(session)
    money, time = encode.decimal, encode.time
    rows = [
        (
            b.booking_id,
            b.status,
            b.user_id,
            b.payment_id,
            b.transaction_id,
            b.confirmation_number,
            money(b.amount),
            b.currency,
            money(b.refunded_amount),
            time(b.updated_at),
            d.hold,
        )
        for d in derivations
        for b in (d.booking,)
    ]
    if rows:
        session.connection().exec_driver_sql(_SQLITE_REPLACE_BOOKINGS, rows)


def anomaly_keys(*, session: Session, booking_ids: Sequence[str]) -> set[tuple[str, str, str]]:
    """The (booking_id, kind, subject) of every stored anomaly of `booking_ids`."""
    return {(b, k, s) for b, k, s in _rows_of(session, _ANOMALIES_OF, booking_ids)}


def add_anomalies(*, session: Session, anomalies: Sequence[Anomaly]) -> None:
    """Store `anomalies`; one already stored (same booking, kind and subject) is kept."""
    time = bulk.encoders(session).time
    bulk.insert_rows(
        session=session,
        table=ANOMALIES,
        columns=Anomaly._fields,
        rows=[(a.booking_id, a.kind, a.subject, a.detail, time(a.observed_at)) for a in anomalies],
        on_conflict="(booking_id, kind, subject) DO NOTHING",
    )


def remove_anomalies(*, session: Session, keys: Iterable[tuple[str, str, str]]) -> None:
    """Delete the anomalies the facts no longer show (a double charge's winner changed)."""
    rows = [{"b": b, "k": k, "s": s} for b, k, s in keys]
    if rows:
        c = ANOMALIES.c
        statement = delete(ANOMALIES).where(
            and_(
                c.booking_id == bindparam("b"),
                c.kind == bindparam("k"),
                c.subject == bindparam("s"),
            )
        )
        session.execute(statement, rows)


def count_processed(*, session: Session) -> int:
    """How many events the service has applied: its facts (tests and benchmarks wait on it)."""
    return int(session.execute(select(func.count()).select_from(FACTS)).scalar_one())


def stored_rows(*, session: Session, booking_id: str) -> dict[str, list[dict[str, Any]]]:
    """The booking's rows in each derived table, as stored (for `voyage-consumer status`)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for target in (BOOKINGS, ANOMALIES):
        statement = select(target).where(target.c.booking_id == booking_id)
        rows[target.name] = [dict(row) for row in session.execute(statement).mappings()]
    return rows
