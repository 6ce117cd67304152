"""A batch of events folded into one delta in memory: counters, payment facts, refunds.

Pure: no database, no clock. Two steps, because the inbox sits between them:

* `extract` reduces each event to a flat `Fact` (its day, time, amount in units...) and is
  where an amount that cannot be counted exactly is found (a `PermanentError`);
* `fold` adds up the facts the inbox has not seen before into a `BatchDelta`, which the
  store writes with a handful of set-based statements.

Which day an event counts in: the UTC day of its own occurrence time (`initiatedAt`,
`completedAt`, `failedAt`, `refundedAt`; see `days`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from analytics_consumer.days import DAY_MS, epoch_ms
from analytics_consumer.money import to_units
from common.events import PaymentEvent, PaymentFailed, PaymentInitiated, PaymentRefunded
from common.topics import PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_INITIATED, PAYMENT_REFUNDED

EVENTS: Final = "events"  # key: event type; n = events
METHOD: Final = "method"  # key: paymentMethod; n = initiated payments
INITIATED: Final = "initiated"  # key: currency; n, units = initiated payments and amounts
REVENUE: Final = "revenue"  # key: currency; n, units = completed payments and amounts
REFUNDED: Final = "refunded"  # key: currency; n, units = refunds and refunded amounts
FAILURE: Final = "failure"  # key: errorCode; n = failed payments

CounterKey = tuple[int, str, str]
"""(day number, metric, key)."""


Fact = tuple[str, str, str, int, int, str, str]
"""One event reduced to what the analytics need: (event_id, event_type, payment_id, at_ms,
units, currency, detail), detail being the paymentMethod, transactionId, errorCode or
refundId by event type. A plain tuple: one is built per event, and a named tuple costs
several times more to build."""
EVENT_ID: Final = 0
EVENT_TYPE: Final = 1
PAYMENT_ID: Final = 2
AT_MS: Final = 3
UNITS: Final = 4
CURRENCY: Final = 5
DETAIL: Final = 6


def extract(event: PaymentEvent) -> Fact:
    """The event's `Fact`; raises `UnrepresentableAmountError` for an inexact amount."""
    p = event.payload
    if type(event) is PaymentInitiated:
        at, amount, detail = p.initiated_at, p.amount, p.payment_method  # type: ignore[union-attr]
    elif type(event) is PaymentFailed:
        at, amount, detail = p.failed_at, p.amount, p.error_code  # type: ignore[union-attr]
    elif type(event) is PaymentRefunded:
        at, amount, detail = p.refunded_at, p.refund_amount, p.refund_id  # type: ignore[union-attr]
    else:
        at, amount, detail = p.completed_at, p.amount, p.transaction_id  # type: ignore[union-attr]
    units = to_units(amount)
    return (event.event_id, event.event_type, p.payment_id, epoch_ms(at), units, p.currency, detail)


@dataclass(slots=True)
class PaymentFacts:
    """What a batch learnt about one payment; merged into `analytics_payment` by upsert."""

    payment_id: str
    method: str | None = None
    currency: str | None = None
    initiated_units: int | None = None
    initiated_ms: int | None = None
    completed_currency: str | None = None
    completed_units: int | None = None
    completed_ms: int | None = None
    transaction_id: str | None = None
    completions: int = 0
    failed_ms: int | None = None
    first_refund_ms: int | None = None

    def row(self) -> tuple[Any, ...]:
        """The table row, with the duration when this batch saw both halves."""
        completed, initiated = self.completed_ms, self.initiated_ms
        duration = (
            completed - initiated if completed is not None and initiated is not None else None
        )
        return (
            *(self.payment_id, self.method, self.currency, self.initiated_units, initiated),
            *(self.completed_currency, self.completed_units, completed, self.transaction_id),
            *(self.completions, self.failed_ms, self.first_refund_ms, duration),
        )


RefundRow = tuple[str, str, str, str, int, int]
"""(event_id, refund_id, payment_id, currency, units, refunded_ms)."""


@dataclass(slots=True)
class BatchDelta:
    counters: dict[CounterKey, list[int]] = field(default_factory=dict)
    """[n, units] to add per key."""
    payments: dict[str, PaymentFacts] = field(default_factory=dict)
    refunds: list[RefundRow] = field(default_factory=list)

    def count(self, key: CounterKey, units: int = 0) -> None:
        tally = self.counters.get(key)
        if tally is None:
            self.counters[key] = [1, units]
        else:
            tally[0] += 1
            tally[1] += units


def fold(facts: Iterable[Fact]) -> BatchDelta:
    """Add up `facts` (each counted once: the caller removed duplicates) into one delta.

    Per payment the first value seen wins, as in the database's merge, so a batch and the
    database agree whatever order a payment's events come in.
    """
    delta = BatchDelta()
    count, payments = delta.count, delta.payments
    for event_id, event_type, payment_id, at, units, currency, detail in facts:
        day = at // DAY_MS
        count((day, EVENTS, event_type))
        payment = payments.get(payment_id)
        if payment is None:
            payment = payments[payment_id] = PaymentFacts(payment_id)
        if event_type == PAYMENT_INITIATED:
            count((day, METHOD, detail))
            count((day, INITIATED, currency), units)
            if payment.initiated_ms is None:
                payment.method, payment.currency = detail, currency
                payment.initiated_units, payment.initiated_ms = units, at
        elif event_type == PAYMENT_COMPLETED:
            count((day, REVENUE, currency), units)
            payment.completions += 1
            if payment.completed_ms is None:
                payment.completed_currency, payment.completed_units = currency, units
                payment.completed_ms, payment.transaction_id = at, detail
        elif event_type == PAYMENT_FAILED:
            count((day, FAILURE, detail))
            if payment.failed_ms is None:
                payment.failed_ms = at
        elif event_type == PAYMENT_REFUNDED:
            count((day, REFUNDED, currency), units)
            delta.refunds.append((event_id, detail, payment_id, currency, units, at))
            if payment.first_refund_ms is None or at < payment.first_refund_ms:
                payment.first_refund_ms = at
    return delta
