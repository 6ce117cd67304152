"""Reads over the per-payment facts for a range of event time: medians, percentiles, delays.

These are the figures additive counters cannot give: an order statistic (median, p50, p95)
or a join of a payment's two halves (time to complete, revenue by method, payments still
waiting). Each is a small indexed query over `analytics_payment` restricted to a half-open
millisecond range `[lo, hi)` of the relevant event time (the completed time for completed
payments, the initiated time for initiated ones...), so "one UTC day" and "the last hour
before the latest event" are the same code. Functions take a keyword-only `session`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from analytics_consumer import money
from analytics_consumer.figures import (
    DURATION_BUCKETS_S,
    Abandonment,
    Delays,
    Durations,
    RefundsVsOriginal,
    nearest_rank,
)

Range = tuple[int, int]

_P = "analytics_payment"
_NO_OUTCOME = "completed_ms IS NULL AND failed_ms IS NULL"


@dataclass(frozen=True)
class Waiting:
    """How long a payment may wait for its outcome: by method, before it is abandoned; and
    the methods whose wait is the customer's, never a processing delay."""

    after_ms: Mapping[str, int] = field(default_factory=dict)
    default_ms: int | None = None
    """None: nothing is ever abandoned (every wait counts as a delay)."""
    exempt: Collection[str] = ()

    def abandoned(self, params: dict[str, object]) -> str:
        """SQL true for a payment initiated past its abandonment threshold before :latest."""
        if self.default_ms is None:
            return "1 = 0"
        cases = []
        for index, (method, ms) in enumerate(sorted(self.after_ms.items())):
            params[f"am{index}"], params[f"at{index}"] = method, ms
            cases.append(f"WHEN :am{index} THEN :at{index}")
        params["adefault"] = self.default_ms
        threshold = f"CASE method {' '.join(cases)} ELSE :adefault END" if cases else ":adefault"
        return f"initiated_ms < :latest - ({threshold})"

    def counted(self, params: dict[str, object]) -> str:
        """SQL true for a payment whose wait may be a processing delay (method not exempt)."""
        if not self.exempt:
            return "1 = 1"
        names = []
        for index, method in enumerate(sorted(self.exempt)):
            params[f"ex{index}"] = method
            names.append(f":ex{index}")
        return f"(method IS NULL OR method NOT IN ({', '.join(names)}))"


def _one(session: Session, sql: str, **params: object) -> Any:
    return session.execute(text(sql), params).scalar()


def latest_event_ms(*, session: Session) -> int | None:
    """The latest occurrence time of any counted event (the clock of delay alerts)."""
    found = [
        _one(session, f"SELECT MAX({column}) FROM {table} WHERE {column} IS NOT NULL")  # noqa: S608 - constants
        for table, column in (
            (_P, "initiated_ms"),
            (_P, "completed_ms"),
            (_P, "failed_ms"),
            ("analytics_refund", "refunded_ms"),
        )
    ]
    values = [int(v) for v in found if v is not None]
    return max(values, default=None)


def payments_with(column: str, *, session: Session, span: Range) -> int:
    """Payments whose `column` time (initiated_ms, completed_ms...) falls in `span`."""
    sql = f"SELECT COUNT(*) FROM {_P} WHERE {column} >= :lo AND {column} < :hi"  # noqa: S608
    return int(_one(session, sql, lo=span[0], hi=span[1]))


def medians(*, session: Session, span: Range) -> tuple[dict[str, Decimal], dict[str, int]]:
    """Median completed amount per currency, and how many payments each is the median of."""
    counts = {
        str(currency): int(n)
        for currency, n in session.execute(
            text(
                f"SELECT completed_currency, COUNT(*) FROM {_P} "  # noqa: S608
                "WHERE completed_ms >= :lo AND completed_ms < :hi GROUP BY completed_currency"
            ),
            {"lo": span[0], "hi": span[1]},
        )
    }
    found: dict[str, Decimal] = {}
    for currency, n in counts.items():
        middle = session.execute(
            text(
                f"SELECT completed_units FROM {_P} WHERE completed_currency = :c "  # noqa: S608
                "AND completed_ms >= :lo AND completed_ms < :hi "
                "ORDER BY completed_units LIMIT :k OFFSET :skip"
            ),
            {"c": currency, "lo": span[0], "hi": span[1], "k": 2 - n % 2, "skip": (n - 1) // 2},
        ).scalars()
        values = [int(v) for v in middle]
        found[currency] = money.median(values[0], values[-1], currency)
    return found, counts


def revenue_by_method(*, session: Session, span: Range) -> dict[str, dict[str, int]]:
    """Method → currency → completed units; `(unknown)` until a payment's initiated event is seen."""
    rows = session.execute(
        text(
            f"SELECT COALESCE(method, '(unknown)'), completed_currency, SUM(completed_units) "  # noqa: S608
            f"FROM {_P} WHERE completed_ms >= :lo AND completed_ms < :hi "
            "GROUP BY COALESCE(method, '(unknown)'), completed_currency"
        ),
        {"lo": span[0], "hi": span[1]},
    )
    result: dict[str, dict[str, int]] = {}
    for method, currency, units in rows:
        result.setdefault(str(method), {})[str(currency)] = int(units)
    return result


def durations(*, session: Session, span: Range) -> Durations:
    """Time to complete of payments completed in `span` (both halves seen): p50, p95, max."""
    where = (
        f"FROM {_P} WHERE completed_ms >= :lo AND completed_ms < :hi AND duration_ms IS NOT NULL"
    )
    params = {"lo": span[0], "hi": span[1]}
    statement = text(f"SELECT COUNT(*), MAX(duration_ms) {where}")
    count, longest = session.execute(statement, params).one()
    if not count:
        return Durations()

    def at_rank(percent: int) -> int:
        skip = nearest_rank(int(count), percent) - 1
        sql = f"SELECT duration_ms {where} ORDER BY duration_ms LIMIT 1 OFFSET :skip"
        return int(_one(session, sql, skip=skip, **params))

    cases = " ".join(
        f"WHEN duration_ms < {bound * 1000} THEN {index}"
        for index, bound in enumerate(DURATION_BUCKETS_S)
    )
    bucket = f"CASE {cases} ELSE {len(DURATION_BUCKETS_S)} END"
    histogram = [0] * (len(DURATION_BUCKETS_S) + 1)
    grouped = text(f"SELECT {bucket}, COUNT(*) {where} GROUP BY {bucket}")
    for index, n in session.execute(grouped, params):
        histogram[int(index)] = int(n)
    return Durations(int(count), at_rank(50), at_rank(95), int(longest), tuple(histogram))


def delays(
    *,
    session: Session,
    span: Range,
    threshold_ms: int,
    latest_ms: int | None,
    waiting: Waiting = Waiting(),
) -> Delays:
    """Payments of `span` slower than `threshold_ms`, and the longest wait seen.

    Pending payments count only while inside their abandonment window (`waiting`); methods
    it exempts count neither as slow nor as pending.
    """
    params: dict[str, object] = {"lo": span[0], "hi": span[1], "t": threshold_ms}
    counted = waiting.counted(params)
    slow_done, longest_done = session.execute(
        text(
            "SELECT SUM(CASE WHEN duration_ms > :t THEN 1 ELSE 0 END), MAX(duration_ms) "  # noqa: S608
            f"FROM {_P} WHERE completed_ms >= :lo AND completed_ms < :hi AND {counted}"
        ),
        params,
    ).one()
    # A payment that failed and then completed in `span` (another card) is one payment: its
    # completion, always later than its first failure, already counts it.
    slow_failed, longest_failed = session.execute(
        text(
            "SELECT SUM(CASE WHEN failed_ms - initiated_ms > :t THEN 1 ELSE 0 END), "  # noqa: S608
            f"MAX(failed_ms - initiated_ms) FROM {_P} "
            f"WHERE failed_ms >= :lo AND failed_ms < :hi AND initiated_ms IS NOT NULL AND {counted} "
            "AND (completed_ms IS NULL OR completed_ms < :lo OR completed_ms >= :hi)"
        ),
        params,
    ).one()
    pending, oldest = 0, None
    if latest_ms is not None:
        params |= {"cutoff": latest_ms - threshold_ms, "latest": latest_ms}
        abandoned = waiting.abandoned(params)
        pending, oldest = session.execute(
            text(
                "SELECT SUM(CASE WHEN initiated_ms < :cutoff THEN 1 ELSE 0 END), MIN(initiated_ms) "  # noqa: S608
                f"FROM {_P} WHERE initiated_ms >= :lo AND initiated_ms < :hi "
                f"AND {_NO_OUTCOME} AND {counted} AND NOT ({abandoned})"
            ),
            params,
        ).one()
    waits = [longest_done, longest_failed, None if oldest is None else latest_ms - oldest]
    known = [int(w) for w in waits if w is not None]
    return Delays(
        threshold_ms,
        slow=int(slow_done or 0) + int(slow_failed or 0),
        pending=int(pending or 0),
        longest_ms=max(known, default=None),
    )


def abandoned(
    *, session: Session, span: Range, latest_ms: int | None, waiting: Waiting
) -> Abandonment:
    """Payments initiated in `span`, without any outcome, past their method's threshold."""
    if latest_ms is None:
        return Abandonment()
    params: dict[str, object] = {"lo": span[0], "hi": span[1], "latest": latest_ms}
    condition = waiting.abandoned(params)
    rows = session.execute(
        text(
            f"SELECT method, currency, COUNT(*), SUM(initiated_units) FROM {_P} "  # noqa: S608
            f"WHERE initiated_ms >= :lo AND initiated_ms < :hi AND {_NO_OUTCOME} AND {condition} "
            "GROUP BY method, currency"
        ),
        params,
    )
    by_method: dict[str, int] = {}
    amount: dict[str, int] = {}
    for method, currency, n, units in rows:
        by_method[str(method)] = by_method.get(str(method), 0) + int(n)
        amount[str(currency)] = amount.get(str(currency), 0) + int(units or 0)
    return Abandonment(
        sum(by_method.values()), dict(sorted(by_method.items())), dict(sorted(amount.items()))
    )


def recovered(*, session: Session, span: Range) -> int:
    """Payments whose first failure is in `span` and that completed all the same."""
    sql = (
        f"SELECT COUNT(*) FROM {_P} WHERE failed_ms >= :lo AND failed_ms < :hi "  # noqa: S608
        "AND completed_ms IS NOT NULL"
    )
    return int(_one(session, sql, lo=span[0], hi=span[1]))


def first_initiated_ms(*, session: Session, span: Range) -> int | None:
    """The earliest initiation time in `span`."""
    sql = f"SELECT MIN(initiated_ms) FROM {_P} WHERE initiated_ms >= :lo AND initiated_ms < :hi"  # noqa: S608
    found = _one(session, sql, lo=span[0], hi=span[1])
    return None if found is None else int(found)


def refunds_vs_original(*, session: Session, span: Range) -> RefundsVsOriginal:
    """Each payment's refunds in `span` summed, against the amount it completed with."""
    rows = session.execute(
        text(
            "SELECT r.payment_id, r.currency, SUM(r.units), "  # noqa: S608
            "MAX(p.completed_units), MAX(p.completed_currency) "
            f"FROM analytics_refund r LEFT JOIN {_P} p ON p.payment_id = r.payment_id "
            "WHERE r.refunded_ms >= :lo AND r.refunded_ms < :hi GROUP BY r.payment_id, r.currency"
        ),
        {"lo": span[0], "hi": span[1]},
    )
    kinds = {"full": 0, "partial": 0, "exceeding": 0, "without_original": 0}
    refunded: dict[str, int] = {}
    original: dict[str, int] = {}
    payments = 0
    for _payment, currency, units, completed, completed_currency in rows:
        payments += 1
        if completed is None or completed_currency != currency:
            kinds["without_original"] += 1
            continue
        units, completed = int(units), int(completed)
        kind = "full" if units == completed else "partial" if units < completed else "exceeding"
        kinds[kind] += 1
        refunded[currency] = refunded.get(currency, 0) + units
        original[currency] = original.get(currency, 0) + completed
    return RefundsVsOriginal(
        payments,
        **kinds,
        refunded=dict(sorted(refunded.items())),
        original=dict(sorted(original.items())),
    )


def unusual_amounts(
    limits: Mapping[str, Decimal], *, session: Session, span: Range
) -> dict[str, int]:
    """Per currency, payments initiated in `span` above that currency's limit."""
    found: dict[str, int] = {}
    for currency, limit in sorted(limits.items()):
        ceiling = int((limit * money.UNITS_PER_MAJOR).to_integral_value(ROUND_FLOOR))
        sql = (
            f"SELECT COUNT(*) FROM {_P} WHERE currency = :c "  # noqa: S608
            "AND initiated_ms >= :lo AND initiated_ms < :hi AND initiated_units > :ceiling"
        )
        found[currency] = int(
            _one(session, sql, c=currency, lo=span[0], hi=span[1], ceiling=ceiling)
        )
    return found
