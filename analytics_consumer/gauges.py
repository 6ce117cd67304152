"""The analytics figures and alerts as Prometheus gauges, in the registry `build` receives.

They are gauges, not counters, because they are read from the shared database: every
instance exports the same totals (all instances' work), so aggregate them across instances
with `max`, not `sum`. Undefined rates are NaN. Money becomes a float here only because
Prometheus has no other number type; the report keeps the exact decimals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from analytics_consumer import money
from analytics_consumer.alerts import ALERT_NAMES, Alert
from analytics_consumer.figures import Figures
from analytics_consumer.report import averages

PREFIX: Final = "dreamscape_analytics_"


class AnalyticsGauges:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(PREFIX + name, doc, labels, registry=registry)

        self.events = gauge(
            "events", "Payment events counted, by type (all instances)", ["event_type"]
        )
        self.refunded_payments = gauge("payments_refunded", "Payments with at least one refund")
        self.rate = gauge("rate_percent", "Success, failure and refund rates in percent", ["rate"])
        self.revenue = gauge("revenue", "Sum of completed amounts", ["currency"])
        self.refunded = gauge("refunded_amount", "Sum of refunded amounts", ["currency"])
        self.average = gauge("average_amount", "Mean completed amount", ["currency"])
        self.median = gauge("median_amount", "Median completed amount", ["currency"])
        self.methods = gauge("payment_methods", "Initiated payments by method", ["method"])
        self.revenue_by_method = gauge(
            "revenue_by_method", "Completed amounts by method", ["method", "currency"]
        )
        self.failures = gauge("failure_reasons", "Failed payments by errorCode", ["error_code"])
        self.time_to_complete = gauge(
            "time_to_complete_seconds", "Initiated to completed (nearest rank)", ["quantile"]
        )
        self.latest = gauge("latest_event_timestamp_seconds", "Occurrence time of the latest event")
        self.alert_active = gauge("alert_active", "1 while the alert is raised", ["alert"])
        self.alert_value = gauge(
            "alert_value", "The alert's observed value (when raised)", ["alert"]
        )
        self.alert_threshold = gauge(
            "alert_threshold", "The alert's threshold (when raised)", ["alert"]
        )
        self.refreshed = gauge("refresh_timestamp_seconds", "When the figures were last read")
        self.refresh_errors = Counter(
            PREFIX + "refresh_errors", "Failed reads of the figures", registry=registry
        )
        for name in ALERT_NAMES:
            self.alert_active.labels(name).set(0)

    def publish(self, figures: Figures, alerts: Sequence[Alert], now_s: float) -> None:
        """Set every gauge from one consistent reading."""
        for event_type, n in figures.events.items():
            self.events.labels(event_type).set(n)
        self.refunded_payments.set(figures.refunded_payments)
        for name, value in (
            ("success", figures.success_rate),
            ("failure", figures.failure_rate),
            ("refund", figures.refund_rate),
        ):
            self.rate.labels(name).set(math.nan if value is None else float(value))
        for currency, units in figures.revenue.items():
            self.revenue.labels(currency).set(float(money.from_units(units)))
        for currency, units in figures.refunded.items():
            self.refunded.labels(currency).set(float(money.from_units(units)))
        for currency, mean in averages(figures).items():
            self.average.labels(currency).set(float(mean))
        for currency, median in figures.medians.items():
            self.median.labels(currency).set(float(median))
        for method, n in figures.methods.items():
            self.methods.labels(method).set(n)
        for method, by_currency in figures.revenue_by_method.items():
            for currency, units in by_currency.items():
                self.revenue_by_method.labels(method, currency).set(float(money.from_units(units)))
        for code, n in figures.failure_reasons.items():
            self.failures.labels(code).set(n)
        durations = figures.durations
        for quantile, ms in (
            ("0.5", durations.p50_ms),
            ("0.95", durations.p95_ms),
            ("1", durations.max_ms),
        ):
            self.time_to_complete.labels(quantile).set(math.nan if ms is None else ms / 1000)
        if figures.latest_event_ms is not None:
            self.latest.set(figures.latest_event_ms / 1000)
        self._alerts(alerts)
        self.refreshed.set(now_s)

    def _alerts(self, alerts: Sequence[Alert]) -> None:
        active = {alert.name: alert for alert in alerts}
        for name in ALERT_NAMES:
            alert = active.get(name)
            self.alert_active.labels(name).set(0 if alert is None else 1)
            self.alert_value.labels(name).set(math.nan if alert is None else float(alert.value))
            self.alert_threshold.labels(name).set(
                math.nan if alert is None else float(alert.threshold)
            )
