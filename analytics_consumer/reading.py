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
from analytics_consumer.alerts import AlertInputs, AlertRules, Outcomes
from analytics_consumer.days import DAY_MS, day_number, day_range, day_text
from analytics_consumer.domain import (
    EVENTS,
    FAILURE,
    INITIATED,
    METHOD,
    OUTCOME_MINUTE,
    REFUND_REASON,
    REFUNDED,
    REVENUE,
)
from analytics_consumer.figures import DaySummary, Figures, Initiation
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
    waiting = waiting_of(rules)
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
            session=session,
            span=span,
            threshold_ms=rules.processing_delay_ms,
            latest_ms=latest,
            waiting=waiting,
        ),
        unusual_amounts=queries.unusual_amounts(limits, session=session, span=span),
        days=_days(session, counters, day),
        failed_payments=queries.payments_with("failed_ms", session=session, span=span),
        recovered_payments=queries.recovered(session=session, span=span),
        initiated_amount=_units(total, INITIATED),
        initiated_by_currency=_n(total, INITIATED),
        initiation=_initiation(session, span, day, _n(total, EVENTS), latest),
        refund_reasons=_n(total, REFUND_REASON),
        refunds_vs_original=queries.refunds_vs_original(session=session, span=span),
        abandoned=queries.abandoned(session=session, span=span, latest_ms=latest, waiting=waiting),
    )


def waiting_of(rules: AlertRules) -> queries.Waiting:
    """The abandonment thresholds and exempt methods of `rules`, for the queries."""
    return queries.Waiting(
        rules.abandoned_after_ms, rules.abandoned_default_ms, rules.delay_exempt_methods
    )


def _initiation(
    session: Session,
    span: tuple[int, int],
    day: str | None,
    events: dict[str, int],
    latest: int | None,
) -> Initiation:
    """Initiations over the scope's span of event time (see `Initiation.span_ms`)."""
    count = events.get(PAYMENT_INITIATED, 0)
    if latest is None or not count:
        return Initiation(count)
    if day is None:
        first = queries.first_initiated_ms(session=session, span=span)
        return Initiation(count, 0 if first is None else latest - first)
    return Initiation(count, max(0, min(span[1], latest) - span[0]))


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
            session=session,
            span=span,
            threshold_ms=rules.processing_delay_ms,
            latest_ms=latest,
            waiting=waiting_of(rules),
        ),
        unusual_amounts=queries.unusual_amounts(limits, session=session, span=span),
        outcomes=outcomes(session=session, latest_ms=latest, window_ms=rules.gateway_window_ms),
    )


def outcomes(*, session: Session, latest_ms: int, window_ms: int) -> Outcomes:
    """Completions and failed attempts (by errorCode) of the minutes that overlap the last
    `window_ms` of event time up to `latest_ms` (the per-minute counters of `domain`)."""
    first_minute = (latest_ms - window_ms) // 60_000 + 1
    last_minute = latest_ms // 60_000
    rows = session.execute(
        text(
            "SELECT day, key, SUM(n) FROM analytics_daily "
            "WHERE metric = :metric AND day >= :lo AND day <= :hi GROUP BY day, key"
        ),
        {
            "metric": OUTCOME_MINUTE,
            "lo": day_text(day_number(first_minute * 60_000)),
            "hi": day_text(day_number(latest_ms)),
        },
    )
    completed, failures = 0, dict[str, int]()
    for row_day, key, n in rows:
        minute, _, outcome = str(key).partition(" ")
        at_minute = day_range(str(row_day))[0] // 60_000 + int(minute)
        if not first_minute <= at_minute <= last_minute:
            continue
        if outcome == "completed":
            completed += int(n)
        else:
            code = outcome.removeprefix("failed:")
            failures[code] = failures.get(code, 0) + int(n)
    return Outcomes(completed, dict(sorted(failures.items())))


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


def _per_day(session: Session, column: str, span: tuple[int, int]) -> dict[str, int]:
    """Payments per UTC day of their `column` time (first refund, first failure)."""
    return {
        day_text(int(number)): int(n)
        for number, n in session.execute(
            text(
                f"SELECT {column} / {DAY_MS}, COUNT(*) FROM analytics_payment "  # noqa: S608
                f"WHERE {column} >= :lo AND {column} < :hi GROUP BY {column} / {DAY_MS}"
            ),
            {"lo": span[0], "hi": span[1]},
        )
    }


def _days(session: Session, counters: Counters, day: str | None) -> list[DaySummary]:
    span = day_range(day)
    refunded = _per_day(session, "first_refund_ms", span)
    failed = _per_day(session, "failed_ms", span)
    summaries = []
    for name in sorted(set(counters) | set(refunded) | set(failed)):
        events = _n(counters.get(name, {}), EVENTS)
        summaries.append(
            DaySummary(
                day=name,
                initiated=events.get(PAYMENT_INITIATED, 0),
                completed=events.get(PAYMENT_COMPLETED, 0),
                failed=failed.get(name, 0),
                refunded_payments=refunded.get(name, 0),
                revenue=_units(counters.get(name, {}), REVENUE),
                failed_attempts=events.get(PAYMENT_FAILED, 0),
            )
        )
    return summaries
