"""Reconciliation, pure: reading gateway reports and finding each kind of discrepancy."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics_consumer.gateway_report import GatewayReportError, Movement, parse_gateway_report
from analytics_consumer.reconcile import compare


def charge(reference: str, amount: str, currency: str = "EUR") -> Movement:
    return Movement("charge", reference, Decimal(amount), currency, "test")


def refund(reference: str, amount: str, currency: str = "EUR") -> Movement:
    return Movement("refund", reference, Decimal(amount), currency, "test")


class TestGatewayReport:
    def test_our_format_is_read(self) -> None:
        """id,type,amount,currency rows become charges and refunds, currency upper-cased."""
        report = parse_gateway_report(
            "id,type,amount,currency\nch_1,charge,1250.00,eur\nre_1,refund,10.5,EUR\n"
        )
        assert report.movements == [
            Movement("charge", "ch_1", Decimal("1250.00"), "EUR", "line 2"),
            Movement("refund", "re_1", Decimal("10.5"), "EUR", "line 3"),
        ]
        assert report.ignored == 0

    def test_stripe_balance_report_columns_are_read(self) -> None:
        """source_id, reporting_category, gross (refunds negative) and lower-case currency are understood; fees are ignored."""
        content = (
            "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id\n"
            "txn_1,2025-12-18 10:32:15,eur,1250.00,-36.55,1213.45,charge,ch_1\n"
            "txn_2,2025-12-18 14:15:00,eur,-250.00,0.00,-250.00,refund,re_1\n"
            "txn_3,2025-12-18 23:00:00,eur,-36.55,0.00,-36.55,fee,\n"
        )
        report = parse_gateway_report(content)
        assert [(m.kind, m.reference, m.amount, m.currency) for m in report.movements] == [
            ("charge", "ch_1", Decimal("1250.00"), "EUR"),
            ("refund", "re_1", Decimal("250.00"), "EUR"),
        ]
        assert report.ignored == 1

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

    def test_the_result_renders_as_json_and_as_a_table(self) -> None:
        """Both renderings carry each discrepancy with both sides' values."""
        result = compare([charge("ch_1", "10.00")], [charge("ch_1", "12.00")], day="2025-12-18")
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
        assert "amount_mismatch" in result.as_text()
        assert "2025-12-18" in result.as_text()
