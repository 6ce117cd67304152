"""The report: `Figures` and alerts as one JSON object, or as readable tables. Pure.

The JSON keys are documented in docs/analytics.md and checked by a test: integers for
counts, numbers rounded to two decimals (or null) for percentages, decimal strings at the
currency's decimals for money (`"1250.00"`), numbers of seconds for durations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from analytics_consumer import money
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


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
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


def _percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value}%"


def report_text(figures: Figures, alerts: Sequence[Alert]) -> str:
    """The report as tables a person reads in a terminal."""
    data = report_json(figures, alerts)
    scope = figures.day or "all days"
    lines = [f"Payments report: {scope} (latest event {data['latest_event_at'] or '-'})", ""]
    lines += _table(
        [
            "payments",
            "initiated",
            "completed",
            "failed",
            "refunded",
            "success",
            "failure",
            "refund",
        ],
        [
            [
                "count",
                figures.initiated,
                figures.completed,
                figures.failed,
                figures.refunded_payments,
                _percent(figures.success_rate),
                _percent(figures.failure_rate),
                _percent(figures.refund_rate),
            ]
        ],
    )
    currencies = sorted(set(data["revenue"]) | set(data["refunded_amount"]))
    lines += [
        "",
        *_table(
            ["currency", "revenue", "refunded", "average", "median", "completed"],
            [
                [
                    c,
                    data["revenue"].get(c),
                    data["refunded_amount"].get(c),
                    data["average_amount"].get(c),
                    data["median_amount"].get(c),
                    figures.completed_by_currency.get(c),
                ]
                for c in currencies
            ],
        ),
    ]
    methods = sorted(set(figures.methods) | set(figures.revenue_by_method))
    lines += [
        "",
        *_table(
            ["payment method", "initiated", "revenue"],
            [
                [
                    m,
                    figures.methods.get(m, 0),
                    ", ".join(f"{c} {a}" for c, a in data["revenue_by_method"].get(m, {}).items())
                    or None,
                ]
                for m in methods
            ],
        ),
    ]
    lines += ["", *_table(["failure reason", "failed"], sorted(figures.failure_reasons.items()))]
    ttc, delays = data["time_to_complete_seconds"], data["processing_delays"]
    lines += [
        "",
        f"Time to complete: p50 {ttc['p50']} s, p95 {ttc['p95']} s, max {ttc['max']} s "
        f"over {ttc['count']} payments; {delays['slow']} slower than "
        f"{delays['threshold_seconds']} s, {delays['pending']} still pending",
    ]
    lines += [
        "",
        *_table(
            ["day", "initiated", "completed", "failed", "refunded", "success", "failure", "refund"],
            [
                [
                    d.day,
                    d.initiated,
                    d.completed,
                    d.failed,
                    d.refunded_payments,
                    _percent(d.success_rate),
                    _percent(d.failure_rate),
                    _percent(d.refund_rate),
                ]
                for d in figures.days
            ],
        ),
    ]
    lines += ["", "Alerts:" if alerts else "Alerts: none"]
    lines += [f"  ! {a.name}: {a.value} > {a.threshold} ({a.message})" for a in alerts]
    return "\n".join(lines) + "\n"
