"""Pure alert evaluation: figures in, active alerts out, and what changed between two runs."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest

from analytics_consumer.alerts import Alert, AlertInputs, AlertRules, Outcomes, changes, evaluate
from analytics_consumer.figures import Delays
from analytics_consumer.settings import AnalyticsSettings
from common.settings import ConfigurationError, load_settings
from tests.analytics.test_report import sample

QUIET = Delays(threshold_ms=120_000)


def inputs(**values: object) -> AlertInputs:
    base: dict[str, object] = {
        "initiated": 100,
        "completed": 90,
        "failed": 5,
        "refunded_payments": 9,
        "delays": QUIET,
        "unusual_amounts": {},
    }
    return AlertInputs(**(base | values))  # type: ignore[arg-type]


def names(found: Sequence[Alert]) -> list[str]:
    return [alert.name for alert in found]


class TestRules:
    def test_rates_at_their_thresholds_raise_nothing(self) -> None:
        """A 5% failure rate and a 10% refund rate are at, not above, the spec's limits."""
        assert evaluate(inputs(), AlertRules()) == []

    def test_a_failure_rate_above_five_percent_is_raised_with_value_and_threshold(self) -> None:
        """6 failures in 100 initiated payments raise high_failure_rate at 6.00 against 5."""
        (alert,) = evaluate(inputs(failed=6), AlertRules())
        assert (alert.name, alert.value, alert.threshold) == (
            "high_failure_rate",
            Decimal("6.00"),
            Decimal(5),
        )

    def test_a_refund_rate_above_ten_percent_is_raised(self) -> None:
        """10 refunded of 90 completed payments (11.11%) raise high_refund_rate."""
        (alert,) = evaluate(inputs(refunded_payments=10), AlertRules())
        assert alert.name == "high_refund_rate"
        assert alert.value == Decimal("11.11")

    def test_small_samples_do_not_raise_rate_alerts(self) -> None:
        """One failure among two payments stays quiet below the minimum sample sizes."""
        small = inputs(initiated=2, failed=1, completed=1, refunded_payments=1)
        assert evaluate(small, AlertRules()) == []
        assert names(
            evaluate(small, AlertRules(failure_min_initiated=2, refund_min_completed=1))
        ) == [
            "high_failure_rate",
            "high_refund_rate",
        ]

    def test_a_payment_slower_than_two_minutes_raises_processing_delay_in_seconds(self) -> None:
        """A longest wait of 150 s is reported as 150 against the 120 s threshold."""
        slow = Delays(threshold_ms=120_000, slow=1, pending=0, longest_ms=150_000)
        (alert,) = evaluate(inputs(delays=slow), AlertRules())
        assert (alert.name, alert.value, alert.threshold) == (
            "processing_delay",
            Decimal(150),
            Decimal(120),
        )

    def test_unusual_amounts_are_raised_per_currency(self) -> None:
        """Any payment above its currency's limit raises unusual_amounts with the count."""
        (alert,) = evaluate(inputs(unusual_amounts={"EUR": 2, "JPY": 1}), AlertRules())
        assert alert.name == "unusual_amounts"
        assert alert.value == 3
        assert "2 in EUR" in alert.message

    def test_the_amount_limit_is_the_lower_of_the_ceiling_and_the_median_rule(self) -> None:
        """With EUR capped at 5000 and 10x a 300 median, the limit is 3000; the median rule waits for enough samples."""
        rules = AlertRules(amount_limits={"EUR": Decimal(5000)}, amount_min_samples=20)
        assert rules.amount_limits_for({"EUR": Decimal(300)}, {"EUR": 20}) == {"EUR": Decimal(3000)}
        assert rules.amount_limits_for({"EUR": Decimal(300)}, {"EUR": 19}) == {"EUR": Decimal(5000)}
        assert "USD" not in rules.amount_limits_for({"USD": Decimal(300)}, {"USD": 5})


class TestGatewayUnavailable:
    def test_gateway_errors_dominating_the_outcomes_raise_it_with_their_share(self) -> None:
        """6 processing_error and 1 api_connection_error among 10 outcomes is 70% > 50%: gateway_unavailable, naming the codes."""
        outcomes = Outcomes(3, {"processing_error": 6, "api_connection_error": 1})
        [alert] = evaluate(inputs(outcomes=outcomes), AlertRules())
        assert (alert.name, alert.value, alert.threshold) == (
            "gateway_unavailable",
            Decimal("70.00"),
            Decimal(50),
        )
        assert "7 of 10" in alert.message
        assert "processing_error 6" in alert.message

    def test_customer_side_declines_are_not_the_gateway(self) -> None:
        """Ten card_declined failures and no completion are the customers' cards, not an outage."""
        outcomes = Outcomes(0, {"card_declined": 10})
        assert "gateway_unavailable" not in names(evaluate(inputs(outcomes=outcomes), AlertRules()))

    def test_half_or_too_few_outcomes_raise_nothing(self) -> None:
        """5 gateway errors of 10 outcomes is at the threshold; 4 of 4 is below the minimum sample."""
        rules = AlertRules()
        half = Outcomes(5, {"processing_error": 5})
        few = Outcomes(0, {"processing_error": 4})
        assert evaluate(inputs(outcomes=half), rules) == []
        assert evaluate(inputs(outcomes=few), rules) == []

    def test_the_gateway_codes_are_a_setting(self) -> None:
        """With ALERT_GATEWAY_ERROR_CODES naming card_declined, card declines count as the gateway's."""
        rules = AlertRules(gateway_error_codes=frozenset({"card_declined"}))
        outcomes = Outcomes(0, {"card_declined": 10})
        assert names(evaluate(inputs(outcomes=outcomes), rules)) == ["gateway_unavailable"]

    def test_a_report_scope_judges_its_completions_and_failed_attempts(self) -> None:
        """AlertInputs.of(figures) takes the completions and the failure reasons (per attempt) as the outcomes."""
        figures = sample(failure_reasons={"processing_error": 40}, failed_payments=10)
        assert AlertInputs.of(figures).outcomes == Outcomes(30, {"processing_error": 40})
        assert "gateway_unavailable" in names(evaluate(AlertInputs.of(figures), AlertRules()))


class TestTransitions:
    def test_changes_name_what_was_raised_and_what_cleared(self) -> None:
        """Between two evaluations, new alerts are raised and vanished ones cleared; unchanged ones are neither."""
        before = evaluate(inputs(failed=6), AlertRules())
        after = evaluate(inputs(failed=7, refunded_payments=20), AlertRules())
        raised, cleared = changes(before, after)
        assert names(raised) == ["high_refund_rate"]
        assert cleared == []
        raised, cleared = changes(after, [])
        assert raised == []
        assert names(cleared) == ["high_failure_rate", "high_refund_rate"]


class TestSettings:
    def test_thresholds_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ALERT_* variables set the rules, amount limits as CUR=amount pairs."""
        monkeypatch.setenv("ALERT_FAILURE_RATE_PERCENT", "2.5")
        monkeypatch.setenv("ALERT_AMOUNT_LIMITS", "eur=10000, JPY=1500000")
        monkeypatch.setenv("ALERT_PROCESSING_DELAY_SECONDS", "60")
        rules = AlertRules.from_settings(AnalyticsSettings())
        assert rules.failure_rate_percent == Decimal("2.5")
        assert rules.amount_limits == {"EUR": Decimal(10000), "JPY": Decimal(1500000)}
        assert rules.processing_delay_ms == 60_000

    def test_abandonment_and_gateway_settings_come_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ANALYTICS_ABANDONED_AFTER_SECONDS overrides the named methods and keeps the others; the gateway's codes and the exempt methods are comma lists."""
        monkeypatch.setenv(
            "ANALYTICS_ABANDONED_AFTER_SECONDS", "credit_card=600, sepa_debit=432000"
        )
        monkeypatch.setenv("ANALYTICS_ABANDONED_DEFAULT_SECONDS", "7200")
        monkeypatch.setenv("ALERT_GATEWAY_ERROR_CODES", "processing_error, api_error")
        monkeypatch.setenv("ALERT_PROCESSING_DELAY_EXEMPT_METHODS", "bank_transfer,sepa_debit")
        monkeypatch.setenv("ALERT_GATEWAY_WINDOW_SECONDS", "300")
        rules = AlertRules.from_settings(AnalyticsSettings())
        assert rules.abandoned_after("credit_card") == 600_000
        assert rules.abandoned_after("sepa_debit") == 432_000_000
        assert rules.abandoned_after("bank_transfer") == 604_800_000
        assert rules.abandoned_after("gift_card") == 7_200_000
        assert rules.gateway_error_codes == {"processing_error", "api_error"}
        assert rules.delay_exempt_methods == {"bank_transfer", "sepa_debit"}
        assert rules.gateway_window_ms == 300_000

    def test_the_default_abandonment_thresholds_fit_the_method(self) -> None:
        """By default a card payment is abandoned after 15 minutes, a bank transfer after 7 days."""
        rules = AlertRules.from_settings(AnalyticsSettings())
        assert rules.abandoned_after("credit_card") == 15 * 60_000
        assert rules.abandoned_after("bank_transfer") == 7 * 86_400_000
        assert rules.delay_exempt_methods == {"bank_transfer"}

    def test_malformed_abandonment_thresholds_are_a_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ANALYTICS_ABANDONED_AFTER_SECONDS that are not method=seconds pairs stop start-up."""
        monkeypatch.setenv("ANALYTICS_ABANDONED_AFTER_SECONDS", "credit_card:15m")
        with pytest.raises(ConfigurationError, match="ANALYTICS_ABANDONED_AFTER_SECONDS"):
            load_settings(AnalyticsSettings)

    def test_malformed_amount_limits_are_a_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """ALERT_AMOUNT_LIMITS that are not CUR=amount pairs stop start-up with a readable line."""
        monkeypatch.setenv("ALERT_AMOUNT_LIMITS", "EUR:10000")
        with pytest.raises(ConfigurationError, match="ALERT_AMOUNT_LIMITS"):
            load_settings(AnalyticsSettings)
