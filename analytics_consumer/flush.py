"""The batch's writes: inbox, counters, payment facts and refunds, one statement per table.

Rows are sorted by key before they are written so that two instances touching the same rows
(a payment whose halves they share) lock them in the same order and cannot deadlock.
Increments are atomic upserts (`n = n + excluded.n`); payment facts merge with COALESCE
(the first value seen wins) and compute the time to complete from the joined row, so the
result is the same whichever instance sees which half first, and whenever.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from sqlmodel import Session

from analytics_consumer.aggregate import BatchDelta
from analytics_consumer.bulk import Columns, Dialect
from analytics_consumer.days import day_text

_COUNTERS: Final[Columns] = [
    ("day", "text"),
    ("metric", "text"),
    ("key", "text"),
    ("writer", "text"),
    ("n", "bigint"),
    ("units", "bigint"),
]
_PAYMENTS: Final[Columns] = [
    ("payment_id", "text"),
    ("method", "text"),
    ("currency", "text"),
    ("initiated_units", "bigint"),
    ("initiated_ms", "bigint"),
    ("completed_currency", "text"),
    ("completed_units", "bigint"),
    ("completed_ms", "bigint"),
    ("transaction_id", "text"),
    ("completions", "bigint"),
    ("failed_ms", "bigint"),
    ("first_refund_ms", "bigint"),
    ("duration_ms", "bigint"),
]
_FIRST_WINS: Final = (
    "method",
    "currency",
    "initiated_units",
    "initiated_ms",
    "completed_currency",
    "completed_units",
    "completed_ms",
    "transaction_id",
    "failed_ms",
)
_REFUNDS: Final[Columns] = [
    ("event_id", "text"),
    ("refund_id", "text"),
    ("payment_id", "text"),
    ("currency", "text"),
    ("units", "bigint"),
    ("refunded_ms", "bigint"),
]
_ADD_COUNTS: Final = (
    "ON CONFLICT (day, metric, key, writer) DO UPDATE SET "
    "n = analytics_daily.n + excluded.n, units = analytics_daily.units + excluded.units"
)


class Writer:
    """Writes deltas for one consumer (`consumer`, the inbox key) and one process (`writer`)."""

    def __init__(self, dialect: Dialect, *, consumer: str, writer: str) -> None:
        self._dialect = dialect
        self._consumer = consumer
        self._writer = writer
        self._merge_payments = self._payment_merge(dialect)

    def new_event_ids(self, session: Session, event_ids: Iterable[str], now: datetime) -> set[str]:
        """Record `event_ids` in the inbox; returns those it did not hold yet."""
        keys = sorted(set(event_ids))
        if not keys:
            return set()
        fixed = {"consumer": self._consumer, "processed_at": now}
        return self._dialect.insert_keys(session, "processed_event", "event_id", keys, fixed)

    def write(self, session: Session, delta: BatchDelta) -> None:
        """Add the delta's counters, merge its payment facts, append its refunds."""
        if delta.counters:
            rows = sorted(
                (day_text(day), metric, key, self._writer, n, units)
                for (day, metric, key), (n, units) in delta.counters.items()
            )
            self._dialect.insert(session, "analytics_daily", _COUNTERS, rows, _ADD_COUNTS)
        if delta.payments:
            rows = [delta.payments[key].row() for key in sorted(delta.payments)]
            self._dialect.insert(
                session, "analytics_payment", _PAYMENTS, rows, self._merge_payments
            )
        if delta.refunds:
            rows = sorted(delta.refunds)
            tail = "ON CONFLICT DO NOTHING"
            self._dialect.insert(session, "analytics_refund", _REFUNDS, rows, tail)

    @staticmethod
    def _payment_merge(dialect: Dialect) -> str:
        old, new = "analytics_payment", "excluded"
        merge = [f"{c} = COALESCE({old}.{c}, {new}.{c})" for c in _FIRST_WINS]
        merge.append(f"completions = {old}.completions + {new}.completions")
        merge.append(
            "first_refund_ms = " + dialect.least(f"{old}.first_refund_ms", f"{new}.first_refund_ms")
        )
        merge.append(
            f"duration_ms = COALESCE({old}.completed_ms, {new}.completed_ms)"
            f" - COALESCE({old}.initiated_ms, {new}.initiated_ms)"
        )
        return f"ON CONFLICT (payment_id) DO UPDATE SET {', '.join(merge)}"
