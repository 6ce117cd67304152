"""Facts: what one payment event tells the voyage service, flattened to one typed tuple.

The service never updates a booking from an event directly. Each event becomes a `Fact`
that is kept as it is (one row per eventId), and the booking is derived from all the facts
of its booking id (`voyage_consumer.domain`). That is what makes the result independent
of the order in which Kafka delivers the four topics, and of how often.

Pure: no database, no Kafka. A `NamedTuple` because the hot path converts thousands of
these per batch to and from database rows (`Fact(*row)`, `fact._asdict()`).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, NamedTuple

from common.events import (
    PaymentCompleted,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
)

FactKind = Literal["initiated", "completed", "failed", "refunded"]

TEXT_FIELDS: Final = (
    "event_id",
    "booking_id",
    "payment_id",
    "user_id",
    "currency",
    "payment_method",
    "transaction_id",
    "error_code",
    "error_message",
    "refund_id",
    "reason",
)


class Fact(NamedTuple):
    """One event's contribution. `amount` is the payment amount, or the refund amount."""

    event_id: str
    kind: FactKind
    booking_id: str
    payment_id: str
    user_id: str
    amount: Decimal
    currency: str
    occurred_at: datetime
    """initiatedAt, completedAt, failedAt or refundedAt: the payload's own time."""
    payment_method: str | None = None
    transaction_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    refund_id: str | None = None
    reason: str | None = None

    @property
    def order_key(self) -> tuple[datetime, str]:
        """Canonical order of facts: by their time, ties broken by eventId (never by arrival)."""
        return (self.occurred_at, self.event_id)


def to_fact(event: PaymentEvent) -> Fact:
    """The fact an already validated payment event carries."""
    base = (event.event_id,)
    if isinstance(event, PaymentInitiated):
        i = event.payload
        return Fact(
            *base, "initiated", i.booking_id, i.payment_id, i.user_id, i.amount, i.currency,
            i.initiated_at, payment_method=i.payment_method,
        )  # fmt: skip
    if isinstance(event, PaymentCompleted):
        c = event.payload
        return Fact(
            *base, "completed", c.booking_id, c.payment_id, c.user_id, c.amount, c.currency,
            c.completed_at, transaction_id=c.transaction_id,
        )  # fmt: skip
    if isinstance(event, PaymentFailed):
        f = event.payload
        return Fact(
            *base, "failed", f.booking_id, f.payment_id, f.user_id, f.amount, f.currency,
            f.failed_at, error_code=f.error_code, error_message=f.error_message,
        )  # fmt: skip
    assert isinstance(event, PaymentRefunded), f"unknown event {type(event).__name__}"
    r = event.payload
    return Fact(
        *base, "refunded", r.booking_id, r.payment_id, r.user_id, r.refund_amount, r.currency,
        r.refunded_at, refund_id=r.refund_id, reason=r.reason,
    )  # fmt: skip


def storage_problem(fact: Fact) -> str | None:
    """Why this fact can never be stored, or None.

    Checked before the batch's transaction so that one such record is dead-lettered alone
    instead of failing its whole batch: PostgreSQL text cannot contain NUL characters, which
    JSON (`\\u0000`) and therefore a valid event can.
    """
    for name in TEXT_FIELDS:
        value = getattr(fact, name)
        if value is not None and "\x00" in value:
            return f"{name} contains a NUL character, which the database cannot store"
    return None
