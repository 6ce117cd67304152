"""The voyage tests' shorthand: one booking's events on a clock of minutes, and their facts.

`document` is `dreamscape_dev.testing.builders.event` with the values these tests share
(booking `bk_1`, payment `pay_1`, 100.00 EUR, at 2025-12-18T10:00Z plus `minutes`), so that
each test names only what it is about.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from dreamscape_dev.testing.builders import Document, event, inbound
from voyage_consumer.facts import Fact, FactKind, to_fact

T0 = datetime(2025, 12, 18, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """A moment `minutes` after 2025-12-18T10:00Z."""
    return T0 + timedelta(minutes=minutes)


def document(
    kind: FactKind,
    *,
    booking: str = "bk_1",
    payment: str = "pay_1",
    amount: str = "100.00",
    currency: str = "EUR",
    minutes: float = 0,
    event_id: str | None = None,
    refund_id: str = "rf_1",
    user: str = "usr_1",
    text: str = "x",
) -> Document:
    """A valid event of `kind` for `booking` (the payload's own time is `at(minutes)`)."""
    money = Decimal(amount)
    fields: dict[str, Any] = {"paymentId": payment, "bookingId": booking, "userId": user}
    fields["currency"] = currency
    if kind == "initiated":
        fields |= {"amount": money, "paymentMethod": "credit_card"}
    elif kind == "completed":
        fields |= {"amount": money, "transactionId": f"tx_{payment}"}
    elif kind == "failed":
        fields |= {"amount": money, "errorCode": "card_declined", "errorMessage": text}
    else:
        fields |= {"refundAmount": money, "refundId": refund_id, "reason": text}
    return event(f"payment.{kind}", event_id=event_id, at=at(minutes), **fields)


def fact(doc: Document) -> Fact:
    """The voyage fact `doc` states, as the handler derives it from the parsed event."""
    return to_fact(inbound(doc).event)
