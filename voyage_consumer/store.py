"""Set-based reads and writes of the voyage tables; every function takes a keyword-only session.

A batch of a thousand events costs a handful of statements, never one round trip per event:
one multi-row INSERT claims the eventIds in the inbox (`common.db.claim_events`), one SELECT
loads the facts of the batch's bookings (one per thousand bookings on SQLite), and
multi-row INSERTs (conflict-ignoring or upserting, `common.bulk`) write facts and derived
rows. Reads go through SQLAlchemy Core, whose column types decode money and times; writes
go through `common.bulk`, whose encoders write them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from sqlalchemy import and_, bindparam, delete, func, select, text
from sqlmodel import Session

from common import bulk
from common.db import PROCESSED
from voyage_consumer.anomalies import Anomaly
from voyage_consumer.domain import BookingState, Derivation
from voyage_consumer.facts import Fact
from voyage_consumer.tables import ANOMALIES, BOOKINGS, FACTS, HOLDS

LOCK_BUCKETS: Final = 1024
"""Advisory locks are taken per bucket of bookings, not per booking: each lock is an entry in
PostgreSQL's shared lock table (64 x max_connections = 6,400 by default, for the whole
server), so one per booking of a 5,000-event batch could exhaust it and stall every retry.
Two transactions whose bookings share a bucket simply run one after the other."""

_LOCK_BOOKINGS: Final = text(
    "SELECT pg_advisory_xact_lock(k) FROM ("
    " SELECT DISTINCT abs(hashtextextended('voyage:' || b, 0) % :buckets) AS k"
    " FROM unnest(CAST(:ids AS text[])) AS b ORDER BY k) AS keys"
)
_FACT_COLUMNS: Final = [FACTS.c[name] for name in Fact._fields]


def lock_bookings(*, session: Session, booking_ids: Sequence[str]) -> None:
    """Serialise concurrent transactions touching the same bookings, until commit.

    Two consumers can apply events of one booking at once (its events are on four topics,
    so on different partitions and possibly members); without this, both would derive from
    the facts they see and the last commit would drop the other's fact from the booking.
    PostgreSQL: advisory transaction locks on the bookings' buckets (`LOCK_BUCKETS`), taken
    in one global order so they cannot deadlock. SQLite has a single writer, and
    `common.db.claim_events` (the transaction's first statement, a write) takes its lock
    before any read.
    """
    if booking_ids and bulk.dialect_of(session) == "postgresql":
        session.execute(_LOCK_BOOKINGS, {"ids": list(booking_ids), "buckets": LOCK_BUCKETS})


def load_facts(*, session: Session, booking_ids: Sequence[str]) -> dict[str, list[Fact]]:
    """Every stored fact of `booking_ids`, by booking id."""
    found: dict[str, list[Fact]] = {}
    for condition in bulk.where_in(session=session, column=FACTS.c.booking_id, values=booking_ids):
        for row in session.execute(select(*_FACT_COLUMNS).where(condition)):
            fact = Fact._make(row)
            found.setdefault(fact.booking_id, []).append(fact)
    return found


def insert_facts(*, session: Session, facts: Sequence[Fact]) -> None:
    """Store `facts`; one already stored under its booking and eventId is left as it is."""
    bulk.insert_rows(
        session=session,
        table=FACTS,
        columns=Fact._fields,
        rows=fact_rows(facts, bulk.encoders(session)),
        on_conflict="(booking_id, event_id) DO NOTHING",
    )


def fact_rows(facts: Sequence[Fact], encode: bulk.Encoders) -> list[tuple[Any, ...]]:
    """The `payment_fact` rows of `facts`: every field by name, in `Fact._fields` order."""
    money, time = encode.decimal, encode.time
    return [
        (
            f.event_id,
            f.kind,
            f.booking_id,
            f.payment_id,
            f.user_id,
            money(f.amount),
            f.currency,
            time(f.occurred_at),
            f.payment_method,
            f.transaction_id,
            f.error_code,
            f.error_message,
            f.refund_id,
            f.reason,
        )
        for f in facts
    ]


def save_derivations(*, session: Session, derivations: Sequence[Derivation]) -> None:
    """Upsert the `booking` and `inventory_hold` rows of `derivations`."""
    encode = bulk.encoders(session)
    money, time = encode.decimal, encode.time
    bookings = [d.booking for d in derivations]
    bulk.insert_rows(
        session=session,
        table=BOOKINGS,
        columns=BookingState._fields,
        rows=[
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
            )
            for b in bookings
        ],
        on_conflict=bulk.update_all(BookingState._fields, ["booking_id"]),
    )
    hold_columns = ("booking_id", "status", "updated_at")
    bulk.insert_rows(
        session=session,
        table=HOLDS,
        columns=hold_columns,
        rows=[(d.booking.booking_id, d.hold, time(d.booking.updated_at)) for d in derivations],
        on_conflict=bulk.update_all(hold_columns, ["booking_id"]),
    )


def anomaly_keys(*, session: Session, booking_ids: Sequence[str]) -> set[tuple[str, str, str]]:
    """The (booking_id, kind, subject) of every stored anomaly of `booking_ids`."""
    found: set[tuple[str, str, str]] = set()
    columns = (ANOMALIES.c.booking_id, ANOMALIES.c.kind, ANOMALIES.c.subject)
    for condition in bulk.where_in(
        session=session, column=ANOMALIES.c.booking_id, values=booking_ids
    ):
        found.update((b, k, s) for b, k, s in session.execute(select(*columns).where(condition)))
    return found


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


def count_processed(*, session: Session, consumer: str) -> int:
    """How many eventIds `consumer` has applied (tests and benchmarks wait on it)."""
    statement = select(func.count()).select_from(PROCESSED).where(PROCESSED.c.consumer == consumer)
    return int(session.execute(statement).scalar_one())


def stored_rows(*, session: Session, booking_id: str) -> dict[str, list[dict[str, Any]]]:
    """The booking's rows in each derived table, as stored (for `voyage-consumer status`)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for target in (BOOKINGS, HOLDS, ANOMALIES):
        statement = select(target).where(target.c.booking_id == booking_id)
        rows[target.name] = [dict(row) for row in session.execute(statement).mappings()]
    return rows
