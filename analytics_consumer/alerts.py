"""The spec's alerting conditions as pure functions: figures in, active alerts out.

No I/O here: the live service (`monitor`) feeds in the figures of a sliding window of event
time and logs and exports what changes; the report feeds in the figures of its scope. Each
alert carries the observed `value` and the `threshold` it was compared with; it is active
when `value > threshold` and, for rates, only once the sample is large enough to mean
something (a single failure among two payments is not a 50% failure rate worth a page).

* `high_failure_rate`: failed / initiated * 100 > ALERT_FAILURE_RATE_PERCENT (5).
* `high_refund_rate`: refunded payments / completed * 100 > ALERT_REFUND_RATE_PERCENT (10).
* `processing_delay`: the longest time from initiated to outcome, or of a payment still
  without outcome at the latest event time but inside its method's abandonment window,
  > ALERT_PROCESSING_DELAY_SECONDS (120); abandoned payments and asynchronous methods
  (ALERT_PROCESSING_DELAY_EXEMPT_METHODS) are left out.
* `unusual_amounts`: initiated payments above their currency's limit, the lower of
  ALERT_AMOUNT_LIMITS and ALERT_AMOUNT_MEDIAN_FACTOR * the median completed amount.
* `gateway_unavailable`: failed attempts with a gateway-side errorCode
  (ALERT_GATEWAY_ERROR_CODES) / outcomes (completions and failed attempts) * 100 >
  ALERT_GATEWAY_ERROR_PERCENT (50), over at least ALERT_GATEWAY_MIN_OUTCOMES (5) outcomes
  of the last ALERT_GATEWAY_WINDOW_SECONDS (600) live. Silence (no event at all) cannot be
  seen in event time; Prometheus watches it with the wall clock (deploy/prometheus).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from analytics_consumer.figures import Delays, Figures, rate
from analytics_consumer.settings import (
    ABANDONED_AFTER_SECONDS,
    GATEWAY_ERROR_CODES,
    AnalyticsSettings,
)


@dataclass(frozen=True)
class AlertRules:
    failure_rate_percent: Decimal = Decimal(5)
    failure_min_initiated: int = 20
    refund_rate_percent: Decimal = Decimal(10)
    refund_min_completed: int = 20
    processing_delay_ms: int = 120_000
    amount_limits: Mapping[str, Decimal] = field(default_factory=dict)
    amount_median_factor: Decimal = Decimal(10)
    amount_min_samples: int = 20
    window_ms: int = 3_600_000
    delay_exempt_methods: frozenset[str] = frozenset({"bank_transfer"})
    abandoned_after_ms: Mapping[str, int] = field(
        default_factory=lambda: {m: s * 1000 for m, s in ABANDONED_AFTER_SECONDS.items()}
    )
    abandoned_default_ms: int = 86_400_000
    gateway_window_ms: int = 600_000
    gateway_error_percent: Decimal = Decimal(50)
    gateway_min_outcomes: int = 5
    gateway_error_codes: frozenset[str] = GATEWAY_ERROR_CODES

    @classmethod
    def from_settings(cls, settings: AnalyticsSettings) -> AlertRules:
        return cls(
            failure_rate_percent=settings.alert_failure_rate_percent,
            failure_min_initiated=settings.alert_failure_min_initiated,
            refund_rate_percent=settings.alert_refund_rate_percent,
            refund_min_completed=settings.alert_refund_min_completed,
            processing_delay_ms=settings.alert_processing_delay_seconds * 1000,
            amount_limits=dict(settings.alert_amount_limits),
            amount_median_factor=settings.alert_amount_median_factor,
            amount_min_samples=settings.alert_amount_min_samples,
            window_ms=settings.alert_window_seconds * 1000,
            delay_exempt_methods=settings.alert_processing_delay_exempt_methods,
            abandoned_after_ms={
                method: seconds * 1000
                for method, seconds in settings.analytics_abandoned_after_seconds.items()
            },
            abandoned_default_ms=settings.analytics_abandoned_default_seconds * 1000,
            gateway_window_ms=settings.alert_gateway_window_seconds * 1000,
            gateway_error_percent=settings.alert_gateway_error_percent,
            gateway_min_outcomes=settings.alert_gateway_min_outcomes,
            gateway_error_codes=settings.alert_gateway_error_codes,
        )

    def abandoned_after(self, method: str) -> int:
        """Milliseconds after which a payment of `method` without any outcome is abandoned."""
        return self.abandoned_after_ms.get(method, self.abandoned_default_ms)

    def amount_limits_for(
        self, medians: Mapping[str, Decimal], samples: Mapping[str, int]
    ) -> dict[str, Decimal]:
        """Per currency, the amount above which a payment is unusual (where a rule applies).

        The lower of the configured ceiling and `factor` * the median completed amount,
        the latter only once the median is taken over `amount_min_samples` payments.
        """
        limits: dict[str, Decimal] = {}
        for currency in sorted(set(medians) | set(self.amount_limits)):
            candidates = [self.amount_limits[currency]] if currency in self.amount_limits else []
            median = medians.get(currency)
            enough = samples.get(currency, 0) >= self.amount_min_samples
            if median is not None and self.amount_median_factor and enough:
                candidates.append(median * self.amount_median_factor)
            if candidates:
                limits[currency] = min(candidates)
        return limits


@dataclass(frozen=True)
class Outcomes:
    """Attempts that reached an outcome: completions, and failed attempts by errorCode."""

    completed: int = 0
    failures: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.completed + sum(self.failures.values())


@dataclass(frozen=True)
class AlertInputs:
    """The figures the rules look at, for one scope or window."""

    initiated: int
    completed: int
    failed: int
    """Failed payments (a payment failing on two cards counts once)."""
    refunded_payments: int
    delays: Delays
    unusual_amounts: Mapping[str, int]
    outcomes: Outcomes = Outcomes()
    """What the gateway rule looks at (live: its own, shorter, window)."""

    @classmethod
    def of(cls, figures: Figures) -> AlertInputs:
        return cls(
            figures.initiated,
            figures.completed,
            figures.failed,
            figures.refunded_payments,
            figures.delays,
            figures.unusual_amounts,
            Outcomes(figures.completed, figures.failure_reasons),
        )


@dataclass(frozen=True)
class Alert:
    name: str
    value: Decimal
    threshold: Decimal
    message: str


ALERT_NAMES = (
    "high_failure_rate",
    "high_refund_rate",
    "processing_delay",
    "unusual_amounts",
    "gateway_unavailable",
)


def evaluate(inputs: AlertInputs, rules: AlertRules) -> list[Alert]:
    """The alerts active for `inputs` under `rules`, in `ALERT_NAMES` order."""
    alerts: list[Alert] = []
    failure = rate(inputs.failed, inputs.initiated)
    if (
        failure is not None
        and inputs.initiated >= rules.failure_min_initiated
        and failure > rules.failure_rate_percent
    ):
        message = f"{inputs.failed} of {inputs.initiated} payments failed ({failure}%)"
        alerts.append(Alert("high_failure_rate", failure, rules.failure_rate_percent, message))
    refund = rate(inputs.refunded_payments, inputs.completed)
    if (
        refund is not None
        and inputs.completed >= rules.refund_min_completed
        and refund > rules.refund_rate_percent
    ):
        message = f"{inputs.refunded_payments} of {inputs.completed} payments refunded ({refund}%)"
        alerts.append(Alert("high_refund_rate", refund, rules.refund_rate_percent, message))
    delays = inputs.delays
    if delays.longest_ms is not None and delays.longest_ms > rules.processing_delay_ms:
        message = (
            f"{delays.slow} payments took longer than {rules.processing_delay_ms // 1000} s, "
            f"{delays.pending} are still waiting for an outcome"
        )
        alerts.append(
            Alert(
                "processing_delay",
                _seconds(delays.longest_ms),
                _seconds(rules.processing_delay_ms),
                message,
            )
        )
    unusual = sum(inputs.unusual_amounts.values())
    if unusual:
        detail = ", ".join(f"{n} in {c}" for c, n in sorted(inputs.unusual_amounts.items()) if n)
        alerts.append(
            Alert("unusual_amounts", Decimal(unusual), Decimal(0), f"unusual amounts: {detail}")
        )
    gateway = _gateway(inputs.outcomes, rules)
    if gateway is not None:
        alerts.append(gateway)
    return alerts


def _gateway(outcomes: Outcomes, rules: AlertRules) -> Alert | None:
    """`gateway_unavailable` when gateway-side errors dominate enough outcomes."""
    codes = {c: n for c, n in outcomes.failures.items() if c in rules.gateway_error_codes and n}
    errors = sum(codes.values())
    share = rate(errors, outcomes.total)
    if (
        share is None
        or outcomes.total < rules.gateway_min_outcomes
        or share <= rules.gateway_error_percent
    ):
        return None
    detail = ", ".join(f"{code} {n}" for code, n in sorted(codes.items()))
    message = (
        f"{errors} of {outcomes.total} payment outcomes were gateway errors ({share}%: {detail})"
    )
    return Alert("gateway_unavailable", share, rules.gateway_error_percent, message)


def changes(before: Iterable[Alert], after: Iterable[Alert]) -> tuple[list[Alert], list[Alert]]:
    """(raised, cleared) between two evaluations, by alert name."""
    old = {alert.name: alert for alert in before}
    new = {alert.name: alert for alert in after}
    raised = [alert for name, alert in new.items() if name not in old]
    cleared = [alert for name, alert in old.items() if name not in new]
    return raised, cleared


def _seconds(ms: int) -> Decimal:
    return Decimal(ms).scaleb(-3)
