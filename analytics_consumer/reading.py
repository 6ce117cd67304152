"""Assemble `Figures` from the database: counters for sums, facts for everything else.

Counts, amounts, methods and failure reasons come from `analytics_daily`, summed over the
writers (instances) and over days; order statistics and joined figures come from the facts
(`queries`). The whole read is one snapshot (`snapshot`), so a report taken while
instances write is still consistent with itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlmodel import Session

from analytics_consumer import queries
from analytics_consumer.aggregate import EVENTS, FAILURE, METHOD, REFUNDED, REVENUE
from analytics_consumer.alerts import AlertInputs, AlertRules
from analytics_consumer.days import DAY_MS, day_range, day_text
from analytics_consumer.figures import DaySummary, Figures
from common.topics import PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_INITIATED

Counters = dict[str, dict[str, dict[str, tuple[int, int]]]]
"""day → metric → key → (n, units)."""


@contextmanager
def snapshot(engine: Engine) -> Iterator[Session]:
    """A read-only session that sees one consistent state, rolled back at the end.

    PostgreSQL: a REPEATABLE READ transaction. SQLite: an explicit read transaction (the
    driver would otherwise run each SELECT on its own), which in WAL mode reads one snapshot
    while writers go on.
    """
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with Session(engine) as session:
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN")
        try:
            yield session
        finally:
            session.rollback()


def read_figures(*, session: Session, day: str | None, rules: AlertRules) -> Figures:
    """Every figure for one UTC day, or for all time when `day` is None."""
    span = day_range(day)
    counters = _counters(session, day)
    total = _sum_days(counters)
    latest = queries.latest_event_ms(session=session)
    medians, samples = queries.medians(session=session, span=span)
    limits = rules.amount_limits_for(medians, samples)
    return Figures(
        day=day,
        latest_event_ms=latest,
        events=_n(total, EVENTS),
        refunded_payments=queries.payments_with("first_refund_ms", session=session, span=span),
        revenue=_units(total, REVENUE),
        completed_by_currency=_n(total, REVENUE),
        refunded=_units(total, REFUNDED),
        medians=medians,
        methods=_n(total, METHOD),
        revenue_by_method=queries.revenue_by_method(session=session, span=span),
        failure_reasons=_n(total, FAILURE),
        durations=queries.durations(session=session, span=span),
        delays=queries.delays(
            session=session, span=span, threshold_ms=rules.processing_delay_ms, latest_ms=latest
        ),
        unusual_amounts=queries.unusual_amounts(limits, session=session, span=span),
        days=_days(session, counters, day),
    )


def read_window(*, session: Session, rules: AlertRules) -> AlertInputs | None:
    """What the alert rules look at over the last `rules.window_ms` of event time."""
    latest = queries.latest_event_ms(session=session)
    if latest is None:
        return None
    span = (latest - rules.window_ms + 1, latest + 1)
    medians, samples = queries.medians(session=session, span=span)
    limits = rules.amount_limits_for(medians, samples)
    return AlertInputs(
        initiated=queries.payments_with("initiated_ms", session=session, span=span),
        completed=queries.payments_with("completed_ms", session=session, span=span),
        failed=queries.payments_with("failed_ms", session=session, span=span),
        refunded_payments=queries.payments_with("first_refund_ms", session=session, span=span),
        delays=queries.delays(
            session=session, span=span, threshold_ms=rules.processing_delay_ms, latest_ms=latest
        ),
        unusual_amounts=queries.unusual_amounts(limits, session=session, span=span),
    )


def _counters(session: Session, day: str | None) -> Counters:
    where = "" if day is None else "WHERE day = :day"
    rows = session.execute(
        text(
            f"SELECT day, metric, key, SUM(n), SUM(units) FROM analytics_daily {where} "  # noqa: S608
            "GROUP BY day, metric, key"
        ),
        {"day": day},
    )
    counters: Counters = {}
    for row_day, metric, key, n, units in rows:
        counters.setdefault(row_day, {}).setdefault(metric, {})[key] = (int(n), int(units))
    return counters


def _sum_days(counters: Counters) -> dict[str, dict[str, tuple[int, int]]]:
    total: dict[str, dict[str, tuple[int, int]]] = {}
    for metrics in counters.values():
        for metric, keys in metrics.items():
            into = total.setdefault(metric, {})
            for key, (n, units) in keys.items():
                before = into.get(key, (0, 0))
                into[key] = (before[0] + n, before[1] + units)
    return total


def _n(metrics: dict[str, dict[str, tuple[int, int]]], metric: str) -> dict[str, int]:
    return {key: n for key, (n, _) in sorted(metrics.get(metric, {}).items())}


def _units(metrics: dict[str, dict[str, tuple[int, int]]], metric: str) -> dict[str, int]:
    return {key: units for key, (_, units) in sorted(metrics.get(metric, {}).items())}


def _days(session: Session, counters: Counters, day: str | None) -> list[DaySummary]:
    lo, hi = day_range(day)
    refunded = {
        day_text(int(number)): int(n)
        for number, n in session.execute(
            text(
                f"SELECT first_refund_ms / {DAY_MS}, COUNT(*) FROM analytics_payment "  # noqa: S608
                f"WHERE first_refund_ms >= :lo AND first_refund_ms < :hi GROUP BY first_refund_ms / {DAY_MS}"
            ),
            {"lo": lo, "hi": hi},
        )
    }
    summaries = []
    for name in sorted(set(counters) | set(refunded)):
        events = _n(counters.get(name, {}), EVENTS)
        summaries.append(
            DaySummary(
                day=name,
                initiated=events.get(PAYMENT_INITIATED, 0),
                completed=events.get(PAYMENT_COMPLETED, 0),
                failed=events.get(PAYMENT_FAILED, 0),
                refunded_payments=refunded.get(name, 0),
                revenue=_units(counters.get(name, {}), REVENUE),
            )
        )
    return summaries
