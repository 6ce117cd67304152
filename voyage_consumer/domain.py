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

from collections.abc import Callable, Iterable
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


_SLOTS: Final = {"initiated": 0, "completed": 1, "failed": 2, "refunded": 3}


def canonical(facts: Iterable[Fact]) -> Canonical:
    """Keep, per (kind, paymentId or refundId), the earliest fact by (occurredAt, eventId)."""
    slots: tuple[dict[str, Fact], dict[str, Fact], dict[str, Fact], dict[str, Fact]]
    slots = ({}, {}, {}, {})
    index = _SLOTS
    latest = None
    for fact in facts:
        kind = fact.kind
        slot = slots[index[kind]]
        natural = fact.refund_id or fact.event_id if kind == "refunded" else fact.payment_id
        current = slot.get(natural)
        at = fact.occurred_at
        if current is None or (at, fact.event_id) < (current.occurred_at, current.event_id):
            slot[natural] = fact
        if latest is None or at > latest:
            latest = at
    return Canonical(slots[0], slots[1], slots[2], slots[3], latest)


def derive(booking_id: str, facts: Iterable[Fact]) -> Derivation | None:
    """The booking derived from `facts` (all of one booking), or None if no payment is known."""
    return _derive(booking_id, facts, explained=True)


def decide(booking_id: str, facts: Iterable[Fact]) -> Derivation | None:
    """`derive` without the explanation of a paid booking: the same `booking`, `hold` and
    `anomalies`, but `attempts`, `pending_refunds` and `other_refunds` left empty.

    What the handler stores (it derives every booking a batch touches, and lists the
    attempts of a paid booking only to explain it); the rules are the same code.
    """
    return _derive(booking_id, facts, explained=False)


def _derive(booking_id: str, facts: Iterable[Fact], *, explained: bool) -> Derivation | None:
    c = canonical(facts)
    if not (c.initiated or c.completed or c.failed):
        return None
    assert c.latest is not None
    refunds = _in_order(c.refunded, _refund_order)
    completions = _in_order(c.completed, _completion_order)
    anomalies = amount_mismatches(booking_id, c.initiated, completions)
    if not completions:
        return _unpaid(booking_id, _attempts(c), refunds, anomalies, c.latest)
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
    explain = explained and refunds
    return Derivation(
        booking,
        HOLD_BY_STATUS[status],
        (*anomalies, *outcome.anomalies),
        _attempts(c) if explained else (),
        winner,
        outcome.applied,
        outcome.rejected,
        tuple(r for r in refunds if r.payment_id not in c.completed) if explain else (),
        tuple(
            r for r in refunds if r.payment_id in c.completed and r.payment_id != winner.payment_id
        )
        if explain
        else (),
    )


def _in_order(
    facts: dict[str, Fact], key: Callable[[Fact], tuple[datetime, str | None]]
) -> list[Fact]:
    """`facts`' values sorted by `key` (one or none need no sorting: the common case)."""
    found = list(facts.values())
    if len(found) > 1:
        found.sort(key=key)
    return found


def _refund_order(fact: Fact) -> tuple[datetime, str | None]:
    return (fact.occurred_at, fact.refund_id)


def _completion_order(fact: Fact) -> tuple[datetime, str | None]:
    return (fact.occurred_at, fact.payment_id)


def _attempts(c: Canonical) -> tuple[Attempt, ...]:
    initiated, completed, failed = c.initiated, c.completed, c.failed
    ids = initiated.keys() | completed.keys() | failed.keys() if completed or failed else initiated
    attempts = []
    for payment_id in ids:
        started = initiated.get(payment_id)
        done = completed.get(payment_id)
        lost = failed.get(payment_id)
        if started is not None:
            at = started.occurred_at
        else:
            at = min(f.occurred_at for f in (done, lost) if f is not None)
        attempts.append(Attempt(payment_id, at, started, done, lost))
    if len(attempts) > 1:
        attempts.sort(key=_attempt_order)
    return tuple(attempts)


def _attempt_order(attempt: Attempt) -> tuple[datetime, str]:
    return (attempt.started_at, attempt.payment_id)


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
