"""The dashboard: one self-contained HTML page of the report's figures. Pure.

Inline CSS and inline SVG only (`charts`): the page fetches nothing and runs no script, so
it can be mailed, archived with the day's reconciliation, or opened on a machine with no
network. Headline tiles and active alerts come first; then rates by day against the alert
thresholds, revenue by currency split by payment method, method and failure-reason
distributions, and the time-to-complete histogram against the processing-delay threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Final

from analytics_consumer import charts, money
from analytics_consumer.alerts import Alert
from analytics_consumer.days import iso
from analytics_consumer.figures import DURATION_BUCKETS_S, Figures
from analytics_consumer.report import averages

DASH: Final = "\u2013"
"""Shown for a figure that has no value yet."""

_CSS: Final = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#2b2b2b}
header{background:#1f2d3d;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c9d3dd;font-size:13px}main{max-width:860px;margin:0 auto;padding:18px}
.tiles{display:grid;grid-template-columns:repeat(3,1fr);gap:12px;margin-bottom:16px}
.tile{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile b{display:block;font-size:24px;margin-top:4px}.tile span{font-size:12px;color:#666}
section{background:#fff;border-radius:8px;padding:14px 18px;margin-bottom:16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:16px;margin:0 0 8px}svg.chart{width:100%;height:auto;display:block}
.alert{border-left:4px solid #c0392b;background:#fdecea;padding:8px 12px;margin:6px 0;border-radius:4px}
.ok{border-left:4px solid #2e8b57;background:#eaf6ef;padding:8px 12px;border-radius:4px}
"""

FAILURE_COLOUR: Final = "#c0392b"
REFUND_COLOUR: Final = "#e67e22"
SUCCESS_COLOUR: Final = "#2e8b57"


def _rate(value: object) -> str:
    return DASH if value is None else f"{value}%"


def _plain(value: Decimal) -> str:
    return money.text(value.normalize())


def _tiles(figures: Figures) -> str:
    p95 = figures.durations.p95_ms
    tiles = [
        ("Payments initiated", f"{figures.initiated:,}"),
        ("Payments completed", f"{figures.completed:,}"),
        ("Payments failed", f"{figures.failed:,}"),
        ("Success rate", _rate(figures.success_rate)),
        ("Failure rate", _rate(figures.failure_rate)),
        ("Refund rate", _rate(figures.refund_rate)),
    ]
    tiles.append(("Time to complete (p95)", DASH if p95 is None else f"{p95 / 1000:.1f} s"))
    tiles.append(("Payments refunded", f"{figures.refunded_payments:,}"))
    tiles.append(("Still pending > threshold", f"{figures.delays.pending:,}"))
    cells = "".join(
        f'<div class="tile"><span>{escape(n)}</span><b>{escape(v)}</b></div>' for n, v in tiles
    )
    return f'<div class="tiles">{cells}</div>'


def _alerts(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return '<section><h2>Alerts</h2><div class="ok">No active alerts</div></section>'
    items = "".join(
        f'<div class="alert"><b>{escape(a.name)}</b>: {escape(_plain(a.value))} '
        f"(threshold {escape(_plain(a.threshold))}). {escape(a.message)}</div>"
        for a in alerts
    )
    return f"<section><h2>Alerts</h2>{items}</section>"


def _section(title: str, svg: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{svg}</section>"


def _rates(figures: Figures, failure_limit: float, refund_limit: float) -> str:
    days = [d for d in figures.days if d.initiated or d.completed]
    series = [
        (
            "success rate",
            SUCCESS_COLOUR,
            [None if d.success_rate is None else float(d.success_rate) for d in days],
        ),
        (
            "failure rate",
            FAILURE_COLOUR,
            [None if d.failure_rate is None else float(d.failure_rate) for d in days],
        ),
        (
            "refund rate",
            REFUND_COLOUR,
            [None if d.refund_rate is None else float(d.refund_rate) for d in days],
        ),
    ]
    thresholds = [
        (f"failure alert {failure_limit:g}%", failure_limit, FAILURE_COLOUR),
        (f"refund alert {refund_limit:g}%", refund_limit, REFUND_COLOUR),
    ]
    title = "Success, failure and refund rates by day"
    return _section(title, charts.line_chart(title, [d.day for d in days], series, thresholds))


def _revenue(figures: Figures) -> str:
    methods = sorted(figures.revenue_by_method)
    rows = []
    for currency, units in sorted(figures.revenue.items()):
        parts = [(m, float(figures.revenue_by_method[m].get(currency, 0))) for m in methods]
        rows.append((currency, f"{money.text(money.shown(units, currency))} {currency}", parts))
    title = "Revenue by currency and payment method"
    return _section(title, charts.stacked_bars(title, rows, methods))


def _counts(title: str, counts: dict[str, int], colour: str) -> str:
    total = sum(counts.values()) or 1
    items = [
        (k, float(n), f"{n:,} ({n / total:.1%})")
        for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    return _section(title, charts.bar_chart(title, items, color=colour))


def _durations(figures: Figures, delay_s: int) -> str:
    bounds = (0, *DURATION_BUCKETS_S)
    labels = [f"{low}-{high} s" for low, high in zip(bounds, DURATION_BUCKETS_S, strict=False)]
    labels.append(f"≥ {DURATION_BUCKETS_S[-1]} s")
    alarm = next((i for i, b in enumerate(bounds) if b >= delay_s), None)
    d = figures.durations
    title = "Time to complete"
    summary = (
        DASH
        if d.p50_ms is None
        else (
            f"p50 {d.p50_ms / 1000:.1f} s · p95 {(d.p95_ms or 0) / 1000:.1f} s · max {(d.max_ms or 0) / 1000:.1f} s"
            f" · {d.count:,} payments (orange: beyond the {delay_s} s alert threshold)"
        )
    )
    chart = charts.histogram(title, list(zip(labels, d.histogram, strict=True)), alarm_from=alarm)
    return f"<section><h2>{title}</h2><p>{escape(summary)}</p>{chart}</section>"


def render(
    figures: Figures,
    alerts: Sequence[Alert],
    *,
    failure_limit: float = 5.0,
    refund_limit: float = 10.0,
    delay_s: int = 120,
) -> str:
    """The whole page for `figures` (a day or all time) and its active `alerts`."""
    scope = figures.day or "all days"
    latest = DASH if figures.latest_event_ms is None else iso(figures.latest_event_ms)
    means = ", ".join(f"{money.text(v)} {c}" for c, v in averages(figures).items()) or DASH
    body = "".join(
        [
            _tiles(figures),
            _alerts(alerts),
            _rates(figures, failure_limit, refund_limit),
            _revenue(figures),
            _counts("Payment methods (initiated payments)", figures.methods, charts.PALETTE[0]),
            _counts("Failure reasons", figures.failure_reasons, FAILURE_COLOUR),
            _durations(figures, delay_s),
        ]
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Payment analytics: {escape(scope)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>Payment analytics: {escape(scope)}</h1>"
        f"<p>Latest event {escape(latest)} · average completed amount {escape(means)}</p></header>"
        f"<main>{body}</main></body></html>"
    )
