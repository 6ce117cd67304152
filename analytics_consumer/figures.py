"""The figures of a report, as plain values, and the pure arithmetic on them.

`Figures` is what the queries read (`queries`) and what the report, the dashboard, the
alerts and the Prometheus gauges are built from. Rates are percentages rounded half-even
to two decimals and None when their denominator is zero; percentiles are nearest-rank
(the smallest value with at least p% of the values at or below it), so every figure is an
exact function of the events and can be recomputed independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from math import ceil
from typing import Final

from common.topics import PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_INITIATED

_CENT = Decimal("0.01")

DURATION_BUCKETS_S: Final = (5, 10, 20, 30, 60, 120, 180)
"""Upper bounds (exclusive) of the time-to-complete histogram; a last bucket holds the rest."""


def rate(part: int, whole: int) -> Decimal | None:
    """`part / whole * 100`, rounded half-even to 0.01; None when `whole` is 0."""
    if whole == 0:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def nearest_rank(count: int, percent: int) -> int:
    """The 1-based rank of the `percent`th percentile among `count` sorted values."""
    return max(1, ceil(count * percent / 100))


@dataclass(frozen=True)
class Durations:
    """Time to complete, in milliseconds (None without any joined payment)."""

    count: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None
    max_ms: int | None = None
    histogram: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS_S) + 1)
    """Payments per bucket of `DURATION_BUCKETS_S` (then one for the longer ones)."""


@dataclass(frozen=True)
class Delays:
    """Payments slower than the processing-delay threshold, finished or still pending."""

    threshold_ms: int
    slow: int = 0
    """Completed or failed longer than the threshold after they were initiated."""
    pending: int = 0
    """Initiated more than the threshold before the latest event time, and no outcome yet."""
    longest_ms: int | None = None


@dataclass(frozen=True)
class Abandonment:
    """Payments initiated and never finished (no completion, no failure) past the abandonment
    threshold of their payment method, as of the latest event time."""

    count: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    amount: dict[str, int] = field(default_factory=dict)
    """Currency → units of the abandoned payments' initiated amounts."""


@dataclass(frozen=True)
class RefundsVsOriginal:
    """The refunds of a scope against the completed amount of the payments they refund.

    Per refunded payment, the sum of its refunds in scope compared with its completed
    amount: `full` (equal), `partial` (less), `exceeding` (more: look at it), or
    `without_original` (no completion seen for it, or in another currency).
    """

    payments: int = 0
    full: int = 0
    partial: int = 0
    exceeding: int = 0
    without_original: int = 0
    refunded: dict[str, int] = field(default_factory=dict)
    """Currency → units refunded, of the payments whose completion is known."""
    original: dict[str, int] = field(default_factory=dict)
    """Currency → units those payments completed with."""

    def percent(self) -> dict[str, Decimal | None]:
        """Currency → refunded / original * 100 (2 decimals)."""
        return {
            currency: rate(units, self.original.get(currency, 0))
            for currency, units in sorted(self.refunded.items())
        }


@dataclass(frozen=True)
class Initiation:
    """Payments initiated over a span of event time (the initiation rate)."""

    count: int = 0
    span_ms: int = 0
    """All time: the first initiation to the latest event; a day: its 24 hours, or up to
    the latest event on the latest day."""

    @property
    def per_hour(self) -> Decimal | None:
        """Initiations per hour (2 decimals), None over an empty span."""
        if self.span_ms <= 0:
            return None
        per_hour = Decimal(self.count) * 3_600_000 / Decimal(self.span_ms)
        return per_hour.quantize(_CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class DaySummary:
    """One UTC day's counters (the dashboard's series, the report's `days`)."""

    day: str
    initiated: int
    completed: int
    failed: int
    """Payments whose first failed attempt falls on this day."""
    refunded_payments: int
    revenue: dict[str, int]
    failed_attempts: int = 0
    """payment.failed events (attempts) of this day."""

    @property
    def success_rate(self) -> Decimal | None:
        return rate(self.completed, self.initiated)

    @property
    def failure_rate(self) -> Decimal | None:
        return rate(self.failed, self.initiated)

    @property
    def refund_rate(self) -> Decimal | None:
        return rate(self.refunded_payments, self.completed)


@dataclass(frozen=True)
class Figures:
    """Every figure of one scope: all time (`day` None) or one UTC day."""

    day: str | None
    latest_event_ms: int | None
    events: dict[str, int]
    refunded_payments: int
    revenue: dict[str, int]
    """Currency → units (see `money`) of completed payments."""
    completed_by_currency: dict[str, int]
    refunded: dict[str, int]
    medians: dict[str, Decimal]
    methods: dict[str, int]
    revenue_by_method: dict[str, dict[str, int]]
    failure_reasons: dict[str, int]
    durations: Durations
    delays: Delays
    unusual_amounts: dict[str, int]
    """Currency → initiated payments whose amount is unusual (see `alerts`)."""
    days: list[DaySummary] = field(default_factory=list)
    failed_payments: int | None = None
    """Payments with at least one failed attempt, counted once, when their first failure is
    in scope (None: taken as the failed attempts, for figures built without it)."""
    recovered_payments: int = 0
    """Of `failed_payments`, those that completed after all (another card)."""
    initiated_amount: dict[str, int] = field(default_factory=dict)
    """Currency → units of initiated payments."""
    initiated_by_currency: dict[str, int] = field(default_factory=dict)
    initiation: Initiation = Initiation()
    refund_reasons: dict[str, int] = field(default_factory=dict)
    """The refunds' `reason` → refunds."""
    refunds_vs_original: RefundsVsOriginal = RefundsVsOriginal()
    abandoned: Abandonment = Abandonment()

    @property
    def initiated(self) -> int:
        return self.events.get(PAYMENT_INITIATED, 0)

    @property
    def completed(self) -> int:
        return self.events.get(PAYMENT_COMPLETED, 0)

    @property
    def failed_attempts(self) -> int:
        """payment.failed events: every failed attempt (a payment may fail several times)."""
        return self.events.get(PAYMENT_FAILED, 0)

    @property
    def failed(self) -> int:
        """Failed payments: each payment with at least one failed attempt, once."""
        return self.failed_attempts if self.failed_payments is None else self.failed_payments

    @property
    def success_rate(self) -> Decimal | None:
        return rate(self.completed, self.initiated)

    @property
    def failure_rate(self) -> Decimal | None:
        return rate(self.failed, self.initiated)

    @property
    def refund_rate(self) -> Decimal | None:
        return rate(self.refunded_payments, self.completed)
