"""The analytics service's settings: its database, consumer group, refresh cadence and alerts.

Every field is an environment variable (upper-cased name), read once in `main()` and passed
down; `RunnerSettings` brings the runtime's own (Kafka, batching, retries, HTTP port...).
Alert thresholds live here so that operations can tune them without a release, and the
report applies the same rules as the live service.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from common.settings import RunnerSettings


def parse_amount_limits(text: str) -> dict[str, Decimal]:
    """`"EUR=10000, JPY=1500000"` → `{"EUR": Decimal("10000"), "JPY": Decimal("1500000")}`."""
    limits: dict[str, Decimal] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        currency, sep, amount = item.partition("=")
        try:
            limit = Decimal(amount.strip())
        except InvalidOperation:
            limit = Decimal("NaN")
        if not sep or len(currency.strip()) != 3 or not limit.is_finite() or limit <= 0:
            raise ValueError(f"expected CUR=amount pairs (EUR=10000,JPY=1500000), got {item!r}")
        limits[currency.strip().upper()] = limit
    return limits


def parse_method_seconds(text: str) -> dict[str, int]:
    """`"credit_card=900, bank_transfer=604800"` → `{"credit_card": 900, "bank_transfer": 604800}`."""
    found: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        method, sep, seconds = item.partition("=")
        if not sep or not method.strip() or not seconds.strip().isdigit() or int(seconds) <= 0:
            raise ValueError(
                f"expected method=seconds pairs (credit_card=900,bank_transfer=604800), got {item!r}"
            )
        found[method.strip()] = int(seconds)
    return found


def parse_names(text: str) -> frozenset[str]:
    """`"processing_error, api_error"` → `frozenset({"processing_error", "api_error"})`."""
    return frozenset(filter(None, (part.strip() for part in text.split(","))))


ABANDONED_AFTER_SECONDS: dict[str, int] = {
    "credit_card": 900,
    "debit_card": 900,
    "paypal": 10_800,
    "crypto": 3_600,
    "bank_transfer": 604_800,
}
"""Default abandonment thresholds by payment method: a card payment is finished within
minutes (3-D Secure included), a PayPal approval within hours, a crypto charge within its
hour of validity, a bank transfer within days (the customer sends the money)."""

GATEWAY_ERROR_CODES: frozenset[str] = frozenset(
    {"processing_error", "api_error", "api_connection_error", "rate_limit", "gateway_timeout",
     "service_unavailable", "issuer_not_available", "try_again_later"}
)  # fmt: skip
"""errorCodes that say the gateway (or the network behind it) failed, not the customer's card:
Stripe's `api_error` / `api_connection_error` / `rate_limit` error types and its
`processing_error`, `issuer_not_available`, `try_again_later` decline codes."""


class AnalyticsSettings(RunnerSettings):
    """`RunnerSettings` plus what the analytics service needs (see docs/analytics.md)."""

    analytics_refresh_seconds: Annotated[float, Field(ge=0)] = 15.0
    """How often (at most) /metrics gauges and live alerts are recomputed from the database."""
    analytics_label_cap: Annotated[int, Field(ge=0, le=1000)] = 20
    """paymentMethod and errorCode values beyond the known ones that keep a metric label."""

    alert_window_seconds: Annotated[int, Field(gt=0)] = 3600
    """Live alerts look at this much event time before the latest event seen."""
    alert_failure_rate_percent: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(5)
    alert_failure_min_initiated: Annotated[int, Field(ge=1)] = 20
    alert_refund_rate_percent: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(10)
    alert_refund_min_completed: Annotated[int, Field(ge=1)] = 20
    alert_processing_delay_seconds: Annotated[int, Field(gt=0)] = 120
    alert_amount_limits: Annotated[dict[str, Decimal], NoDecode] = Field(default_factory=dict)
    """Per-currency ceilings for a single payment: `EUR=10000,JPY=1500000`."""
    alert_amount_median_factor: Annotated[Decimal, Field(ge=0)] = Decimal(10)
    """An amount above this many times its currency's median is unusual (0 turns it off)."""
    alert_amount_min_samples: Annotated[int, Field(ge=1)] = 20
    alert_processing_delay_exempt_methods: Annotated[frozenset[str], NoDecode] = Field(
        default_factory=lambda: frozenset({"bank_transfer"})
    )
    """Asynchronous methods (the customer sends the money): never slow, never pending for
    `processing_delay`; only their abandonment is counted."""

    analytics_abandoned_after_seconds: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: dict(ABANDONED_AFTER_SECONDS)
    )
    """Per payment method, how long after its initiation a payment without any outcome is
    abandoned: `credit_card=900,bank_transfer=604800` (the methods not named keep theirs)."""
    analytics_abandoned_default_seconds: Annotated[int, Field(gt=0)] = 86_400
    """The abandonment threshold of methods without one of their own."""

    alert_gateway_window_seconds: Annotated[int, Field(gt=0)] = 600
    """The gateway alert looks at this much event time before the latest event."""
    alert_gateway_error_percent: Annotated[Decimal, Field(ge=0, le=100)] = Decimal(50)
    """Share of the window's outcomes (completions and failed attempts) with a gateway-side
    errorCode above which `gateway_unavailable` is raised."""
    alert_gateway_min_outcomes: Annotated[int, Field(ge=1)] = 5
    alert_gateway_error_codes: Annotated[frozenset[str], NoDecode] = Field(
        default_factory=lambda: GATEWAY_ERROR_CODES
    )
    """Comma list of the errorCodes that are the gateway's, not the customer's card."""

    @field_validator("alert_amount_limits", mode="before")
    @classmethod
    def _limits(cls, value: Any) -> Any:
        return parse_amount_limits(value) if isinstance(value, str) else value

    @field_validator("analytics_abandoned_after_seconds", mode="before")
    @classmethod
    def _abandoned(cls, value: Any) -> Any:
        if isinstance(value, str):
            return ABANDONED_AFTER_SECONDS | parse_method_seconds(value)
        return value

    @field_validator(
        "alert_processing_delay_exempt_methods", "alert_gateway_error_codes", mode="before"
    )
    @classmethod
    def _names(cls, value: Any) -> Any:
        return parse_names(value) if isinstance(value, str) else value
