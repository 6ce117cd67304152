"""A batch of events folded into one delta in memory: counters, payment facts, refunds.

Pure: no database, no clock. Two steps, because the inbox sits between them:

* `extract` reduces each event to a flat `Fact` of its type (its time, amount in units, and
  the one identifier that type is counted by) and is where an amount that cannot be counted
  exactly is found (a `PermanentError`);
* `fold` adds up the facts the inbox has not seen before into a `BatchDelta`, which the
  store writes with a handful of set-based statements.

Which day an event counts in: the UTC day of its own occurrence time (`initiatedAt`,
`completedAt`, `failedAt`, `refundedAt`; see `days`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from analytics_consumer.days import DAY_MS, epoch_ms
from analytics_consumer.money import to_units
from common.events import (
    PaymentCompleted,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
)
from common.topics import PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_INITIATED, PAYMENT_REFUNDED

EVENTS: Final = "events"  # key: event type; n = events
METHOD: Final = "method"  # key: paymentMethod; n = initiated payments
INITIATED: Final = "initiated"  # key: currency; n, units = initiated payments and amounts
REVENUE: Final = "revenue"  # key: currency; n, units = completed payments and amounts
REFUNDED: Final = "refunded"  # key: currency; n, units = refunds and refunded amounts
FAILURE: Final = "failure"  # key: errorCode; n = failed attempts
REFUND_REASON: Final = "refund_reason"  # key: the refund's reason; n = refunds
OUTCOME_MINUTE: Final = "outcome_minute"
"""key: `MMMM completed` or `MMMM failed:<errorCode>` (MMMM: the minute of the UTC day);
n = attempts. What the gateway alert reads for a window shorter than a day (`reading`)."""

KEY_LENGTH: Final = 256
"""The longest counter key (`analytics_daily.key`); longer producer text is cut to it."""

CounterKey = tuple[int, str, str]
"""(day number, metric, key)."""


class InitiatedFact(NamedTuple):
    """A payment.initiated event, as counted: by currency and by payment method."""

    event_id: str
    payment_id: str
    at_ms: int
    units: int
    currency: str
    method: str


class CompletedFact(NamedTuple):
    """A payment.completed event, as counted: revenue by currency, and its transaction."""

    event_id: str
    payment_id: str
    at_ms: int
    units: int
    currency: str
    transaction_id: str


class FailedFact(NamedTuple):
    """A payment.failed event: one failed *attempt*, counted by error code.

    Several attempts of one payment (another card, under the same paymentId) are several
    facts; the inbox's business key (`common.business`) collapses only a redelivery.
    """

    event_id: str
    payment_id: str
    at_ms: int
    units: int
    currency: str
    error_code: str


class RefundedFact(NamedTuple):
    """A payment.refunded event, as counted: refunded amounts by currency, one row per refund,
    and its reason."""

    event_id: str
    payment_id: str
    at_ms: int
    units: int
    currency: str
    refund_id: str
    reason: str


Fact = InitiatedFact | CompletedFact | FailedFact | RefundedFact
"""One event reduced to what the analytics need: `at_ms` is its own occurrence time, `units`
its amount (the refund amount for a refund). One type per event type, so each names the
identifier it is counted by. Named tuples built positionally: one is built per event, and
keyword arguments cost noticeably more per call (docs/performance.md)."""


def extract(event: PaymentEvent) -> Fact:
    """The event's `Fact`; raises `UnrepresentableAmountError` for an inexact amount."""
    if type(event) is PaymentInitiated:
        i = event.payload
        return InitiatedFact(
            event.event_id, i.payment_id, epoch_ms(i.initiated_at), to_units(i.amount),
            i.currency, i.payment_method,
        )  # fmt: skip
    if type(event) is PaymentFailed:
        f = event.payload
        return FailedFact(
            event.event_id, f.payment_id, epoch_ms(f.failed_at), to_units(f.amount), f.currency,
            f.error_code,
        )  # fmt: skip
    if type(event) is PaymentRefunded:
        r = event.payload
        return RefundedFact(
            event.event_id, r.payment_id, epoch_ms(r.refunded_at), to_units(r.refund_amount),
            r.currency, r.refund_id, r.reason,
        )  # fmt: skip
    assert type(event) is PaymentCompleted, f"unknown event {type(event).__name__}"
    c = event.payload
    return CompletedFact(
        event.event_id, c.payment_id, epoch_ms(c.completed_at), to_units(c.amount), c.currency,
        c.transaction_id,
    )  # fmt: skip


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


class RefundRow(NamedTuple):
    """An `analytics_refund` row; the fields are its columns."""

    event_id: str
    refund_id: str
    payment_id: str
    currency: str
    units: int
    refunded_ms: int


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
    database agree whatever order a payment's events come in; the failure time is the
    earliest of the batch's failed attempts.
    """
    delta = BatchDelta()
    count, payments = delta.count, delta.payments
    for fact in facts:
        payment_id, at, units, currency = fact.payment_id, fact.at_ms, fact.units, fact.currency
        day = at // DAY_MS
        payment = payments.get(payment_id)
        if payment is None:
            payment = payments[payment_id] = PaymentFacts(payment_id)
        if type(fact) is InitiatedFact:
            count((day, EVENTS, PAYMENT_INITIATED))
            count((day, METHOD, fact.method))
            count((day, INITIATED, currency), units)
            if payment.initiated_ms is None:
                payment.method, payment.currency = fact.method, currency
                payment.initiated_units, payment.initiated_ms = units, at
        elif type(fact) is CompletedFact:
            count((day, EVENTS, PAYMENT_COMPLETED))
            count((day, REVENUE, currency), units)
            count((day, OUTCOME_MINUTE, f"{_minute(at)} completed"))
            payment.completions += 1
            if payment.completed_ms is None:
                payment.completed_currency, payment.completed_units = currency, units
                payment.completed_ms, payment.transaction_id = at, fact.transaction_id
        elif type(fact) is FailedFact:
            count((day, EVENTS, PAYMENT_FAILED))
            code = fact.error_code[:KEY_LENGTH]
            count((day, FAILURE, code))
            count((day, OUTCOME_MINUTE, f"{_minute(at)} failed:{code}"[:KEY_LENGTH]))
            if payment.failed_ms is None or at < payment.failed_ms:
                payment.failed_ms = at
        elif type(fact) is RefundedFact:
            count((day, EVENTS, PAYMENT_REFUNDED))
            count((day, REFUNDED, currency), units)
            count((day, REFUND_REASON, fact.reason[:KEY_LENGTH]))
            delta.refunds.append(
                RefundRow(fact.event_id, fact.refund_id, payment_id, currency, units, at)
            )
            if payment.first_refund_ms is None or at < payment.first_refund_ms:
                payment.first_refund_ms = at
    return delta


def _minute(at_ms: int) -> str:
    """The minute of the UTC day of `at_ms`, as four digits (`0000`..`1439`)."""
    return f"{at_ms % DAY_MS // 60_000:04d}"
