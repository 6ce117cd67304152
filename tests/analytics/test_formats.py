"""How figures read on the dashboard and in the text report: counts, money, rates, durations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics_consumer import formats
from analytics_consumer.formats import DASH


class TestCounts:
    def test_counts_have_thousands_separators(self) -> None:
        """A count reads with commas between thousands, and a missing one as a dash."""
        assert formats.count(7_058_690) == "7,058,690"
        assert formats.count(212) == "212"
        assert formats.count(None) == DASH

    def test_a_share_has_one_decimal(self) -> None:
        """A part of a whole reads as a percentage with one decimal, a dash of nothing."""
        assert formats.share(45, 100) == "45.0%"
        assert formats.share(1, 3) == "33.3%"
        assert formats.share(0, 0) == DASH


class TestMoney:
    @pytest.mark.parametrize(
        ("units", "currency", "shown"),
        [
            (70_586_900_000, "JPY", "7,058,690 JPY"),
            (12_500_000, "EUR", "1,250.00 EUR"),
            (12_340, "BHD", "1.234 BHD"),
            (5_464_809_500, "EUR", "546,480.95 EUR"),
            (0, "USD", "0.00 USD"),
        ],
    )
    def test_amounts_use_the_currency_decimals_and_separators(
        self, units: int, currency: str, shown: str
    ) -> None:
        """A total reads at its currency's minor units (JPY none, EUR two, BHD three) with separators and its code."""
        assert formats.amount(units, currency) == shown

    def test_amounts_in_several_currencies_are_one_line_by_code(self) -> None:
        """Totals per currency read on one line, sorted by code; none at all is a dash."""
        line = formats.amounts({"JPY": 70_586_900_000, "EUR": 12_500_000})
        assert line == "1,250.00 EUR \u00b7 7,058,690 JPY"
        assert formats.amounts({}) == DASH

    def test_a_mean_keeps_its_decimals(self) -> None:
        """A mean or median already rounded to the currency reads with separators and code."""
        assert formats.money_value(Decimal("82078"), "JPY") == "82,078 JPY"
        assert formats.money_value(Decimal("1E+3"), "JPY") == "1,000 JPY"
        assert formats.money_value(None, "EUR") == DASH


class TestPercent:
    def test_rates_keep_their_two_decimals(self) -> None:
        """A rate reads as computed (`84.10%`), a missing rate as a dash."""
        assert formats.percent(Decimal("84.10")) == "84.10%"
        assert formats.percent(Decimal("14.31")) == "14.31%"
        assert formats.percent(5.0) == "5%"
        assert formats.percent(None) == DASH


class TestDurations:
    @pytest.mark.parametrize(
        ("ms", "shown"),
        [
            (0, "0 ms"),
            (850, "850 ms"),
            (12_500, "12.5 s"),
            (59_940, "59.9 s"),
            (59_960, "1 min"),
            (120_000, "2 min"),
            (103_700, "1 min 44 s"),
            (125_000, "2 min 5 s"),
            (179_990, "3 min"),
            (3_599_700, "1 h"),
            (11_520_000, "3 h 12 min"),
            (825_911_929, "9 d 13 h"),
            (86_400_000, "1 d"),
        ],
    )
    def test_durations_read_in_at_most_two_units(self, ms: int, shown: str) -> None:
        """A duration reads in its largest unit and the next one, rounded to the smaller shown."""
        assert formats.duration(ms) == shown

    def test_seconds_and_nothing(self) -> None:
        """Seconds (the report's unit) read as durations, never as raw seconds; None is a dash."""
        assert formats.seconds(Decimal("825911.929")) == "9 d 13 h"
        assert formats.seconds(120) == "2 min"
        assert formats.seconds(None) == DASH
        assert formats.duration(None) == DASH

    @pytest.mark.parametrize(
        ("low", "high", "shown"),
        [
            (0, 5_000, "< 5 s"),
            (5_000, 10_000, "5\u201310 s"),
            (30_000, 60_000, "30 s\u20131 min"),
            (60_000, 120_000, "1\u20132 min"),
            (180_000, None, "\u2265 3 min"),
        ],
    )
    def test_histogram_buckets_read_as_ranges(self, low: int, high: int | None, shown: str) -> None:
        """A bucket `[low, high)` reads as a range sharing its unit, the last one as `≥`."""
        assert formats.duration_range(low, high) == shown


class TestAlerts:
    def test_alert_values_read_in_their_unit(self) -> None:
        """Rates read as percentages, the delay as a duration, unusual amounts as a count, others as numbers."""
        assert formats.alert_value("high_failure_rate", Decimal("14.31")) == "14.31%"
        assert formats.alert_value("high_refund_rate", Decimal(10)) == "10%"
        assert formats.alert_value("processing_delay", Decimal("825911.929")) == "9 d 13 h"
        assert formats.alert_value("unusual_amounts", Decimal(1234)) == "1,234"
        assert formats.alert_value("something_new", Decimal("2.50")) == "2.50"
