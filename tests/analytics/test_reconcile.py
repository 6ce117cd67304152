"""Reconciliation, pure: reading gateway reports (ours and Stripe's) and finding each discrepancy."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Final

import pytest

from analytics_consumer.days import day_range
from analytics_consumer.gateway_report import (
    GatewayReportError,
    Movement,
    parse_gateway_report,
    read_gateway_report,
)
from analytics_consumer.reconcile import DISCREPANCY_KINDS, compare

REPORTS: Final = Path(__file__).parent / "reports"
BALANCE: Final = REPORTS / "balance_change_from_activity.itemized.3.csv"
PAYOUTS: Final = REPORTS / "payout_reconciliation.itemized.5.csv"
DAY: Final = "2025-12-18"
NOON: Final = day_range(DAY)[0] + 12 * 3_600_000
HOUR: Final = 3_600_000


def charge(reference: str, amount: str, currency: str = "EUR", at: int | None = None) -> Movement:
    return Movement("charge", reference, Decimal(amount), currency, "test", at)


def refund(reference: str, amount: str, currency: str = "EUR", at: int | None = None) -> Movement:
    return Movement("refund", reference, Decimal(amount), currency, "test", at)


class TestOurFormat:
    def test_our_format_is_read(self) -> None:
        """id,type,amount,currency rows become charges and refunds matched by id, currency upper-cased."""
        report = parse_gateway_report(
            "id,type,amount,currency\nch_1,charge,1250.00,eur\nre_1,refund,10.5,EUR\n"
        )
        assert report.movements == [
            Movement("charge", "ch_1", Decimal("1250.00"), "EUR", "line 2"),
            Movement("refund", "re_1", Decimal("10.5"), "EUR", "line 3"),
        ]
        assert report.match_by == "id"
        assert report.ignored == {}

    def test_a_report_without_a_needed_column_is_refused(self) -> None:
        """A CSV with no amount column names what it expected."""
        with pytest.raises(GatewayReportError, match="no amount column"):
            parse_gateway_report("id,type,currency\nch_1,charge,EUR\n")

    def test_an_unreadable_amount_names_its_line(self) -> None:
        """An amount that is not a decimal is reported with its line number."""
        with pytest.raises(GatewayReportError, match="line 3"):
            parse_gateway_report(
                "id,type,amount,currency\nch_1,charge,1,EUR\nch_2,charge,abc,EUR\n"
            )


class TestStripeReports:
    def test_the_balance_report_is_matched_by_payment_intent_in_the_customer_currency(
        self,
    ) -> None:
        """balance_change_from_activity.itemized rows become movements keyed by payment_intent_id, in customer_facing_amount/currency, refunds positive, with created_utc as their time."""
        report = read_gateway_report(BALANCE)
        assert report.match_by == "payment_intent"
        got = [(m.kind, m.reference, m.amount, m.currency) for m in report.movements]
        assert got == [
            ("charge", "pi_3QaC1x2eZvKYlo2C0p1", Decimal("1250.00"), "EUR"),
            ("charge", "pi_3QaC1x2eZvKYlo2C0p2", Decimal("120000"), "JPY"),
            ("refund", "pi_3QaC1x2eZvKYlo2C0p1", Decimal("250.00"), "EUR"),
            ("refund", "pi_3QaC1x2eZvKYlo2C0p1", Decimal("100.00"), "EUR"),
        ]
        assert report.movements[0].at_ms == day_range(DAY)[0] + (10 * 3600 + 32 * 60 + 15) * 1000
        assert report.ignored == {"dispute": 1, "fee": 1}

    def test_the_payout_report_counts_a_refund_failure_against_its_refunds(self) -> None:
        """payout_reconciliation.itemized rows: a zero-decimal JPY amount is read as yen, a refund_failure is a negative refund, the payout row is ignored."""
        report = read_gateway_report(PAYOUTS)
        got = [(m.kind, m.reference, m.amount, m.currency) for m in report.movements]
        assert got == [
            ("charge", "pi_3QaC1x2eZvKYlo2C0p3", Decimal("3000"), "JPY"),
            ("refund", "pi_3QaC1x2eZvKYlo2C0p3", Decimal("1000"), "JPY"),
            ("refund", "pi_3QaC1x2eZvKYlo2C0p3", Decimal("-1000"), "JPY"),
        ]
        assert report.ignored == {"payout": 1}

    def test_without_payment_intent_id_rows_are_matched_by_source_id(self) -> None:
        """Stripe's default column set has no payment_intent_id: charges and refunds are then keyed by source_id (ch_/re_ ids), in gross and currency."""
        content = (
            "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,"
            "reporting_category,source_id,description\n"
            "txn_1,2025-12-18 10:32:15,2025-12-20 00:00:00,eur,1250.00,36.55,1213.45,charge,ch_1,x\n"
            "txn_2,2025-12-18 14:15:00,2025-12-18 14:15:00,eur,-250.00,0.00,-250.00,refund,re_1,y\n"
        )
        report = parse_gateway_report(content)
        assert report.match_by == "id"
        assert [(m.kind, m.reference, m.amount) for m in report.movements] == [
            ("charge", "ch_1", Decimal("1250.00")),
            ("refund", "re_1", Decimal("250.00")),
        ]

    def test_a_row_without_a_payment_intent_falls_back_to_its_source_id(self) -> None:
        """A charge made without a PaymentIntent (empty payment_intent_id) keeps its ch_ id, so it shows up rather than vanishing."""
        content = (
            "balance_transaction_id,created_utc,currency,gross,reporting_category,source_id,"
            "payment_intent_id\n"
            "txn_1,2025-12-18 10:00:00,eur,10.00,charge,ch_legacy,\n"
        )
        [movement] = parse_gateway_report(content).movements
        assert movement.reference == "ch_legacy"

    def test_an_unreadable_created_utc_names_its_line(self) -> None:
        """created_utc that is not `YYYY-MM-DD HH:MM:SS` is an input error naming the line."""
        content = (
            "balance_transaction_id,created_utc,currency,gross,reporting_category,source_id\n"
            "txn_1,18/12/2025,eur,10.00,charge,ch_1\n"
        )
        with pytest.raises(GatewayReportError, match=r"line 2.*created_utc"):
            parse_gateway_report(content)


class TestCompare:
    def test_matching_sides_have_no_discrepancy(self) -> None:
        """Equal ids, amounts (however written) and currencies reconcile cleanly."""
        result = compare(
            [charge("ch_1", "1250.00"), refund("re_1", "5")],
            [charge("ch_1", "1250"), refund("re_1", "5.00")],
        )
        assert result.discrepancies == []

    def test_each_kind_of_discrepancy_is_found(self) -> None:
        """Missing on either side, amount and currency mismatches, and duplicates on either side are each reported once."""
        recorded = [
            charge("ch_ok", "10.00"),
            charge("ch_not_in_gateway", "10.00"),
            charge("ch_amount", "10.00"),
            charge("ch_currency", "10.00", "EUR"),
            charge("ch_twice_ours", "10.00"),
            charge("ch_twice_ours", "10.00"),
            refund("re_twice_theirs", "3.00"),
        ]
        gateway = [
            charge("ch_ok", "10.00"),
            charge("ch_not_in_events", "10.00"),
            charge("ch_amount", "10.01"),
            charge("ch_currency", "10.00", "USD"),
            charge("ch_twice_ours", "10.00"),
            refund("re_twice_theirs", "3.00"),
            refund("re_twice_theirs", "3.00"),
        ]
        found = {(d.kind, d.reference) for d in compare(recorded, gateway).discrepancies}
        assert found == {
            ("missing_in_gateway", "ch_not_in_gateway"),
            ("missing_in_events", "ch_not_in_events"),
            ("amount_mismatch", "ch_amount"),
            ("currency_mismatch", "ch_currency"),
            ("duplicate_in_events", "ch_twice_ours"),
            ("duplicate_in_gateway", "re_twice_theirs"),
        }

    def test_a_charge_and_a_refund_with_one_id_are_different_movements(self) -> None:
        """Matching is by type and id: a refund does not settle a charge of the same id."""
        kinds = {d.kind for d in compare([charge("x", "1")], [refund("x", "1")]).discrepancies}
        assert kinds == {"missing_in_gateway", "missing_in_events"}

    def test_by_payment_intent_refunds_are_compared_as_a_total(self) -> None:
        """Matched by PaymentIntent, two partial refunds on each side reconcile by their total, and a refund failure cancels a refund."""
        recorded = [refund("pi_1", "250.00"), refund("pi_1", "100.00"), refund("pi_2", "5.00")]
        gateway = [
            refund("pi_1", "100.00"),
            refund("pi_1", "200.00"),
            refund("pi_1", "50.00"),
            refund("pi_2", "5.00"),
            refund("pi_2", "5.00"),
            refund("pi_2", "-5.00"),
        ]
        assert compare(recorded, gateway, match_by="payment_intent").discrepancies == []
        [found] = compare(
            recorded, [*gateway, refund("pi_1", "1.00")], match_by="payment_intent"
        ).discrepancies
        assert (found.kind, found.reference) == ("amount_mismatch", "pi_1")
        assert (found.events, found.gateway) == ("350.00 EUR (2)", "351.00 EUR (4)")

    def test_a_refund_that_failed_at_the_gateway_is_not_missing_from_the_events(self) -> None:
        """A refund and its refund_failure (total zero) with no refund event is no discrepancy."""
        gateway = [refund("pi_1", "5.00"), refund("pi_1", "-5.00")]
        assert compare([], gateway, match_by="payment_intent").discrepancies == []

    def test_a_zero_decimal_amount_divided_by_100_has_its_own_kind(self) -> None:
        """An event amount that is the gateway's yen amount / 100 (the spec's webhook divides every currency by 100) is zero_decimal_scaled, not a plain amount mismatch."""
        result = compare(
            [charge("pi_1", "12", "JPY"), charge("pi_2", "12", "EUR")],
            [charge("pi_1", "1200", "JPY"), charge("pi_2", "1200", "EUR")],
        )
        assert {(d.kind, d.reference) for d in result.discrepancies} == {
            ("zero_decimal_scaled", "pi_1"),
            ("amount_mismatch", "pi_2"),
        }

    def test_movements_across_midnight_are_matched_not_missing(self) -> None:
        """A charge at 23:59:59 whose event says 00:00:02 the next day matches on either day, and one-sided rows outside the day are not reported."""
        _, hi = day_range(DAY)
        before_midnight, after_midnight = hi - 1000, hi + 2000
        gateway = [
            charge("pi_edge", "10", at=before_midnight),
            charge("pi_next", "5", at=hi + HOUR // 2),
        ]
        recorded = [charge("pi_edge", "10", at=after_midnight)]
        assert compare(recorded, gateway, day=DAY, margin_ms=HOUR).discrepancies == []
        result = compare(recorded, gateway, day="2025-12-19", margin_ms=HOUR)
        assert [(d.kind, d.reference) for d in result.discrepancies] == [
            ("missing_in_events", "pi_next")
        ]

    def test_gateway_rows_beyond_the_margin_are_counted_and_left_out(self) -> None:
        """A gateway row more than the margin away from the day is ignored as `outside_day`, not reported."""
        lo, _ = day_range(DAY)
        result = compare([], [charge("pi_old", "1", at=lo - 2 * HOUR)], day=DAY, margin_ms=HOUR)
        assert result.discrepancies == []
        assert result.ignored == {"outside_day": 1}

    def test_counts_by_kind_name_every_kind(self) -> None:
        """by_kind() has every discrepancy kind, zero when absent, so each becomes a metric series."""
        result = compare([charge("a", "1")], [])
        assert set(result.by_kind()) == set(DISCREPANCY_KINDS)
        assert result.by_kind()["missing_in_gateway"] == 1
        assert sum(result.by_kind().values()) == 1

    def test_the_result_renders_as_json_and_as_a_table(self) -> None:
        """Both renderings carry each discrepancy with both sides' values and how rows were matched."""
        result = compare([charge("ch_1", "10.00")], [charge("ch_1", "12.00")], day=DAY)
        document = result.as_json()
        assert document["discrepancies"] == [
            {
                "kind": "amount_mismatch",
                "type": "charge",
                "id": "ch_1",
                "events": "10.00 EUR",
                "gateway": "12.00 EUR",
            }
        ]
        assert document["matched_by"] == "id"
        assert "amount_mismatch" in result.as_text()
        assert DAY in result.as_text()

    def test_the_stripe_fixture_against_what_the_spec_producer_publishes(self) -> None:
        """The events the spec's webhook publishes (transactionId = pi_..., upper-case currency) reconcile with Stripe's balance report of the day."""
        report = read_gateway_report(BALANCE)
        recorded = [
            charge("pi_3QaC1x2eZvKYlo2C0p1", "1250.00", at=NOON),
            charge("pi_3QaC1x2eZvKYlo2C0p2", "120000", "JPY", at=NOON),
            refund("pi_3QaC1x2eZvKYlo2C0p1", "350.00", at=NOON),
        ]
        result = compare(
            recorded,
            report.movements,
            day=DAY,
            match_by=report.match_by,
            ignored=report.ignored,
            margin_ms=HOUR,
        )
        assert result.discrepancies == []
        assert result.ignored == {"dispute": 1, "fee": 1}
