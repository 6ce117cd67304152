"""The voyage service's tables: facts as they arrived, and the rows derived from them.

`payment_fact` is the source of truth (one row per eventId, never updated); `booking`,
`inventory_hold` and `booking_anomaly` are projections rewritten from the facts of every
booking a batch touches. The inbox is `common.db.ProcessedEvent`.

Two column types keep values exact on both databases: money is `NUMERIC` without a scale
on PostgreSQL (it keeps `1250.00` as `1250.00`) and text on SQLite (which has no decimal
type and would go through a binary float); times are stored in UTC and always come back
timezone-aware (SQLite's would come back naive).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, get_args

from sqlalchemy import CheckConstraint, DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Field, SQLModel

from common.db import ProcessedEvent, table_of
from voyage_consumer.derivation import BookingStatus, HoldStatus
from voyage_consumer.facts import FactKind


class Money(TypeDecorator[Decimal]):
    """An exact decimal: unscaled NUMERIC on PostgreSQL, its text on SQLite."""

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return format(value, "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(value)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _one_of(table: str, column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{table}_{column}_valid")


_CLUSTERED: Final = {"sqlite_with_rowid": False}
"""SQLite `WITHOUT ROWID` for the narrow, upserted tables: the row lives in its primary key's
B-tree, one tree instead of two (PostgreSQL ignores it). Not for `payment_fact`: its wide
rows inserted at random keys cost ~35 % more that way than appended to a rowid table with
the key in a separate index (measured with 58k facts)."""

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
    """Unique on its own too: the inbox admits each eventId once (see `apply`)."""
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
    """A booking as derived from its facts (`voyage_consumer.derivation.BookingState`)."""

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


class InventoryHold(SQLModel, table=True):
    """The booking's inventory: held, converted into the sold trip, or released."""

    __tablename__ = "inventory_hold"
    __table_args__ = (_one_of("inventory_hold", "status", HOLD_STATUSES), _CLUSTERED)

    booking_id: str = Field(primary_key=True)
    status: str
    updated_at: datetime = Field(sa_type=UtcDateTime)


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
    InventoryHold,
    BookingAnomaly,
)


FACTS: Final = table_of(PaymentFact)
BOOKINGS: Final = table_of(Booking)
HOLDS: Final = table_of(InventoryHold)
ANOMALIES: Final = table_of(BookingAnomaly)
