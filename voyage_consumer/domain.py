"""A booking's status, derived from the set of its facts by one pure function.

Kafka delivers the four payment topics independently, redelivers after crashes and may
duplicate. So nothing here depends on the order the facts arrived in, or on how many copies
of one there are: duplicates collapse to one fact per natural key (a payment's initiation,
completion or failure by paymentId, a refund by refundId), and every choice is made on the
facts' own times and ids. `derive(facts)` over any permutation of any multiset of the same
facts returns the same `Derivation`; the property tests check exactly that.

The rules, in the order they decide:

1. A completed payment wins over everything else: a failure event never undoes it. If
   several payments completed (a double charge), the earliest completedAt (then paymentId)
   pays for the booking, and each other one is an anomaly.
2. Refunds of the paying payment accumulate in refundedAt order; refunds that reach the paid
   amount cancel the booking, less leaves it partially refunded (see `anomalies` for the
   refunds that are rejected). A refund whose payment has not completed (yet) waits.
3. Without a completed payment, the latest attempt (by initiatedAt, else its outcome's
   time) decides: failed → `payment_failed`, still open → `payment_pending`.
4. A booking known only through refunds has no row yet: its payment's events will come.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal, NamedTuple

from common.confirmation import confirmation_number
from voyage_consumer.anomalies import (
    Anomaly,
    RefundOutcome,
    amount_mismatches,
    double_charges,
    settle_refunds,
)
from voyage_consumer.facts import Fact

BookingStatus = Literal[
    "payment_pending", "confirmed", "payment_failed", "partially_refunded", "cancelled"
]
HoldStatus = Literal["held", "converted", "released"]

HOLD_BY_STATUS: Final[dict[BookingStatus, HoldStatus]] = {
    "payment_pending": "held",
    "confirmed": "converted",
    "partially_refunded": "converted",
    "payment_failed": "released",
    "cancelled": "released",
}
"""Inventory follows the booking: held while a payment is open, converted into the sold
trip once paid (a partial refund keeps the trip), released when no payment succeeded or
the refunds cover the whole price."""


class BookingState(NamedTuple):
    """The derived `booking` row."""

    booking_id: str
    status: BookingStatus
    user_id: str
    payment_id: str
    transaction_id: str | None
    confirmation_number: str | None
    amount: Decimal
    currency: str
    refunded_amount: Decimal
    updated_at: datetime
    """The latest fact's own time (not the wall clock), so a replay writes the same row."""


class Attempt(NamedTuple):
    """One paymentId of the booking and the (first) fact of each kind seen for it."""

    payment_id: str
    started_at: datetime
    initiated: Fact | None
    completed: Fact | None
    failed: Fact | None


class Derivation(NamedTuple):
    """The derived rows, and the intermediate results that explain them (`status` prints them).

    A NamedTuple rather than a frozen dataclass: one is built per touched booking per batch.
    """

    booking: BookingState
    hold: HoldStatus
    anomalies: tuple[Anomaly, ...]
    attempts: tuple[Attempt, ...]
    """By start time, then paymentId."""
    winner: Fact | None
    """The completion that pays for the booking."""
    applied_refunds: tuple[Fact, ...]
    rejected_refunds: tuple[Fact, ...]
    pending_refunds: tuple[Fact, ...]
    """Refunds of a payment with no completion yet; applied once it arrives."""
    other_refunds: tuple[Fact, ...]
    """Refunds of a double-charged payment: they settle that charge, not the booking."""


class Canonical(NamedTuple):
    """A booking's facts with duplicates collapsed: one per kind and natural key."""

    initiated: dict[str, Fact]
    completed: dict[str, Fact]
    failed: dict[str, Fact]
    refunded: dict[str, Fact]
    latest: datetime | None
    """The latest time of any fact, duplicates included (a set property, like the rest)."""


def canonical(facts: Iterable[Fact]) -> Canonical:
    """Keep, per (kind, paymentId or refundId), the earliest fact by (occurredAt, eventId)."""
    found = Canonical({}, {}, {}, {}, None)
    slots = {"initiated": found.initiated, "completed": found.completed}
    slots |= {"failed": found.failed, "refunded": found.refunded}
    latest = None
    for fact in facts:
        slot = slots[fact.kind]
        natural = fact.refund_id or fact.event_id if fact.kind == "refunded" else fact.payment_id
        current = slot.get(natural)
        if current is None or fact.order_key < current.order_key:
            slot[natural] = fact
        if latest is None or fact.occurred_at > latest:
            latest = fact.occurred_at
    return found._replace(latest=latest)


def derive(booking_id: str, facts: Iterable[Fact]) -> Derivation | None:
    """The booking derived from `facts` (all of one booking), or None if no payment is known."""
    c = canonical(facts)
    attempts = _attempts(c)
    if not attempts:
        return None
    assert c.latest is not None
    refunds = sorted(c.refunded.values(), key=lambda f: (f.occurred_at, f.refund_id))
    completions = sorted(c.completed.values(), key=lambda f: (f.occurred_at, f.payment_id))
    anomalies = amount_mismatches(booking_id, c.initiated, completions)
    if not completions:
        return _unpaid(booking_id, attempts, refunds, anomalies, c.latest)
    winner = completions[0]
    anomalies += double_charges(booking_id, winner, completions[1:])
    own = [r for r in refunds if r.payment_id == winner.payment_id] if refunds else []
    outcome = settle_refunds(booking_id, winner, own)
    status = _paid_status(winner, outcome)
    booking = BookingState(
        booking_id, status, winner.user_id, winner.payment_id, winner.transaction_id,
        confirmation_number(booking_id, winner.payment_id), winner.amount, winner.currency,
        outcome.total, c.latest,
    )  # fmt: skip
    return Derivation(
        booking,
        HOLD_BY_STATUS[status],
        (*anomalies, *outcome.anomalies),
        attempts,
        winner,
        outcome.applied,
        outcome.rejected,
        tuple(r for r in refunds if r.payment_id not in c.completed),
        tuple(
            r for r in refunds if r.payment_id in c.completed and r.payment_id != winner.payment_id
        ),
    )


def _attempts(c: Canonical) -> tuple[Attempt, ...]:
    attempts = []
    for payment_id in c.initiated.keys() | c.completed.keys() | c.failed.keys():
        initiated = c.initiated.get(payment_id)
        completed = c.completed.get(payment_id)
        failed = c.failed.get(payment_id)
        if initiated is not None:
            started = initiated.occurred_at
        else:
            started = min(f.occurred_at for f in (completed, failed) if f is not None)
        attempts.append(Attempt(payment_id, started, initiated, completed, failed))
    attempts.sort(key=lambda a: (a.started_at, a.payment_id))
    return tuple(attempts)


def _paid_status(winner: Fact, outcome: RefundOutcome) -> BookingStatus:
    if not outcome.applied:
        return "confirmed"
    return "cancelled" if outcome.total >= winner.amount else "partially_refunded"


def _unpaid(
    booking_id: str,
    attempts: tuple[Attempt, ...],
    refunds: list[Fact],
    anomalies: list[Anomaly],
    updated_at: datetime,
) -> Derivation:
    latest = attempts[-1]
    status: BookingStatus = "payment_failed" if latest.failed else "payment_pending"
    source = latest.initiated or latest.failed
    assert source is not None, "an attempt without completion has an initiation or a failure"
    booking = BookingState(
        booking_id, status, source.user_id, latest.payment_id, None, None, source.amount,
        source.currency, source.amount * 0, updated_at,
    )  # fmt: skip
    return Derivation(
        booking,
        HOLD_BY_STATUS[status],
        tuple(anomalies),
        attempts,
        None,
        (),
        (),
        tuple(refunds),
        (),
    )
