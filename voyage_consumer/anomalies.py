"""The anomaly rules: facts that are kept but must not change a booking the way they ask to.

The spec asks consumers to "validate amounts match". Events that fail that validation are
not dead-lettered: they are real, well-formed events, and the payment-service may well have
moved the money. They are stored as facts like any other, excluded from the booking's
derivation, and reported as an `Anomaly` (a row, a log line, a metric) for a human to
reconcile. Every rule here is a pure function of a booking's facts, so the set of anomalies
is as order-independent as the booking itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, NamedTuple, get_args

from voyage_consumer.facts import Fact

AnomalyKind = Literal[
    "double_charge",
    "amount_mismatch",
    "refund_exceeds_payment",
    "refund_currency_mismatch",
]
ANOMALY_KINDS: Final[tuple[AnomalyKind, ...]] = get_args(AnomalyKind)


class Anomaly(NamedTuple):
    """One thing to reconcile. `subject` is the payment id or refund id concerned."""

    booking_id: str
    kind: AnomalyKind
    subject: str
    detail: str
    observed_at: datetime
    """The time of the fact that shows the anomaly (event time, so replays agree)."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.booking_id, self.kind, self.subject)


def double_charges(booking_id: str, winner: Fact, others: Iterable[Fact]) -> list[Anomaly]:
    """Every completed payment besides the one that pays for the booking is a double charge."""
    return [
        Anomaly(
            booking_id,
            "double_charge",
            other.payment_id,
            f"payment {other.payment_id} also completed ({other.amount} {other.currency}, "
            f"transaction {other.transaction_id}); the booking keeps {winner.payment_id}",
            other.occurred_at,
        )
        for other in others
    ]


def amount_mismatches(
    booking_id: str, initiated: Mapping[str, Fact], completed: Iterable[Fact]
) -> list[Anomaly]:
    """A payment that completed for another amount or currency than it was initiated with."""
    found = []
    for done in completed:
        start = initiated.get(done.payment_id)
        if start is None or (start.amount, start.currency) == (done.amount, done.currency):
            continue
        found.append(
            Anomaly(
                booking_id,
                "amount_mismatch",
                done.payment_id,
                f"initiated for {start.amount} {start.currency}, "
                f"completed for {done.amount} {done.currency}; the completed amount counts",
                done.occurred_at,
            )
        )
    return found


class RefundOutcome(NamedTuple):
    """The refunds of the paying payment, split into applied and rejected."""

    applied: tuple[Fact, ...]
    rejected: tuple[Fact, ...]
    total: Decimal
    anomalies: tuple[Anomaly, ...]


def settle_refunds(booking_id: str, paid: Fact, refunds: Sequence[Fact]) -> RefundOutcome:
    """Apply `refunds` (already in refundedAt, refundId order) to the payment `paid`.

    A refund in another currency, or one that would take the total above the paid amount,
    is rejected (an anomaly) and the total stays as it was; later refunds are still tried.
    Because the order is the refunds' own time and id, not their arrival, which refund of
    two is "the one too many" is the same on every replay.
    """
    applied: list[Fact] = []
    rejected: list[Fact] = []
    anomalies: list[Anomaly] = []
    total = paid.amount * 0  # zero with the payment's scale: 0.00 for EUR, 0 for JPY
    for refund in refunds:
        if refund.currency != paid.currency:
            detail = f"refund in {refund.currency} of a payment in {paid.currency}"
            kind: AnomalyKind = "refund_currency_mismatch"
        elif total + refund.amount > paid.amount:
            detail = (
                f"refund of {refund.amount} {refund.currency} would bring refunds to "
                f"{total + refund.amount}, above the {paid.amount} paid"
            )
            kind = "refund_exceeds_payment"
        else:
            applied.append(refund)
            total += refund.amount
            continue
        rejected.append(refund)
        subject = refund.refund_id or refund.event_id
        anomalies.append(Anomaly(booking_id, kind, subject, detail, refund.occurred_at))
    return RefundOutcome(tuple(applied), tuple(rejected), total, tuple(anomalies))
