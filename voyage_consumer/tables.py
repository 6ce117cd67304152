"""The voyage service's tables: facts as they arrived, and the rows derived from them.

`payment_fact` is the source of truth (one row per event, never updated) and the inbox: an
event is applied when its fact is inserted, and a redelivered one finds its fact there.
`booking` (with its inventory hold) and `booking_anomaly` are projections rewritten from
the facts of every booking a batch touches. Two rows per event at most, then: its fact,
and its booking's row (revision `0002_hold_in_booking`; before it, an inbox row and a
separate `inventory_hold` row were written too).

Money and times use the shared column types (`common.columns`): exact decimals and aware
UTC datetimes on both databases.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final, get_args

from sqlalchemy import CheckConstraint
from sqlmodel import Field, SQLModel

from common.columns import Money, UtcDateTime
from common.db import ProcessedEvent, table_of
from common.schema import Schema
from voyage_consumer.domain import BookingStatus, HoldStatus
from voyage_consumer.facts import FactKind


def _one_of(table: str, column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{table}_{column}_valid")


_CLUSTERED: Final = {"sqlite_with_rowid": False}
"""SQLite `WITHOUT ROWID` for the narrow, upserted tables: the row lives in its primary key's
B-tree, one tree instead of two (PostgreSQL ignores it). Not for `payment_fact`: its wide
rows inserted at random keys cost more that way than appended to a rowid table with the
key in a separate index (measured: docs/performance.md)."""

BOOKING_STATUSES: Final[tuple[str, ...]] = get_args(BookingStatus)
HOLD_STATUSES: Final[tuple[str, ...]] = get_args(HoldStatus)
FACT_KINDS: Final[tuple[str, ...]] = get_args(FactKind)


class PaymentFact(SQLModel, table=True):
    """One payment event's content (see `voyage_consumer.facts.Fact`), as received."""

    __tablename__ = "payment_fact"
    __table_args__ = (_one_of("payment_fact", "kind", FACT_KINDS),)

    booking_id: str = Field(primary_key=True)
    """First in the key, so a booking's facts are one index range (the hot read)."""
    event_id: str = Field(primary_key=True)
    """The inbox's key with `booking_id`: a fact already stored is never inserted again
    (`store.claim_facts`), so a redelivered event changes nothing."""
    kind: str
    payment_id: str
    user_id: str
    amount: Decimal = Field(sa_type=Money)
    currency: str
    occurred_at: datetime = Field(sa_type=UtcDateTime)
    payment_method: str | None = None
    transaction_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    refund_id: str | None = None
    reason: str | None = None


class Booking(SQLModel, table=True):
    """A booking as derived from its facts (`voyage_consumer.domain.BookingState`)."""

    __tablename__ = "booking"
    __table_args__ = (_one_of("booking", "status", BOOKING_STATUSES), _CLUSTERED)

    booking_id: str = Field(primary_key=True)
    status: str
    user_id: str
    payment_id: str
    transaction_id: str | None = None
    confirmation_number: str | None = None
    amount: Decimal = Field(sa_type=Money)
    currency: str
    refunded_amount: Decimal = Field(sa_type=Money)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    inventory_hold: str = Field(
        sa_column_args=[_one_of("booking", "inventory_hold", HOLD_STATUSES)]
    )
    """The booking's inventory: held, converted into the sold trip, or released
    (`domain.HOLD_BY_STATUS`). A column of the booking row, written with it: it changes
    only with the status, and a table of its own cost a second upsert per booking."""


class BookingAnomaly(SQLModel, table=True):
    """Something to reconcile by hand (`voyage_consumer.anomalies`); derived like a booking."""

    __tablename__ = "booking_anomaly"
    __table_args__ = (_CLUSTERED,)

    booking_id: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    subject: str = Field(primary_key=True)
    detail: str
    observed_at: datetime = Field(sa_type=UtcDateTime)


MODELS: Final[tuple[type[SQLModel], ...]] = (
    ProcessedEvent,
    PaymentFact,
    Booking,
    BookingAnomaly,
)
"""`processed_event` is no longer written (the facts are the inbox) but kept: it holds the
inbox of the releases before `0002_hold_in_booking`, which a later revision may drop."""

SCHEMA: Final = Schema("voyage", "voyage_consumer.migrations", MODELS)
"""The voyage database: these tables, built by the revisions in `voyage_consumer/migrations`."""

FACTS: Final = table_of(PaymentFact)
BOOKINGS: Final = table_of(Booking)
ANOMALIES: Final = table_of(BookingAnomaly)
