"""The batch's writes: counters, payment facts, refunds and audit rows, one statement per table.

Rows are sorted by key before they are written so that two instances touching the same rows
(a payment whose halves they share) lock them in the same order and cannot deadlock.
Increments are atomic upserts (`n = n + excluded.n`); payment facts merge with COALESCE
(the first value seen wins) and compute the time to complete from the joined row, so the
result is the same whichever instance sees which half first, and whenever. The statements
go through `common.bulk`; every column here is text or an integer, so rows need no encoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlmodel import Session

from analytics_consumer import audit
from analytics_consumer.aggregate import BatchDelta, RefundRow
from analytics_consumer.days import day_text
from analytics_consumer.schema import AnalyticsDaily, AnalyticsPayment, AnalyticsRefund
from common import bulk
from common.db import table_of

_DAILY: Final = table_of(AnalyticsDaily)
_PAYMENT: Final = table_of(AnalyticsPayment)
_REFUND: Final = table_of(AnalyticsRefund)
_AUDIT: Final = table_of(audit.AnalyticsAudit)

_COUNTERS: Final = ("day", "metric", "key", "writer", "n", "units")
_PAYMENTS: Final = (
    "payment_id",
    "method",
    "currency",
    "initiated_units",
    "initiated_ms",
    "completed_currency",
    "completed_units",
    "completed_ms",
    "transaction_id",
    "completions",
    "failed_ms",
    "first_refund_ms",
    "duration_ms",
)
_MERGED_OTHERWISE: Final = (
    "payment_id",
    "completions",
    "failed_ms",
    "first_refund_ms",
    "duration_ms",
)
_FIRST_WINS: Final = tuple(c for c in _PAYMENTS if c not in _MERGED_OTHERWISE)
"""Every other column keeps the first value any event gave it (COALESCE)."""
_REFUNDS: Final = RefundRow._fields
_ADD_COUNTS: Final = (
    "(day, metric, key, writer) DO UPDATE SET "
    "n = analytics_daily.n + excluded.n, units = analytics_daily.units + excluded.units"
)


class Writer:
    """Writes the deltas of one process (`writer`, the key of its own counter rows)."""

    def __init__(self, dialect: bulk.Dialect, *, writer: str) -> None:
        self._writer = writer
        self._merge_payments = _payment_merge(dialect)

    def write(self, session: Session, delta: BatchDelta) -> None:
        """Add the delta's counters, merge its payment facts, append its refunds."""
        if delta.counters:
            bulk.insert_rows(
                session=session,
                table=_DAILY,
                columns=_COUNTERS,
                rows=sorted(
                    (day_text(day), metric, key, self._writer, n, units)
                    for (day, metric, key), (n, units) in delta.counters.items()
                ),
                on_conflict=_ADD_COUNTS,
            )
        if delta.payments:
            bulk.insert_rows(
                session=session,
                table=_PAYMENT,
                columns=_PAYMENTS,
                rows=[delta.payments[key].row() for key in sorted(delta.payments)],
                on_conflict=self._merge_payments,
            )
        if delta.refunds:
            bulk.insert_rows(
                session=session,
                table=_REFUND,
                columns=_REFUNDS,
                rows=sorted(delta.refunds),
                on_conflict="DO NOTHING",
            )

    def append_audit(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append audit rows (`audit.rows`, sorted by key); a row already there is kept.

        The inbox already lets each eventId through once; DO NOTHING only makes sure the
        first stored copy of a row is never overwritten.
        """
        bulk.insert_rows(
            session=session,
            table=_AUDIT,
            columns=audit.COLUMNS,
            rows=rows,
            on_conflict="DO NOTHING",
        )


def _payment_merge(dialect: bulk.Dialect) -> str:
    old, new = "analytics_payment", "excluded"
    merge = [f"{c} = COALESCE({old}.{c}, {new}.{c})" for c in _FIRST_WINS]
    merge.append(f"completions = {old}.completions + {new}.completions")
    # The earliest of several failed attempts (and of several refunds), whatever the order
    # in which their batches arrive: it places the payment on a day and in the alert window.
    for column in ("failed_ms", "first_refund_ms"):
        merge.append(f"{column} = " + _least(dialect, f"{old}.{column}", f"{new}.{column}"))
    merge.append(
        f"duration_ms = COALESCE({old}.completed_ms, {new}.completed_ms)"
        f" - COALESCE({old}.initiated_ms, {new}.initiated_ms)"
    )
    return f"(payment_id) DO UPDATE SET {', '.join(merge)}"


def _least(dialect: bulk.Dialect, first: str, second: str) -> str:
    """The smaller of two nullable values, ignoring NULL (NULL only if both are).

    SQLite's two-argument `min()` returns NULL if either is; PostgreSQL's LEAST skips NULLs.
    """
    if dialect == "sqlite":
        return f"coalesce(min({first}, {second}), {first}, {second})"
    return f"LEAST({first}, {second})"
