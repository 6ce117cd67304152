"""The report: `Figures` and alerts as one JSON object, or as readable tables. Pure.

The JSON keys are documented in docs/analytics.md and checked by a test: integers for
counts, numbers rounded to two decimals (or null) for percentages, decimal strings at the
currency's decimals for money (`"1250.00"`), numbers of seconds for durations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, NamedTuple

from analytics_consumer import formats, money
from analytics_consumer.alerts import Alert
from analytics_consumer.days import iso
from analytics_consumer.figures import DURATION_BUCKETS_S, DaySummary, Figures


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _amounts(units: Mapping[str, int]) -> dict[str, str]:
    return {c: money.text(money.shown(u, c)) for c, u in sorted(units.items())}


def averages(figures: Figures) -> dict[str, Decimal]:
    """Mean completed amount per currency (revenue / completed payments)."""
    return {
        currency: money.mean(units, figures.completed_by_currency[currency], currency)
        for currency, units in sorted(figures.revenue.items())
        if figures.completed_by_currency.get(currency)
    }


def initiated_averages(figures: Figures) -> dict[str, Decimal]:
    """Mean initiated amount per currency (initiated amounts / initiated payments)."""
    return {
        currency: money.mean(units, figures.initiated_by_currency[currency], currency)
        for currency, units in sorted(figures.initiated_amount.items())
        if figures.initiated_by_currency.get(currency)
    }


def day_json(day: DaySummary) -> dict[str, Any]:
    return {
        "day": day.day,
        "payments_initiated": day.initiated,
        "payments_completed": day.completed,
        "payments_failed": day.failed,
        "failed_attempts": day.failed_attempts,
        "payments_refunded": day.refunded_payments,
        "success_rate": _number(day.success_rate),
        "failure_rate": _number(day.failure_rate),
        "refund_rate": _number(day.refund_rate),
        "revenue": _amounts(day.revenue),
    }


def alert_json(alert: Alert) -> dict[str, Any]:
    return {
        "name": alert.name,
        "value": float(alert.value),
        "threshold": float(alert.threshold),
        "message": alert.message,
    }


def report_json(figures: Figures, alerts: Sequence[Alert]) -> dict[str, Any]:
    """The report as one JSON-serialisable object (schema: docs/analytics.md)."""
    durations, delays = figures.durations, figures.delays
    latest = figures.latest_event_ms
    refunds, abandoned = figures.refunds_vs_original, figures.abandoned
    return {
        "day": figures.day,
        "latest_event_at": None if latest is None else iso(latest),
        "events": dict(sorted(figures.events.items())),
        "payments_initiated": figures.initiated,
        "payments_completed": figures.completed,
        "payments_failed": figures.failed,
        "payments_refunded": figures.refunded_payments,
        "failed_attempts": figures.failed_attempts,
        "payments_recovered": figures.recovered_payments,
        "success_rate": _number(figures.success_rate),
        "failure_rate": _number(figures.failure_rate),
        "refund_rate": _number(figures.refund_rate),
        "revenue": _amounts(figures.revenue),
        "refunded_amount": _amounts(figures.refunded),
        "average_amount": {c: money.text(v) for c, v in averages(figures).items()},
        "median_amount": {c: money.text(v) for c, v in sorted(figures.medians.items())},
        "initiated_amount": _amounts(figures.initiated_amount),
        "average_initiated_amount": {
            c: money.text(v) for c, v in initiated_averages(figures).items()
        },
        "initiation_rate": {
            "per_hour": _number(figures.initiation.per_hour),
            "payments": figures.initiation.count,
            "over_seconds": _seconds(figures.initiation.span_ms) or None,
        },
        "payment_methods": dict(sorted(figures.methods.items())),
        "revenue_by_method": {
            method: _amounts(by_currency)
            for method, by_currency in sorted(figures.revenue_by_method.items())
        },
        "failure_reasons": dict(sorted(figures.failure_reasons.items())),
        "refund_reasons": dict(sorted(figures.refund_reasons.items())),
        "refund_vs_original": {
            "payments": refunds.payments,
            "full": refunds.full,
            "partial": refunds.partial,
            "exceeding": refunds.exceeding,
            "without_original": refunds.without_original,
            "refunded": _amounts(refunds.refunded),
            "original": _amounts(refunds.original),
            "percent": {c: _number(v) for c, v in refunds.percent().items()},
        },
        "time_to_complete_seconds": {
            "count": durations.count,
            "p50": _seconds(durations.p50_ms),
            "p95": _seconds(durations.p95_ms),
            "max": _seconds(durations.max_ms),
            "histogram": [
                {"below_seconds": bound, "count": n}
                for bound, n in zip((*DURATION_BUCKETS_S, None), durations.histogram, strict=True)
            ],
        },
        "processing_delays": {
            "threshold_seconds": delays.threshold_ms / 1000,
            "slow": delays.slow,
            "pending": delays.pending,
            "longest_seconds": _seconds(delays.longest_ms),
        },
        "unusual_amounts": dict(sorted(figures.unusual_amounts.items())),
        "abandoned_payments": {
            "count": abandoned.count,
            "by_method": dict(abandoned.by_method),
            "amount": _amounts(abandoned.amount),
        },
        "days": [day_json(day) for day in figures.days],
        "alerts": [alert_json(alert) for alert in alerts],
    }


class Table(NamedTuple):
    """Formatted cells under headers: the text report prints it, the dashboard draws it."""

    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


def payments_table(figures: Figures) -> Table:
    """Payments by outcome and the three rates, in one row."""
    return Table(
        (
            "payments",
            "initiated",
            "completed",
            "failed",
            "refunded",
            "success",
            "failure",
            "refund",
        ),
        [
            (
                "count",
                formats.count(figures.initiated),
                formats.count(figures.completed),
                formats.count(figures.failed),
                formats.count(figures.refunded_payments),
                formats.percent(figures.success_rate),
                formats.percent(figures.failure_rate),
                formats.percent(figures.refund_rate),
            )
        ],
    )


def currency_table(figures: Figures) -> Table:
    """Per currency: revenue, refunded amount, mean and median completed amount, completions."""
    means = averages(figures)
    currencies = sorted(set(figures.revenue) | set(figures.refunded))
    return Table(
        ("currency", "revenue", "refunded", "average", "median", "completed"),
        [
            (
                c,
                formats.amount(figures.revenue.get(c), c),
                formats.amount(figures.refunded.get(c), c),
                formats.money_value(means.get(c), c),
                formats.money_value(figures.medians.get(c), c),
                formats.count(figures.completed_by_currency.get(c, 0)),
            )
            for c in currencies
        ],
    )


def method_table(figures: Figures) -> Table:
    """Per payment method: initiated payments, their share, and the revenue completed."""
    methods = sorted(set(figures.methods) | set(figures.revenue_by_method))
    total = sum(figures.methods.values())
    return Table(
        ("payment method", "initiated", "share", "revenue"),
        [
            (
                m,
                formats.count(figures.methods.get(m, 0)),
                formats.share(figures.methods.get(m, 0), total),
                formats.amounts(figures.revenue_by_method.get(m, {})),
            )
            for m in methods
        ],
    )


def reason_table(header: str, counted: str, counts: Mapping[str, int]) -> Table:
    """Reasons (failure codes, refund reasons), most frequent first, with their share."""
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return Table(
        (header, counted, "share"),
        [(reason, formats.count(n), formats.share(n, total)) for reason, n in ranked],
    )


def failure_table(figures: Figures) -> Table:
    """Failure reasons per failed attempt (a payment failing on two cards gives two)."""
    return reason_table("failure reason", "failed attempts", figures.failure_reasons)


def failures_line(figures: Figures) -> str:
    """Failed payments against failed attempts, and the failed payments completed after all."""
    return (
        f"{formats.count(figures.failed)} failed payments from "
        f"{formats.count(figures.failed_attempts)} failed attempts; "
        f"{formats.count(figures.recovered_payments)} of them completed after all"
    )


def initiation_line(figures: Figures) -> str:
    """The initiation rate: `9.12 payments per hour (2,188 over 10 d 0 h)`."""
    initiation = figures.initiation
    if initiation.per_hour is None:
        return formats.DASH
    return (
        f"{formats.number(initiation.per_hour)} payments per hour "
        f"({formats.count(initiation.count)} over {formats.duration(initiation.span_ms)})"
    )


def initiated_table(figures: Figures) -> Table:
    """Per currency: payments initiated, their amount, and the average initiated amount."""
    means = initiated_averages(figures)
    return Table(
        ("currency", "initiated", "initiated amount", "average initiated"),
        [
            (
                c,
                formats.count(figures.initiated_by_currency.get(c, 0)),
                formats.amount(units, c),
                formats.money_value(means.get(c), c),
            )
            for c, units in sorted(figures.initiated_amount.items())
        ],
    )


def refund_line(figures: Figures) -> str:
    """How the refunded payments' refunds compare with what each payment completed with."""
    r = figures.refunds_vs_original
    return (
        f"{formats.count(r.payments)} refunded payments: {formats.count(r.full)} in full, "
        f"{formats.count(r.partial)} in part, {formats.count(r.exceeding)} beyond the amount "
        f"paid, {formats.count(r.without_original)} without their completion"
    )


def refund_table(figures: Figures) -> Table:
    """Per currency: refunded against the completed amount of the payments refunded."""
    r = figures.refunds_vs_original
    shares = r.percent()
    return Table(
        ("currency", "refunded", "of original payments", "share"),
        [
            (
                c,
                formats.amount(units, c),
                formats.amount(r.original.get(c), c),
                formats.percent(shares.get(c)),
            )
            for c, units in sorted(r.refunded.items())
        ],
    )


def abandonment_line(figures: Figures) -> str:
    """Abandoned payments: initiated, no outcome past their method's abandonment threshold."""
    a = figures.abandoned
    if not a.count:
        return "no abandoned payment"
    return (
        f"{formats.count(a.count)} payments initiated and never finished past their method's "
        f"abandonment threshold ({formats.amounts(a.amount)} initiated); not in the delay alert"
    )


def abandonment_table(figures: Figures) -> Table:
    """Abandoned payments by payment method, most first."""
    return reason_table("payment method", "abandoned", figures.abandoned.by_method)


def day_table(days: Sequence[DaySummary]) -> Table:
    """One row per UTC day: payments by outcome and the day's rates."""
    return Table(
        ("day", "initiated", "completed", "failed", "refunded", "success", "failure", "refund"),
        [
            (
                d.day,
                formats.count(d.initiated),
                formats.count(d.completed),
                formats.count(d.failed),
                formats.count(d.refunded_payments),
                formats.percent(d.success_rate),
                formats.percent(d.failure_rate),
                formats.percent(d.refund_rate),
            )
            for d in days
        ],
    )


def time_to_complete_line(figures: Figures) -> str:
    """`p50 12.5 s · p95 1 min 44 s · max 3 min over 1,840 completed payments`."""
    d = figures.durations
    if not d.count:
        return "no completed payment with its initiation seen yet"
    return (
        f"p50 {formats.duration(d.p50_ms)} · p95 {formats.duration(d.p95_ms)} · "
        f"max {formats.duration(d.max_ms)} over {formats.count(d.count)} completed payments"
    )


def delay_counts(figures: Figures) -> str:
    """What the processing-delay alert counts: payments that completed *or failed* late, and waits.

    The time-to-complete histogram shows completed payments of every method, while this
    count also holds the payments that failed late and leaves out the methods exempt from the
    alert (bank transfers by default): the two differ, and the dashboard says why.
    """
    delays = figures.delays
    limit = formats.duration(delays.threshold_ms)
    return (
        f"{formats.count(delays.slow)} payments took longer than {limit} to complete or to fail, "
        f"{formats.count(delays.pending)} are still waiting for an outcome after {limit}"
    )


def delay_line(figures: Figures) -> str:
    """`delay_counts` and the longest wait seen."""
    longest = formats.duration(figures.delays.longest_ms)
    return f"{delay_counts(figures)} (longest wait {longest})"


ALERT_TITLES: Final = {
    "high_failure_rate": "failure rate",
    "high_refund_rate": "refund rate",
    "processing_delay": "longest wait for an outcome",
    "unusual_amounts": "payments with an unusual amount",
    "gateway_unavailable": "gateway errors among the outcomes",
}


def alert_headline(alert: Alert) -> str:
    """`failure rate 14.31% above 5%`: the value against its threshold, in its unit."""
    title = ALERT_TITLES.get(alert.name, alert.name.replace("_", " "))
    value = formats.alert_value(alert.name, alert.value)
    if not alert.threshold and formats.ALERT_UNITS.get(alert.name) == "count":
        return f"{value} {title}"
    return f"{title} {value} above {formats.alert_value(alert.name, alert.threshold)}"


def alert_detail(alert: Alert, figures: Figures) -> str:
    """What the alert counted, from `figures` (the scope it was evaluated on), formatted."""
    if alert.name == "high_failure_rate":
        return (
            f"{formats.count(figures.failed)} of {formats.count(figures.initiated)} payments failed"
        )
    if alert.name == "high_refund_rate":
        refunded, completed = figures.refunded_payments, figures.completed
        return (
            f"{formats.count(refunded)} of {formats.count(completed)} completed payments refunded"
        )
    if alert.name == "processing_delay":
        return delay_counts(figures)
    if alert.name == "unusual_amounts":
        found = [(c, n) for c, n in sorted(figures.unusual_amounts.items()) if n]
        return "above their currency's limit: " + (
            ", ".join(f"{formats.count(n)} in {c}" for c, n in found) or alert.message
        )
    return alert.message


def _table(table: Table) -> list[str]:
    cells = [list(table.headers), *(list(row) for row in table.rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.headers))]
    lines = []
    for number, row in enumerate(cells):
        first, rest = (
            row[0].ljust(widths[0]),
            [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)],
        )
        lines.append("  ".join([first, *rest]).rstrip())
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _block(table: Table) -> list[str]:
    """The table and a blank line, or nothing for a table without rows."""
    return [*_table(table), ""] if table.rows else []


def report_text(figures: Figures, alerts: Sequence[Alert]) -> str:
    """The report as tables a person reads in a terminal, in the dashboard's formats (`formats`)."""
    scope = figures.day or "all days"
    latest = formats.DASH if figures.latest_event_ms is None else iso(figures.latest_event_ms)
    lines = [f"Payments report: {scope} (latest event {latest})", ""]
    lines += [
        *_table(payments_table(figures)),
        f"Failures: {failures_line(figures)}",
        f"Initiation rate: {initiation_line(figures)}",
        "",
    ]
    for table in (
        currency_table(figures),
        initiated_table(figures),
        method_table(figures),
        failure_table(figures),
    ):
        lines += _block(table)
    lines += [f"Refunds: {refund_line(figures)}", ""]
    lines += _block(refund_table(figures))
    lines += _block(reason_table("refund reason", "refunds", figures.refund_reasons))
    lines += [f"Abandonment: {abandonment_line(figures)}", ""]
    lines += _block(abandonment_table(figures))
    lines += [
        f"Time to complete: {time_to_complete_line(figures)}",
        f"Processing delays: {delay_line(figures)}",
        "",
        *_table(day_table(figures.days)),
        "",
        "Alerts:" if alerts else "Alerts: none",
    ]
    lines += [f"  ! {a.name}: {alert_headline(a)}: {alert_detail(a, figures)}" for a in alerts]
    return "\n".join(lines) + "\n"
