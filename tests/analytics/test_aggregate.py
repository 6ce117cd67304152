"""Pure units of the write path: money in integer units, event days, and folding facts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from analytics_consumer import money
from analytics_consumer.days import day_number, day_of, day_range, epoch_ms, parse_day
from analytics_consumer.domain import (
    EVENTS,
    FAILURE,
    METHOD,
    OUTCOME_MINUTE,
    REFUND_REASON,
    REVENUE,
    FailedFact,
    extract,
    fold,
)
from dreamscape_dev.testing.builders import payment_event


class TestMoney:
    def test_amounts_become_exact_integer_units_of_a_ten_thousandth(self) -> None:
        """1250.00 is 12,500,000 units and back again without any rounding."""
        assert money.to_units(Decimal("1250.00")) == 12_500_000
        assert money.from_units(12_500_000) == Decimal("1250.00")
        assert money.to_units(Decimal("0.0001")) == 1

    @pytest.mark.parametrize("amount", ["0.00001", "1E+20", "Infinity"])
    def test_an_amount_units_cannot_hold_exactly_is_refused(self, amount: str) -> None:
        """More than four decimals, an absurd size or a non-finite value raises instead of rounding."""
        with pytest.raises(money.UnrepresentableAmountError):
            money.to_units(Decimal(amount))

    def test_totals_show_the_currencys_decimals(self) -> None:
        """Euro totals keep two decimals, yen none, and an odd total keeps the digits it needs."""
        assert money.text(money.shown(12_500_000, "EUR")) == "1250.00"
        assert money.text(money.shown(482_000_000, "JPY")) == "48200"
        assert money.text(money.shown(12_500_001, "EUR")) == "1250.0001"

    def test_means_and_medians_round_half_even_to_the_currency(self) -> None:
        """An average of 0.005 EUR rounds to 0.00 and one of 0.015 to 0.02 (half-even)."""
        assert money.mean(100, 2, "EUR") == Decimal("0.00")
        assert money.mean(300, 2, "EUR") == Decimal("0.02")
        assert money.median(10_000, 20_000, "EUR") == Decimal("1.50")


class TestDays:
    def test_an_event_counts_on_the_utc_day_of_its_own_time(self) -> None:
        """A completedAt at 23:30 in UTC-02:00 belongs to the next UTC day."""
        event = payment_event("payment.completed", completedAt="2025-12-18T23:30:00-02:00")
        fact = extract(event)
        assert day_of(fact.at_ms) == "2025-12-19"

    def test_event_times_are_exact_milliseconds(self) -> None:
        """Times become integer milliseconds since the epoch, sub-milliseconds dropped."""
        moment = datetime(2025, 12, 18, 10, 30, 0, 999_999, tzinfo=UTC)
        assert epoch_ms(moment) == 1_766_053_800_999

    def test_day_ranges_are_half_open_milliseconds(self) -> None:
        """A day's range starts at its midnight and ends at the next one, exclusive."""
        lo, hi = day_range("2025-12-18")
        assert day_of(lo) == "2025-12-18"
        assert day_of(hi - 1) == "2025-12-18"
        assert day_of(hi) == "2025-12-19"
        assert day_number(lo) + 1 == day_number(hi)

    def test_a_malformed_day_is_refused(self) -> None:
        """Only YYYY-MM-DD days that exist are accepted."""
        assert parse_day("2025-12-18") == "2025-12-18"
        for text in ("2025-13-01", "18/12/2025", "2025-12-18T00:00"):
            with pytest.raises(ValueError, match=r"YYYY-MM-DD|month"):
                parse_day(text)


class TestFold:
    def test_each_event_type_feeds_its_counters_and_the_payment_facts(self) -> None:
        """An initiated and a completed event of one payment give counts, revenue and a joined duration."""
        initiated = extract(
            payment_event("payment.initiated", initiatedAt="2025-12-18T10:30:00.000Z")
        )
        completed = extract(
            payment_event("payment.completed", completedAt="2025-12-18T10:32:15.500Z")
        )
        delta = fold([completed, initiated])
        day = day_number(initiated.at_ms)
        assert delta.counters[(day, EVENTS, "payment.initiated")] == [1, 0]
        assert delta.counters[(day, METHOD, "credit_card")] == [1, 0]
        assert delta.counters[(day, REVENUE, "EUR")] == [1, 12_500_000]
        row = delta.payments["pay_abc123xyz"].row()
        assert row[-1] == 135_500  # duration in ms, whichever half came first

    def test_the_first_value_seen_for_a_payment_wins(self) -> None:
        """A second initiated event for one payment (another eventId) is counted but does not overwrite the facts."""
        first = extract(payment_event("payment.initiated", paymentMethod="paypal"))
        again = extract(payment_event("payment.initiated", paymentMethod="crypto"))
        delta = fold([first, again])
        assert delta.payments["pay_abc123xyz"].method == "paypal"
        assert sum(n for (_, metric, _), (n, _) in delta.counters.items() if metric == EVENTS) == 2

    def test_refunds_keep_the_earliest_time_and_every_refund_row(self) -> None:
        """Two partial refunds give two refund rows and the earlier time as the first refund."""
        late = extract(
            payment_event("payment.refunded", refundId="r2", refundedAt="2025-12-21T10:00:00Z")
        )
        early = extract(
            payment_event("payment.refunded", refundId="r1", refundedAt="2025-12-20T10:00:00Z")
        )
        delta = fold([late, early])
        assert [row.refund_id for row in delta.refunds] == ["r2", "r1"]
        assert delta.payments["pay_abc123xyz"].first_refund_ms == early.at_ms

    def test_a_fact_names_what_its_event_type_is_counted_by(self) -> None:
        """A failed event's fact is a FailedFact carrying its errorCode by name; facts stay tuples, cheap to build and compare."""
        fact = extract(payment_event("payment.failed"))
        assert isinstance(fact, FailedFact)
        assert isinstance(fact, tuple)
        assert fact.error_code == "card_declined"


class TestAttemptsAndReasons:
    def test_each_failed_attempt_of_one_payment_is_counted_and_the_earliest_failure_kept(
        self,
    ) -> None:
        """Two failed attempts of one payment (two errorCodes) count one failure each; the payment's failure time is the earlier one, whatever the order."""
        late = extract(
            payment_event(
                "payment.failed", errorCode="insufficient_funds", failedAt="2025-12-18T10:33:00Z"
            )
        )
        early = extract(
            payment_event(
                "payment.failed", errorCode="card_declined", failedAt="2025-12-18T10:31:00Z"
            )
        )
        delta = fold([late, early])
        day = day_number(early.at_ms)
        assert delta.counters[(day, FAILURE, "card_declined")] == [1, 0]
        assert delta.counters[(day, FAILURE, "insufficient_funds")] == [1, 0]
        assert delta.counters[(day, EVENTS, "payment.failed")] == [2, 0]
        assert delta.payments["pay_abc123xyz"].failed_ms == early.at_ms

    def test_outcomes_are_counted_per_minute_of_the_day_for_the_gateway_alert(self) -> None:
        """A completion at 10:32:15 and a failure at 10:31:45 count under minutes 0632 and 0631."""
        completed = extract(payment_event("payment.completed"))
        failed = extract(payment_event("payment.failed"))
        delta = fold([completed, failed])
        day = day_number(completed.at_ms)
        assert delta.counters[(day, OUTCOME_MINUTE, "0632 completed")] == [1, 0]
        assert delta.counters[(day, OUTCOME_MINUTE, "0631 failed:card_declined")] == [1, 0]

    def test_refunds_are_counted_by_their_reason(self) -> None:
        """The spec's refund counts once under its reason "Customer requested cancellation"."""
        fact = extract(payment_event("payment.refunded"))
        delta = fold([fact])
        key = (day_number(fact.at_ms), REFUND_REASON, "Customer requested cancellation")
        assert delta.counters[key] == [1, 0]
