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
class DaySummary:
    """One UTC day's counters (the dashboard's series, the report's `days`)."""

    day: str
    initiated: int
    completed: int
    failed: int
    refunded_payments: int
    revenue: dict[str, int]

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

    @property
    def initiated(self) -> int:
        return self.events.get(PAYMENT_INITIATED, 0)

    @property
    def completed(self) -> int:
        return self.events.get(PAYMENT_COMPLETED, 0)

    @property
    def failed(self) -> int:
        return self.events.get(PAYMENT_FAILED, 0)

    @property
    def success_rate(self) -> Decimal | None:
        return rate(self.completed, self.initiated)

    @property
    def failure_rate(self) -> Decimal | None:
        return rate(self.failed, self.initiated)

    @property
    def refund_rate(self) -> Decimal | None:
        return rate(self.refunded_payments, self.completed)
