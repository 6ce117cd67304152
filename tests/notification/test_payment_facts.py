"""What the store keeps of each payment: the first word wins, whatever the order and batching."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from common.db import make_engine, transaction
from common.events import PaymentEvent
from common.schema import migrate
from dreamscape_dev.testing.builders import payment_event
from notification_consumer import store
from notification_consumer.domain import PaymentSummary
from notification_consumer.tables import SCHEMA

pytestmark = pytest.mark.integration

INITIATED_AT = datetime(2025, 12, 18, 10, 30, tzinfo=UTC)


def events(payment_id: str = "pay_f1") -> list[PaymentEvent]:
    """One payment's initiation, completion, a completion redelivered with another transaction id, and a refund."""
    same: dict[str, Any] = {"paymentId": payment_id, "amount": 120.50, "currency": "EUR"}
    return [
        payment_event(
            "payment.initiated",
            paymentMethod="card",
            initiatedAt=INITIATED_AT.isoformat().replace("+00:00", "Z"),
            **same,
        ),
        payment_event("payment.completed", transactionId="txn_first", **same),
        payment_event("payment.completed", transactionId="txn_second", **same),
        payment_event("payment.refunded", paymentId=payment_id),
    ]


def remember(engine: Engine, batch: list[PaymentEvent]) -> dict[str, PaymentSummary]:
    """`remember_payments` of `batch`, then what the store knows of its payments, in one
    transaction, as the handler does."""
    with transaction(engine) as session:
        store.remember_payments(session=session, events=batch)
        return store.payments(session=session, payment_ids=[e.payload.payment_id for e in batch])


@pytest.mark.parametrize("split", [1, 2, 4])
def test_a_payments_facts_are_its_first_words_in_one_batch_or_several(
    database_url: str, split: int
) -> None:
    """Remembered in one batch or across several, the stored facts read back are the same: the first value each column was given, the initiation's details joined with the completion's."""
    engine = make_engine(database_url)
    migrate(engine, SCHEMA)
    given = events()
    size = len(given) // split
    summaries: dict[str, PaymentSummary] = {}
    for start in range(0, len(given), size):
        summaries = remember(engine, given[start : start + size])

    assert summaries["pay_f1"] == PaymentSummary(
        payment_method="card",
        initiated_at=INITIATED_AT,
        amount=Decimal("120.50"),
        currency="EUR",
        transaction_id="txn_first",
    )


def test_the_completion_seen_before_its_initiation_is_joined_by_it_later(
    database_url: str,
) -> None:
    """Out of order: the completion first, then the initiation and a redelivered completion; the later batch fills what was missing and changes nothing that was known."""
    engine = make_engine(database_url)
    migrate(engine, SCHEMA)
    initiated, completed, redelivered, _refund = events()
    first = remember(engine, [completed])
    second = remember(engine, [redelivered, initiated])

    assert first["pay_f1"].transaction_id == "txn_first"
    assert first["pay_f1"].payment_method is None
    assert second["pay_f1"] == PaymentSummary(
        "card", INITIATED_AT, Decimal("120.50"), "EUR", "txn_first"
    )


def test_every_order_of_the_events_gives_the_same_facts_but_the_transaction(
    database_url: str,
) -> None:
    """All 24 orders of the four events in one batch (a payment each): the payment method, time, amount and currency never depend on the order; the transaction id is the first completion's."""
    engine = make_engine(database_url)
    migrate(engine, SCHEMA)
    seen = set()
    for n, order in enumerate(itertools.permutations(range(4))):
        payment_id = f"pay_o{n}"
        given = events(payment_id)
        batch = [given[i] for i in order]
        summary = remember(engine, batch)[payment_id]
        first_completion = "txn_first" if order.index(1) < order.index(2) else "txn_second"
        assert summary.transaction_id == first_completion
        seen.add((summary.payment_method, summary.initiated_at, summary.amount, summary.currency))
    assert seen == {("card", INITIATED_AT, Decimal("120.50"), "EUR")}
