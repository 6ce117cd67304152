"""The analytics figures and alerts as Prometheus gauges, in the registry `build` receives.

They are gauges, not counters, because they are read from the shared database: every
instance exports the same totals (all instances' work), so aggregate them across instances
with `max`, not `sum`. Undefined rates are NaN. Money becomes a float here only because
Prometheus has no other number type; the report keeps the exact decimals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from analytics_consumer import money
from analytics_consumer.alerts import ALERT_NAMES, Alert, AlertInputs
from analytics_consumer.figures import Figures
from analytics_consumer.report import averages, initiated_averages
from common.events import KNOWN_PAYMENT_METHODS

PREFIX: Final = "dreamscape_analytics_"
OTHER: Final = "other"
"""The label under which values beyond the cap are summed."""

#: errorCode values that always keep their own label: the spec's and the common gateway ones.
KNOWN_ERROR_CODES: Final = frozenset(
    {"card_declined", "insufficient_funds", "expired_card", "incorrect_cvc",
     "processing_error", "authentication_required", "fraud_suspected", "unknown"}
)  # fmt: skip


def bounded(counts: Mapping[str, int], *, known: AbstractSet[str], cap: int) -> dict[str, int]:
    """Counts by label value, with at most `cap` values beyond `known`; the rest as `other`.

    `paymentMethod` and `errorCode` come from producers: labelling by them as given lets one
    misbehaving gateway create a series per value. The most frequent unknown values keep
    their label (ties by name, so labels do not flap between refreshes); the report keeps
    the full detail.
    """
    kept = {value: n for value, n in counts.items() if value in known}
    others = sorted(
        ((v, n) for v, n in counts.items() if v not in known), key=lambda vn: (-vn[1], vn[0])
    )
    kept.update(others[:cap])
    if rest := sum(n for _, n in others[cap:]):
        kept[OTHER] = kept.get(OTHER, 0) + rest
    return kept


class AnalyticsGauges:
    def __init__(self, registry: CollectorRegistry, *, label_cap: int = 20) -> None:
        self.label_cap = label_cap
        self.known_error_codes = KNOWN_ERROR_CODES

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
        self.failures = gauge(
            "failure_reasons", "Failed attempts by errorCode (each attempt once)", ["error_code"]
        )
        self.failed_payments = gauge(
            "payments_failed", "Payments with at least one failed attempt (each once)"
        )
        self.recovered = gauge(
            "payments_recovered", "Payments that failed at least once, then completed"
        )
        self.initiated_amount = gauge("initiated_amount", "Sum of initiated amounts", ["currency"])
        self.average_initiated = gauge(
            "average_initiated_amount", "Mean initiated amount", ["currency"]
        )
        self.initiations_per_hour = gauge(
            "initiations_per_hour",
            "Payments initiated per hour over the alert window (ALERT_WINDOW_SECONDS of event time)",
        )
        self.refund_reasons = gauge("refund_reasons", "Refunds by reason", ["reason"])
        self.refunds_by_kind = gauge(
            "refunded_payments_by_kind",
            "Refunded payments by their refunds against the original amount",
            ["kind"],
        )
        self.refunded_percent = gauge(
            "refunded_percent_of_original",
            "Refunded amount / completed amount of the refunded payments, in percent",
            ["currency"],
        )
        self.abandoned = gauge(
            "abandoned_payments",
            "Payments initiated and never finished past their method's abandonment threshold",
            ["method"],
        )
        self.abandoned_amount = gauge(
            "abandoned_amount", "Initiated amount of the abandoned payments", ["currency"]
        )
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

    def publish(
        self,
        figures: Figures,
        alerts: Sequence[Alert],
        now_s: float,
        window: AlertInputs | None = None,
        window_s: float = 3600,
    ) -> None:
        """Set every gauge from one consistent reading (`window`: the alert window's)."""
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
        self._methods(figures)
        self.failures_from(figures.failure_reasons)
        self._issue_21(figures)
        if window is not None:
            self.initiations_per_hour.set(window.initiated * 3600 / window_s)
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

    def failures_from(self, failure_reasons: Mapping[str, int]) -> None:
        """Failed payments by errorCode, bounded (see `bounded`)."""
        self.failures.clear()  # a value folded into `other` since the last refresh goes away
        for code, n in bounded(
            failure_reasons, known=KNOWN_ERROR_CODES, cap=self.label_cap
        ).items():
            self.failures.labels(code).set(n)

    def _issue_21(self, figures: Figures) -> None:
        """Failed payments, initiated amounts, refunds against their payment, abandonment."""
        self.failed_payments.set(figures.failed)
        self.recovered.set(figures.recovered_payments)
        for currency, units in figures.initiated_amount.items():
            self.initiated_amount.labels(currency).set(float(money.from_units(units)))
        for currency, mean in initiated_averages(figures).items():
            self.average_initiated.labels(currency).set(float(mean))
        self.refund_reasons.clear()
        for reason, n in bounded(
            figures.refund_reasons, known=frozenset(), cap=self.label_cap
        ).items():
            self.refund_reasons.labels(reason).set(n)
        refunds = figures.refunds_vs_original
        for kind, n in (
            ("full", refunds.full),
            ("partial", refunds.partial),
            ("exceeding", refunds.exceeding),
            ("without_original", refunds.without_original),
        ):
            self.refunds_by_kind.labels(kind).set(n)
        for currency, percent in refunds.percent().items():
            self.refunded_percent.labels(currency).set(
                math.nan if percent is None else float(percent)
            )
        abandoned = figures.abandoned
        self.abandoned.clear()
        counts = bounded(abandoned.by_method, known=KNOWN_PAYMENT_METHODS, cap=self.label_cap)
        for method in sorted(KNOWN_PAYMENT_METHODS | counts.keys()):  # 0, not a gap, if none
            self.abandoned.labels(method).set(counts.get(method, 0))
        self.abandoned_amount.clear()
        for currency, units in abandoned.amount.items():
            self.abandoned_amount.labels(currency).set(float(money.from_units(units)))

    def _methods(self, figures: Figures) -> None:
        """Payments and revenue by paymentMethod, the same methods kept for both."""
        counts = bounded(figures.methods, known=KNOWN_PAYMENT_METHODS, cap=self.label_cap)
        self.methods.clear()
        for method, n in counts.items():
            self.methods.labels(method).set(n)
        revenue: dict[tuple[str, str], int] = {}
        for method, by_currency in figures.revenue_by_method.items():
            label = method if method in counts else OTHER
            for currency, units in by_currency.items():
                revenue[(label, currency)] = revenue.get((label, currency), 0) + units
        self.revenue_by_method.clear()
        for (label, currency), units in revenue.items():
            self.revenue_by_method.labels(label, currency).set(float(money.from_units(units)))

    def _alerts(self, alerts: Sequence[Alert]) -> None:
        active = {alert.name: alert for alert in alerts}
        for name in ALERT_NAMES:
            alert = active.get(name)
            self.alert_active.labels(name).set(0 if alert is None else 1)
            self.alert_value.labels(name).set(math.nan if alert is None else float(alert.value))
            self.alert_threshold.labels(name).set(
                math.nan if alert is None else float(alert.threshold)
            )
