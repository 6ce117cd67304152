"""The derivation rules, one behaviour per test, on hand-written facts (no database)."""

from __future__ import annotations

import itertools
from decimal import Decimal

from common.confirmation import confirmation_number
from dreamscape_dev.testing.builders import inbound, spec_records
from tests.voyage.bookings import document, fact
from voyage_consumer.domain import Derivation, derive
from voyage_consumer.facts import Fact, storage_problem, to_fact


def derived(*facts: Fact, booking: str = "bk_1") -> Derivation:
    result = derive(booking, facts)
    assert result is not None
    return result


class TestSpecExamples:
    def test_the_four_spec_examples_end_cancelled_with_the_whole_amount_refunded(self) -> None:
        """The spec's printed examples (initiated, failed, completed, refunded) cancel booking_456def and release its inventory."""
        facts = [to_fact(inbound(r).event) for r in spec_records()]
        d = derived(*facts, booking="booking_456def")
        assert d.booking.status == "cancelled"
        assert d.booking.refunded_amount == Decimal("1250.00")
        assert str(d.booking.refunded_amount) == "1250.00"
        assert d.hold == "released"
        assert d.booking.transaction_id == "stripe_ch_3NqY7L2eZvKYlo2C0XYZ1234"
        assert d.booking.confirmation_number == confirmation_number(
            "booking_456def", "pay_abc123xyz"
        )
        assert d.anomalies == ()


class TestAttempts:
    def test_an_initiated_payment_leaves_the_booking_pending_with_inventory_held(self) -> None:
        """Only `payment.initiated` seen: payment_pending, inventory held, no confirmation number."""
        d = derived(fact(document("initiated")))
        assert (d.booking.status, d.hold) == ("payment_pending", "held")
        assert d.booking.confirmation_number is None
        assert d.booking.refunded_amount == 0

    def test_a_failed_payment_releases_the_inventory(self) -> None:
        """An initiated then failed payment: payment_failed and the hold released."""
        d = derived(fact(document("initiated")), fact(document("failed", minutes=1)))
        assert (d.booking.status, d.hold) == ("payment_failed", "released")

    def test_a_failure_then_a_new_payment_that_completes_confirms_the_booking(self) -> None:
        """A failed attempt followed by a completed one (another paymentId) ends confirmed and converted."""
        d = derived(
            fact(document("failed", payment="pay_1", minutes=1)),
            fact(document("completed", payment="pay_2", minutes=5)),
        )
        assert (d.booking.status, d.hold, d.booking.payment_id) == (
            "confirmed",
            "converted",
            "pay_2",
        )

    def test_a_failure_of_the_completed_payment_never_undoes_it(self) -> None:
        """A failure event of the same payment, even timed after its completion, leaves it confirmed."""
        d = derived(fact(document("completed", minutes=1)), fact(document("failed", minutes=9)))
        assert d.booking.status == "confirmed"

    def test_without_a_completion_the_latest_attempt_decides(self) -> None:
        """Failed then a newer open attempt is pending; failed twice is payment_failed."""
        failed = fact(document("failed", payment="pay_1", minutes=1))
        reopened = derived(failed, fact(document("initiated", payment="pay_2", minutes=5)))
        assert (reopened.booking.status, reopened.hold) == ("payment_pending", "held")
        twice = derived(failed, fact(document("failed", payment="pay_2", minutes=5)))
        assert (twice.booking.status, twice.booking.payment_id) == ("payment_failed", "pay_2")

    def test_a_booking_known_only_through_refunds_has_no_row_yet(self) -> None:
        """Refunds alone derive nothing: the booking appears once one of its payments is seen."""
        assert derive("bk_1", [fact(document("refunded"))]) is None


class TestRefunds:
    def test_a_partial_refund_keeps_the_trip(self) -> None:
        """Refunding part of the price: partially_refunded, refunded_amount set, inventory converted."""
        d = derived(fact(document("completed")), fact(document("refunded", amount="30.00")))
        assert (d.booking.status, d.hold) == ("partially_refunded", "converted")
        assert d.booking.refunded_amount == Decimal("30.00")

    def test_refunds_that_add_up_to_the_price_cancel_the_booking(self) -> None:
        """Two partial refunds reaching the paid amount: cancelled, inventory released."""
        d = derived(
            fact(document("completed")),
            fact(document("refunded", amount="30.00", refund_id="rf_1", minutes=5)),
            fact(document("refunded", amount="70.00", refund_id="rf_2", minutes=9)),
        )
        assert (d.booking.status, d.hold) == ("cancelled", "released")
        assert d.booking.refunded_amount == Decimal("100.00")

    def test_a_refund_seen_before_its_completion_waits_and_then_applies(self) -> None:
        """A refund without a completed payment waits; once the completion is there it counts."""
        refund, paid = fact(document("refunded", minutes=9)), fact(document("completed"))
        waiting = derived(fact(document("initiated")), refund)
        assert waiting.booking.status == "payment_pending"
        assert waiting.pending_refunds == (refund,)
        assert derived(refund, paid).booking.status == "cancelled"

    def test_the_same_refund_under_two_event_ids_counts_once(self) -> None:
        """A refund republished with a new eventId (same refundId) is not applied twice."""
        d = derived(
            fact(document("completed")),
            fact(document("refunded", amount="40.00", minutes=3)),
            fact(document("refunded", amount="40.00", minutes=3)),
        )
        assert d.booking.refunded_amount == Decimal("40.00")

    def test_a_refund_above_the_paid_amount_is_an_anomaly_and_not_applied(self) -> None:
        """The refund that would exceed the price (the later one by refundedAt) is rejected as an anomaly."""
        d = derived(
            fact(document("completed")),
            fact(document("refunded", amount="80.00", refund_id="rf_1", minutes=5)),
            fact(document("refunded", amount="50.00", refund_id="rf_2", minutes=9)),
        )
        assert d.booking.status == "partially_refunded"
        assert d.booking.refunded_amount == Decimal("80.00")
        assert [(a.kind, a.subject) for a in d.anomalies] == [("refund_exceeds_payment", "rf_2")]

    def test_a_refund_in_another_currency_is_an_anomaly_and_not_applied(self) -> None:
        """A USD refund of a EUR payment leaves the booking confirmed and is reported."""
        d = derived(
            fact(document("completed")),
            fact(document("refunded", currency="USD", minutes=5)),
        )
        assert d.booking.status == "confirmed"
        assert [a.kind for a in d.anomalies] == ["refund_currency_mismatch"]

    def test_a_zero_decimal_currency_keeps_its_scale(self) -> None:
        """A yen booking reports refunded_amount `0` and its refunds without decimals."""
        d = derived(fact(document("completed", amount="48200", currency="JPY")))
        assert str(d.booking.refunded_amount) == "0"


class TestDoubleCharge:
    def test_the_earliest_completion_pays_and_the_other_is_an_anomaly(self) -> None:
        """Two completed payments: the earlier completedAt wins, the other is a double_charge anomaly."""
        first = fact(document("completed", payment="pay_b", minutes=1))
        second = fact(document("completed", payment="pay_a", minutes=2))
        d = derived(second, first)
        assert d.booking.payment_id == "pay_b"
        assert d.booking.confirmation_number == confirmation_number("bk_1", "pay_b")
        assert [(a.kind, a.subject) for a in d.anomalies] == [("double_charge", "pay_a")]

    def test_refunding_the_double_charge_does_not_cancel_the_booking(self) -> None:
        """A full refund of the losing payment settles that charge and leaves the booking confirmed."""
        d = derived(
            fact(document("completed", payment="pay_b", minutes=1)),
            fact(document("completed", payment="pay_a", minutes=2)),
            fact(document("refunded", payment="pay_a", minutes=3)),
        )
        assert d.booking.status == "confirmed"
        assert len(d.other_refunds) == 1

    def test_a_completion_for_another_amount_than_initiated_is_an_anomaly(self) -> None:
        """Initiated for 100.00 but completed for 90.00: the completed amount counts, and it is reported."""
        d = derived(
            fact(document("initiated", amount="100.00")),
            fact(document("completed", amount="90.00", minutes=1)),
        )
        assert d.booking.amount == Decimal("90.00")
        assert [a.kind for a in d.anomalies] == ["amount_mismatch"]


class TestSeveralAttemptsOfOnePayment:
    def test_two_failures_then_a_completion_of_one_payment_confirm_in_any_order(self) -> None:
        """Declined twice (two cards) then paid, all under one paymentId: confirmed, whatever order the three arrive in (issue 21)."""
        facts = [
            fact(document("failed", minutes=1, text="Your card was declined.")),
            fact(document("failed", minutes=3, text="Insufficient funds.")),
            fact(document("completed", minutes=5)),
        ]
        for order in itertools.permutations(facts):
            d = derived(*order)
            assert d.booking.status == "confirmed", order
            assert d.booking.payment_id == "pay_1"
            assert d.booking.confirmation_number == confirmation_number("bk_1", "pay_1")
            assert d.hold == "converted"
            assert d.anomalies == ()

    def test_two_failures_of_one_payment_without_a_completion_are_payment_failed(self) -> None:
        """Two failed attempts and no completion leave the booking payment_failed, in either order."""
        facts = [
            fact(document("failed", minutes=1, text="Your card was declined.")),
            fact(document("failed", minutes=3, text="Insufficient funds.")),
        ]
        for order in itertools.permutations(facts):
            assert derived(*order).booking.status == "payment_failed"


class TestStorageProblem:
    def test_a_nul_character_can_never_be_stored(self) -> None:
        """Free text with a NUL character (valid JSON, refused by PostgreSQL) is named as the problem (identifiers with one never get here: the parser rejects them as invalid_value)."""
        problem = storage_problem(fact(document("failed", text="a\x00b")))
        assert problem is not None
        assert "NUL" in problem

    def test_an_ordinary_fact_has_no_problem(self) -> None:
        """A plain event is storable."""
        assert storage_problem(fact(document("initiated"))) is None
