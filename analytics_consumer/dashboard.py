"""The dashboard: one self-contained HTML page of the report's figures. Pure.

Inline CSS and inline SVG only (`charts`): the page fetches nothing and runs no script, so
it can be mailed, archived with the day's reconciliation, or opened on a machine with no
network. Headline tiles and active alerts come first; then payments and rates by day (every
day from the first event to the last, refunds included), money by currency and payment
method, method and failure-reason distributions, the time-to-complete histogram against
the processing-delay threshold, and the days as a table.

Every figure is formatted by `formats`, through the same tables and lines as the text
report (`report`), so the page and `analytics-consumer report` read alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from html import escape
from typing import Final

from analytics_consumer import charts, formats
from analytics_consumer.alerts import Alert
from analytics_consumer.days import iso
from analytics_consumer.figures import DURATION_BUCKETS_S, DaySummary, Figures
from analytics_consumer.report import (
    Table,
    abandonment_line,
    abandonment_table,
    alert_detail,
    alert_headline,
    currency_table,
    day_table,
    delay_counts,
    failures_line,
    initiated_table,
    initiation_line,
    refund_line,
    refund_table,
    time_to_complete_line,
)

DASH: Final = formats.DASH
"""Shown for a figure that has no value yet."""

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#2b2b2b}
header{background:#1f2d3d;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d3dd;font-size:13px}main{max-width:860px;margin:0 auto;padding:18px}
.tiles{display:grid;grid-template-columns:repeat(3,1fr);gap:12px;margin-bottom:16px}
.tile{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile b{display:block;font-size:24px;margin-top:4px;font-variant-numeric:tabular-nums}
.tile span{font-size:12px;color:#666}
section{background:#fff;border-radius:8px;padding:14px 18px;margin-bottom:16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:16px;margin:0 0 8px}section h2+p{margin-top:0}
section table+h2,section .wide+h2{margin-top:16px}section p{font-size:13px;margin:4px 0 8px;color:#444}
svg.chart{width:100%;height:auto;display:block}
table{border-collapse:collapse;width:100%;font-size:13px;margin-top:8px}
th,td{padding:4px 8px;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}td{font-variant-numeric:tabular-nums}
th{color:#555;font-weight:600}.wide{overflow-x:auto}
.alert{border-left:4px solid #c0392b;background:#fdecea;padding:8px 12px;margin:6px 0;border-radius:4px}
.alert code{font-size:12px;color:#7b241c}
.ok{border-left:4px solid #2e8b57;background:#eaf6ef;padding:8px 12px;border-radius:4px}
@media (max-width:720px){main{padding:8px}section{padding:10px 8px}
table{font-size:12px}th,td{padding:3px 3px}.tiles{gap:8px}.tile{padding:10px}.tile b{font-size:20px}}
"""

FAILURE_COLOUR: Final = "#c0392b"
REFUND_COLOUR: Final = "#e67e22"
SUCCESS_COLOUR: Final = "#2e8b57"
INITIATED_COLOUR: Final = charts.PALETTE[0]


def _tiles(figures: Figures) -> str:
    delays = figures.delays
    tiles = [
        ("Payments initiated", formats.count(figures.initiated)),
        ("Payments completed", formats.count(figures.completed)),
        ("Payments failed", formats.count(figures.failed)),
        ("Success rate", formats.percent(figures.success_rate)),
        ("Failure rate", formats.percent(figures.failure_rate)),
        ("Refund rate", formats.percent(figures.refund_rate)),
        ("Time to complete (p95)", formats.duration(figures.durations.p95_ms)),
        ("Payments refunded", formats.count(figures.refunded_payments)),
        (
            f"Waiting for an outcome > {formats.duration(delays.threshold_ms)}",
            formats.count(delays.pending),
        ),
        ("Failed attempts", formats.count(figures.failed_attempts)),
        ("Initiation rate", _per_hour(figures)),
        ("Abandoned payments", formats.count(figures.abandoned.count)),
    ]
    cells = "".join(
        f'<div class="tile"><span>{escape(n)}</span><b>{escape(v)}</b></div>' for n, v in tiles
    )
    return f'<div class="tiles">{cells}</div>'


def _per_hour(figures: Figures) -> str:
    per_hour = figures.initiation.per_hour
    return DASH if per_hour is None else f"{formats.number(per_hour)} per hour"


def _alerts(figures: Figures, alerts: Sequence[Alert]) -> str:
    if not alerts:
        return '<section><h2>Alerts</h2><div class="ok">No active alerts</div></section>'
    items = "".join(
        f'<div class="alert"><b>{escape(alert_headline(a))}</b> '
        f"<code>{escape(a.name)}</code><br>{escape(alert_detail(a, figures))}</div>"
        for a in alerts
    )
    return f"<section><h2>Alerts</h2>{items}</section>"


def _section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def _table(table: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows
    )
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table_html}</div>'  # scrolls on a phone, not the page


def calendar(days: Sequence[DaySummary]) -> list[DaySummary]:
    """Every UTC day from the first to the last of `days`, a day without events as zeros.

    `days` holds each day with any counted event (a refund alone is enough), so the charts
    drawn over this list end on the day of the latest event, refunds included.
    """
    if not days:
        return []
    known = {d.day: d for d in days}
    first, last = date.fromisoformat(days[0].day), date.fromisoformat(days[-1].day)
    every = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [known.get(d.isoformat()) or DaySummary(d.isoformat(), 0, 0, 0, 0, {}) for d in every]


def _payments_by_day(days: Sequence[DaySummary]) -> str:
    series = [
        ("initiated", INITIATED_COLOUR, [float(d.initiated) for d in days]),
        ("completed", SUCCESS_COLOUR, [float(d.completed) for d in days]),
        ("failed", FAILURE_COLOUR, [float(d.failed) for d in days]),
        ("refunded", REFUND_COLOUR, [float(d.refunded_payments) for d in days]),
    ]
    top = charts.nice_top(max((v for _, _, vs in series for v in vs), default=0))
    title = "Payments by day"
    chart = charts.line_chart(
        title, [d.day for d in days], series, top=top, shown=lambda v: formats.count(round(v))
    )
    note = "Refunded: payments whose first refund falls on that day."
    return _section(title, f"<p>{escape(note)}</p>", chart)


def _rates(days: Sequence[DaySummary], failure_limit: float, refund_limit: float) -> str:
    def values(rates: Sequence[object]) -> list[float | None]:
        return [None if r is None else float(str(r)) for r in rates]

    series = [
        ("success rate", SUCCESS_COLOUR, values([d.success_rate for d in days])),
        ("failure rate", FAILURE_COLOUR, values([d.failure_rate for d in days])),
        ("refund rate", REFUND_COLOUR, values([d.refund_rate for d in days])),
    ]
    thresholds = [
        (f"failure alert {formats.percent(failure_limit)}", failure_limit, FAILURE_COLOUR),
        (f"refund alert {formats.percent(refund_limit)}", refund_limit, REFUND_COLOUR),
    ]
    title = "Success, failure and refund rates by day"
    note = "A rate has no point on a day without its denominator (initiated or completed payments)."
    chart = charts.line_chart(title, [d.day for d in days], series, thresholds)
    return _section(title, f"<p>{escape(note)}</p>", chart)


def _revenue(figures: Figures) -> str:
    methods = sorted(figures.revenue_by_method)
    rows = []
    for currency, units in sorted(figures.revenue.items()):
        parts = [(m, float(figures.revenue_by_method[m].get(currency, 0))) for m in methods]
        rows.append((currency, formats.amount(units, currency), parts))
    title = "Revenue by currency and payment method"
    chart = charts.stacked_bars(title, rows, methods)
    return _section(title, chart, _table(currency_table(figures)))


def _bars(title: str, counts: dict[str, int], colour: str) -> str:
    total = sum(counts.values())
    items = [
        (k, float(n), f"{formats.count(n)} ({formats.share(n, total)})")
        for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return charts.bar_chart(title, items, color=colour)


def _paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def _initiated(figures: Figures) -> str:
    return _section(
        "Initiated payments",
        _paragraph(f"Initiation rate: {initiation_line(figures)}."),
        _table(initiated_table(figures)),
    )


def _failures(figures: Figures) -> str:
    title = "Failure reasons (failed attempts)"
    chart = _bars(title, figures.failure_reasons, FAILURE_COLOUR)
    return _section(title, _paragraph(f"{failures_line(figures)}."), chart)


def _refunds(figures: Figures) -> str:
    reasons = _bars("Refund reasons", figures.refund_reasons, REFUND_COLOUR)
    return _section(
        "Refunds against the payments they refund",
        _paragraph(f"{refund_line(figures)}."),
        _table(refund_table(figures)),
        "<h2>Refund reasons</h2>",
        reasons,
    )


def _abandonment(figures: Figures) -> str:
    table = abandonment_table(figures)
    return _section(
        "Abandoned payments",
        _paragraph(f"Abandonment: {abandonment_line(figures)}."),
        _table(table) if table.rows else "",
    )


def _durations(figures: Figures) -> str:
    bounds_ms = [b * 1000 for b in (0, *DURATION_BUCKETS_S)]
    highs: list[int | None] = [*bounds_ms[1:], None]
    labels = [formats.duration_range(low, high) for low, high in zip(bounds_ms, highs, strict=True)]
    threshold_ms = figures.delays.threshold_ms
    alarm = next((i for i, b in enumerate(bounds_ms) if b >= threshold_ms), None)
    d = figures.durations
    title = "Time to complete"
    lines = [
        f"Completed payments, from initiation to completion: {time_to_complete_line(figures)}."
    ]
    if alarm is not None and d.count:
        orange = sum(d.histogram[alarm:])
        lines.append(
            f"Orange: {formats.count(orange)} took {formats.duration(bounds_ms[alarm])} or "
            "longer to complete "
            f"(processing-delay threshold {formats.duration(threshold_ms)}). "
            "The delay alert counts failures too, and leaves out the methods exempt from it "
            f"(bank transfers by default): {delay_counts(figures)}."
        )
    chart = charts.histogram(title, list(zip(labels, d.histogram, strict=True)), alarm_from=alarm)
    return _section(title, *(f"<p>{escape(line)}</p>" for line in lines), chart)


def render(
    figures: Figures,
    alerts: Sequence[Alert],
    *,
    failure_limit: float = 5.0,
    refund_limit: float = 10.0,
    delay_s: int | None = None,
) -> str:
    """The whole page for `figures` (a day or all time) and its active `alerts`.

    `delay_s` is accepted for callers of the former signature; the threshold shown is the
    one the figures' delays were counted with (`figures.delays.threshold_ms`).
    """
    del delay_s
    scope = figures.day or "all days"
    latest = DASH if figures.latest_event_ms is None else iso(figures.latest_event_ms)
    days = calendar(figures.days)
    span = f" · {len(days):,} days, {days[0].day} to {days[-1].day}" if len(days) > 1 else ""
    body = "".join(
        [
            _tiles(figures),
            _alerts(figures, alerts),
            _payments_by_day(days),
            _rates(days, failure_limit, refund_limit),
            _revenue(figures),
            _initiated(figures),
            _section(
                "Payment methods (initiated payments)",
                _bars("Payment methods (initiated payments)", figures.methods, INITIATED_COLOUR),
            ),
            _failures(figures),
            _refunds(figures),
            _abandonment(figures),
            _durations(figures),
            _section("Days", _table(day_table(figures.days))),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Payment analytics: {escape(scope)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Payment analytics: {escape(scope)}</h1>"
        f"<p>Latest event {escape(latest)}{escape(span)}</p></header>"
        f"<main>{body}</main></body></html>"
    )
