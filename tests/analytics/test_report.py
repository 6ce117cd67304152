"""Pure report building: the documented JSON keys and types, rates, percentiles and the table."""

from __future__ import annotations

import json
from decimal import Decimal

from analytics_consumer.alerts import AlertInputs, AlertRules, evaluate
from analytics_consumer.figures import (
    Abandonment,
    DaySummary,
    Delays,
    Durations,
    Figures,
    Initiation,
    RefundsVsOriginal,
    nearest_rank,
    rate,
)
from analytics_consumer.report import report_json, report_text

DOCUMENTED_KEYS: dict[str, type | tuple[type, ...]] = {
    "day": (str, type(None)),
    "latest_event_at": (str, type(None)),
    "events": dict,
    "payments_initiated": int,
    "payments_completed": int,
    "payments_failed": int,
    "payments_refunded": int,
    "failed_attempts": int,
    "payments_recovered": int,
    "success_rate": (float, type(None)),
    "failure_rate": (float, type(None)),
    "refund_rate": (float, type(None)),
    "revenue": dict,
    "refunded_amount": dict,
    "average_amount": dict,
    "median_amount": dict,
    "initiated_amount": dict,
    "average_initiated_amount": dict,
    "initiation_rate": dict,
    "payment_methods": dict,
    "revenue_by_method": dict,
    "failure_reasons": dict,
    "refund_reasons": dict,
    "refund_vs_original": dict,
    "time_to_complete_seconds": dict,
    "processing_delays": dict,
    "unusual_amounts": dict,
    "abandoned_payments": dict,
    "days": list,
    "alerts": list,
}


def sample(**changes: object) -> Figures:
    values: dict[str, object] = {
        "day": None,
        "latest_event_ms": 1_766_053_935_000,
        "events": {"payment.initiated": 40, "payment.completed": 30, "payment.failed": 10},
        "refunded_payments": 4,
        "revenue": {"EUR": 12_500_000 + 7_500_000, "JPY": 482_000_000},
        "completed_by_currency": {"EUR": 2, "JPY": 1},
        "refunded": {"EUR": 12_500_000},
        "medians": {"EUR": Decimal("1000.00"), "JPY": Decimal("48200")},
        "methods": {"credit_card": 30, "paypal": 10},
        "revenue_by_method": {
            "credit_card": {"EUR": 20_000_000},
            "(unknown)": {"JPY": 482_000_000},
        },
        "failure_reasons": {"card_declined": 10},
        "durations": Durations(3, 12_000, 150_000, 150_000, (0, 0, 2, 0, 0, 0, 1, 0)),
        "delays": Delays(120_000, slow=1, pending=2, longest_ms=150_000),
        "unusual_amounts": {"EUR": 0},
        "days": [DaySummary("2025-12-18", 40, 30, 8, 4, {"EUR": 20_000_000}, 10)],
        "failed_payments": 8,
        "recovered_payments": 3,
        "initiated_amount": {"EUR": 30_010_000},
        "initiated_by_currency": {"EUR": 3},
        "initiation": Initiation(40, 7_200_000),
        "refund_reasons": {"Customer requested cancellation": 3, "Voyage cancelled": 1},
        "refunds_vs_original": RefundsVsOriginal(
            4, 2, 1, 0, 1, refunded={"EUR": 12_500_000}, original={"EUR": 20_000_000}
        ),
        "abandoned": Abandonment(2, {"bank_transfer": 1, "credit_card": 1}, {"EUR": 5_000_000}),
    }
    return Figures(**(values | changes))  # type: ignore[arg-type]


class TestJson:
    def test_the_report_has_exactly_the_documented_keys_and_types(self) -> None:
        """Every documented key is present with its type, and no other key."""
        figures = sample()
        document = json.loads(
            json.dumps(report_json(figures, evaluate(AlertInputs.of(figures), AlertRules())))
        )
        assert set(document) == set(DOCUMENTED_KEYS)
        for key, kind in DOCUMENTED_KEYS.items():
            assert isinstance(document[key], kind), key
        assert set(document["time_to_complete_seconds"]) == {
            "count",
            "p50",
            "p95",
            "max",
            "histogram",
        }
        assert set(document["processing_delays"]) == {
            "threshold_seconds",
            "slow",
            "pending",
            "longest_seconds",
        }
        assert set(document["initiation_rate"]) == {"per_hour", "payments", "over_seconds"}
        assert set(document["refund_vs_original"]) == {
            "payments",
            "full",
            "partial",
            "exceeding",
            "without_original",
            "refunded",
            "original",
            "percent",
        }
        assert set(document["abandoned_payments"]) == {"count", "by_method", "amount"}
        assert set(document["days"][0]) == {
            "day",
            "payments_initiated",
            "payments_completed",
            "payments_failed",
            "failed_attempts",
            "payments_refunded",
            "success_rate",
            "failure_rate",
            "refund_rate",
            "revenue",
        }
        for alert in document["alerts"]:
            assert set(alert) == {"name", "value", "threshold", "message"}
            assert isinstance(alert["value"], float)
            assert isinstance(alert["threshold"], float)

    def test_money_is_decimal_text_at_the_currency_decimals(self) -> None:
        """Revenue, averages and medians are strings like "1250.00", yen without decimals."""
        document = report_json(sample(), [])
        assert document["revenue"] == {"EUR": "2000.00", "JPY": "48200"}
        assert document["average_amount"] == {"EUR": "1000.00", "JPY": "48200"}
        assert document["median_amount"] == {"EUR": "1000.00", "JPY": "48200"}
        assert document["refunded_amount"] == {"EUR": "1250.00"}
        assert document["revenue_by_method"]["(unknown)"] == {"JPY": "48200"}

    def test_rates_are_percentages_rounded_to_two_decimals(self) -> None:
        """30 of 40 is 75.0, 8 failed payments of 40 is 20.0, 4 of 30 is 13.33."""
        document = report_json(sample(), [])
        assert (document["success_rate"], document["failure_rate"], document["refund_rate"]) == (
            75.0,
            20.0,
            13.33,
        )

    def test_the_failure_rate_counts_payments_and_the_reasons_count_attempts(self) -> None:
        """10 failed attempts of 8 payments: payments_failed 8 and the rate over them, failed_attempts 10 as the reasons sum."""
        document = report_json(sample(), [])
        assert (document["payments_failed"], document["failed_attempts"]) == (8, 10)
        assert sum(document["failure_reasons"].values()) == document["failed_attempts"]
        assert document["payments_recovered"] == 3
        assert (document["days"][0]["payments_failed"], document["days"][0]["failed_attempts"]) == (
            8,
            10,
        )

    def test_initiated_amounts_and_the_initiation_rate(self) -> None:
        """3 initiated EUR payments of 3001.00 in all average 1000.33; 40 initiations over two hours are 20 per hour."""
        document = report_json(sample(), [])
        assert document["initiated_amount"] == {"EUR": "3001.00"}
        assert document["average_initiated_amount"] == {"EUR": "1000.33"}
        assert document["initiation_rate"] == {
            "per_hour": 20.0,
            "payments": 40,
            "over_seconds": 7200.0,
        }

    def test_refunds_against_the_original_and_their_reasons(self) -> None:
        """1250.00 refunded of 2000.00 is 62.5%, with the payments by kind and the reasons as given."""
        document = report_json(sample(), [])
        assert document["refund_vs_original"] == {
            "payments": 4,
            "full": 2,
            "partial": 1,
            "exceeding": 0,
            "without_original": 1,
            "refunded": {"EUR": "1250.00"},
            "original": {"EUR": "2000.00"},
            "percent": {"EUR": 62.5},
        }
        assert document["refund_reasons"] == {
            "Customer requested cancellation": 3,
            "Voyage cancelled": 1,
        }

    def test_abandoned_payments_are_reported_by_method_with_their_amount(self) -> None:
        """Two abandoned payments, one per method, 500.00 EUR initiated."""
        assert report_json(sample(), [])["abandoned_payments"] == {
            "count": 2,
            "by_method": {"bank_transfer": 1, "credit_card": 1},
            "amount": {"EUR": "500.00"},
        }

    def test_undefined_figures_are_null(self) -> None:
        """With no payment at all, rates and durations are null, not zero."""
        empty = sample(
            events={},
            refunded_payments=0,
            durations=Durations(),
            days=[],
            latest_event_ms=None,
            failed_payments=0,
            initiation=Initiation(),
            refunds_vs_original=RefundsVsOriginal(),
        )
        document = report_json(empty, [])
        assert document["initiation_rate"]["per_hour"] is None
        assert document["refund_vs_original"]["percent"] == {}
        assert document["success_rate"] is None
        assert document["refund_rate"] is None
        assert document["time_to_complete_seconds"]["p95"] is None
        assert document["latest_event_at"] is None

    def test_durations_are_seconds(self) -> None:
        """Milliseconds in the figures are seconds in the report."""
        ttc = report_json(sample(), [])["time_to_complete_seconds"]
        assert (ttc["count"], ttc["p50"], ttc["p95"], ttc["max"]) == (3, 12.0, 150.0, 150.0)


class TestArithmetic:
    def test_rate_rounds_half_even_and_is_none_without_a_denominator(self) -> None:
        """1/8 is 12.50, 1/3 is 33.33, 2/3 is 66.67, x/0 is None."""
        assert rate(1, 8) == Decimal("12.50")
        assert rate(1, 3) == Decimal("33.33")
        assert rate(2, 3) == Decimal("66.67")
        assert rate(1, 0) is None

    def test_percentiles_use_the_nearest_rank(self) -> None:
        """p50 of 4 values is the 2nd, p95 of 20 is the 19th, p95 of 1 is the 1st."""
        assert nearest_rank(4, 50) == 2
        assert nearest_rank(20, 95) == 19
        assert nearest_rank(1, 95) == 1


class TestText:
    def test_the_table_report_shows_figures_and_alerts(self) -> None:
        """The readable report lists counts, money per currency, methods, days and raised alerts."""
        figures = sample()
        text = report_text(
            figures, evaluate(AlertInputs.of(figures), AlertRules(failure_min_initiated=1))
        )
        assert "Payments report: all days" in text
        assert "2,000.00 EUR" in text
        assert "48,200 JPY" in text
        assert "credit_card" in text
        assert "2025-12-18" in text
        assert "! high_failure_rate" in text
