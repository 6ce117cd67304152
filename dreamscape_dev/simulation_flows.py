"""The simulated bookings: who paid what, which attempts failed, what was refunded.

This is the ground truth of a simulation, drawn before anything is encoded. The records are
rendered from it and the expectations are computed from it, so the two are independent
views of one history: a consumer that ends in the expected state has read the records right.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Literal

from dreamscape_dev.simulation_data import (
    FULL_REFUND_REASONS,
    PARTIAL_REFUND_REASONS,
    IdFactory,
    draw_amount_minor,
    draw_currency,
    draw_error_code,
    draw_initiated_ms,
    draw_method,
    draw_processing_ms,
    draw_refund_delay_ms,
    draw_retry_gap_ms,
    draw_second_refund_gap_ms,
    draw_share,
)

BookingStatus = Literal[
    "confirmed", "payment_failed", "partially_refunded", "cancelled", "payment_pending"
]
Outcome = Literal["completed", "failed"]

FOREIGN_CURRENCY_RATE: Final = 0.1
"""Share of bookings paid in another currency than the user's usual one."""
SWITCH_METHOD_RATE: Final = 0.5
"""Share of retries made with another payment method than the failed attempt."""


@dataclass(frozen=True, slots=True)
class FlowRates:
    """The probabilities and bounds that shape each booking's flow."""

    failure: float
    retry: float
    refund: float
    partial_refund: float
    abandon: float
    max_attempts: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One payment (one paymentId): initiated, then completed, failed, or left without outcome."""

    payment_id: str
    method: str
    initiated_ms: int
    initiated_event_id: str
    outcome: Outcome | None = None
    outcome_ms: int = 0
    outcome_event_id: str = ""
    transaction_id: str = ""
    error_code: str = ""


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    amount_minor: int
    refunded_ms: int
    reason: str
    event_id: str


@dataclass(frozen=True, slots=True)
class Booking:
    """A booking's payment history; at most one attempt completes, and it is the last one."""

    booking_id: str
    user_id: str
    currency: str
    amount_minor: int
    attempts: tuple[Attempt, ...]
    refunds: tuple[Refund, ...]

    @property
    def paid(self) -> Attempt | None:
        last = self.attempts[-1]
        return last if last.outcome == "completed" else None

    @property
    def status(self) -> BookingStatus:
        if self.paid is not None:
            if not self.refunds:
                return "confirmed"
            refunded = sum(r.amount_minor for r in self.refunds)
            return "cancelled" if refunded >= self.amount_minor else "partially_refunded"
        if any(a.outcome == "failed" for a in self.attempts):
            return "payment_failed"
        return "payment_pending"


class _Users:
    """A pool of users, each with a usual currency; bookings pick from it, so users repeat."""

    def __init__(self, rng: random.Random, ids: IdFactory, size: int) -> None:
        self._rng, self._ids, self._size = rng, ids, max(1, size)
        self._known: dict[int, tuple[str, str]] = {}

    def pick(self) -> tuple[str, str]:
        index = self._rng.randrange(self._size)
        if index not in self._known:
            self._known[index] = (self._ids.user(), draw_currency(self._rng))
        return self._known[index]


def draw_bookings(
    rng: random.Random, ids: IdFactory, rates: FlowRates, flows: int, start_ms: int, days: int
) -> list[Booking]:
    """`flows` bookings starting within `days` after `start_ms`, about 1.5 per user."""
    users = _Users(rng, ids, flows * 2 // 3)
    return [
        _draw_booking(rng, ids, rates, users, draw_initiated_ms(rng, start_ms, days))
        for _ in range(flows)
    ]


def _draw_booking(
    rng: random.Random, ids: IdFactory, rates: FlowRates, users: _Users, at_ms: int
) -> Booking:
    user_id, currency = users.pick()
    if rng.random() < FOREIGN_CURRENCY_RATE:
        currency = draw_currency(rng)
    amount = draw_amount_minor(rng, currency)
    attempts = _draw_attempts(rng, ids, rates, at_ms)
    last = attempts[-1]
    refunds = (
        _draw_refunds(rng, ids, rates, amount, last.outcome_ms)
        if last.outcome == "completed"
        else ()
    )
    return Booking(ids.booking(), user_id, currency, amount, attempts, refunds)


def _draw_attempts(
    rng: random.Random, ids: IdFactory, rates: FlowRates, at_ms: int
) -> tuple[Attempt, ...]:
    """Attempts until one completes, the user gives up, or the attempt limit is reached."""
    method = draw_method(rng)
    if rng.random() < rates.abandon:
        return (Attempt(ids.payment(), method, at_ms, ids.event()),)
    attempts: list[Attempt] = []
    while True:
        attempt = _draw_attempt(rng, ids, method, at_ms, failed=rng.random() < rates.failure)
        attempts.append(attempt)
        if (
            attempt.outcome == "completed"
            or len(attempts) >= rates.max_attempts
            or rng.random() >= rates.retry
        ):
            return tuple(attempts)
        at_ms = attempt.outcome_ms + draw_retry_gap_ms(rng)
        if rng.random() < SWITCH_METHOD_RATE:
            method = draw_method(rng)


def _draw_attempt(
    rng: random.Random, ids: IdFactory, method: str, at_ms: int, *, failed: bool
) -> Attempt:
    payment_id, initiated_event_id = ids.payment(), ids.event()
    done_ms = at_ms + draw_processing_ms(rng)
    if failed:
        error = draw_error_code(rng)
        return Attempt(
            payment_id,
            method,
            at_ms,
            initiated_event_id,
            "failed",
            done_ms,
            ids.event(),
            error_code=error,
        )
    return Attempt(
        payment_id,
        method,
        at_ms,
        initiated_event_id,
        "completed",
        done_ms,
        ids.event(),
        ids.transaction(),
    )


def _draw_refunds(
    rng: random.Random, ids: IdFactory, rates: FlowRates, amount: int, paid_ms: int
) -> tuple[Refund, ...]:
    if rng.random() >= rates.refund:
        return ()
    at_ms = paid_ms + draw_refund_delay_ms(rng)
    if rng.random() >= rates.partial_refund:
        reason = rng.choice(FULL_REFUND_REASONS)
        return (Refund(ids.refund(), amount, at_ms, reason, ids.event()),)
    refunds: list[Refund] = []
    for part in _partial_amounts(rng, amount):
        reason = rng.choice(PARTIAL_REFUND_REASONS)
        refunds.append(Refund(ids.refund(), part, at_ms, reason, ids.event()))
        at_ms += draw_second_refund_gap_ms(rng)
    return tuple(refunds)


def _partial_amounts(rng: random.Random, amount: int) -> list[int]:
    """One or two partial refunds; the second sometimes refunds the rest (then it is cancelled)."""
    first = draw_share(rng, amount, 0.1, 0.7)
    if rng.random() < 0.5:
        return [first]
    rest = amount - first
    second = rest if rng.random() < 0.35 else draw_share(rng, rest, 0.2, 0.9)
    return [first, second]
