"""Payments as a gateway produces them (issue 21), through the store into the report.

Several failed attempts under one paymentId, abandoned payments, refunds against their
payment, initiated amounts and the gateway alert, on a real database (SQLite, then
PostgreSQL). Failed attempts are built with distinct errorCodes: the business key of a
failure is the attempt (paymentId, errorCode, errorMessage), so each is a new fact, while a
redelivery with identical content collapses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from analytics_consumer.alerts import AlertRules, evaluate
from analytics_consumer.gauges import AnalyticsGauges
from analytics_consumer.monitor import Monitor
from analytics_consumer.reading import read_window, snapshot
from dreamscape_dev.testing.builders import Document, event, inbounds
from tests.analytics.helpers import engine_for, report, store_for

pytestmark = pytest.mark.integration

T0 = datetime(2025, 12, 18, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def initiated(pid: str, minutes: float, method: str = "credit_card", **more: Any) -> Document:
    return event("payment.initiated", at=at(minutes), paymentId=pid, paymentMethod=method, **more)


def completed(pid: str, minutes: float, **more: Any) -> Document:
    return event(
        "payment.completed", at=at(minutes), paymentId=pid, transactionId=f"tx_{pid}", **more
    )


def failed(pid: str, minutes: float, code: str = "card_declined", **more: Any) -> Document:
    message = f"{code} on attempt"
    return event(
        "payment.failed",
        at=at(minutes),
        paymentId=pid,
        errorCode=code,
        errorMessage=message,
        **more,
    )


def refunded(pid: str, minutes: float, refund_id: str, amount: str, reason: str) -> Document:
    return event(
        "payment.refunded",
        at=at(minutes),
        paymentId=pid,
        refundId=refund_id,
        refundAmount=Decimal(amount),
        reason=reason,
    )


def counted(database_url: str, documents: Sequence[Document]) -> Engine:
    """A database that has counted `documents`, in one batch."""
    engine = engine_for(database_url)
    stream = inbounds(documents)
    store_for(engine, stream).apply(stream)
    return engine


class TestFailedAttempts:
    def test_a_payment_failing_on_two_cards_then_completing_counts_each_reason_once_and_the_payment_once(
        self, database_url: str
    ) -> None:
        """Two failed attempts (card_declined, insufficient_funds) then a completion: both reasons counted once, two failed attempts, one failed payment that recovered, failure and success rate 100% per payment."""
        engine = counted(
            database_url,
            [
                initiated("pay_1", 0),
                failed("pay_1", 1, "card_declined"),
                failed("pay_1", 2, "insufficient_funds"),
                completed("pay_1", 3),
            ],
        )
        document = report(engine)
        assert document["failure_reasons"] == {"card_declined": 1, "insufficient_funds": 1}
        assert document["failed_attempts"] == 2
        assert document["events"]["payment.failed"] == 2
        assert document["payments_failed"] == 1
        assert document["payments_recovered"] == 1
        assert (document["failure_rate"], document["success_rate"]) == (100.0, 100.0)
        [day] = document["days"]
        assert (day["payments_failed"], day["failed_attempts"]) == (1, 2)

    def test_a_redelivered_failure_with_identical_content_collapses(
        self, database_url: str
    ) -> None:
        """The same failed attempt published again under a new eventId and a restamped failedAt counts once."""
        first = failed("pay_1", 1, "card_declined")
        again = event(first, at=at(1.5))
        engine = counted(database_url, [initiated("pay_1", 0), first, again])
        document = report(engine)
        assert document["failure_reasons"] == {"card_declined": 1}
        assert (document["failed_attempts"], document["payments_failed"]) == (1, 1)

    def test_a_failed_payment_is_placed_on_the_day_of_its_earliest_attempt_whatever_the_arrival_order(
        self, database_url: str
    ) -> None:
        """Attempts straddling midnight that arrive latest first, in two batches, count the failed payment on the earlier day."""
        before_midnight = datetime(2025, 12, 18, 23, 59, tzinfo=UTC)
        late = event(
            "payment.failed",
            at=before_midnight + timedelta(minutes=2),
            paymentId="pay_1",
            errorCode="insufficient_funds",
            errorMessage="second card",
        )
        early = event(
            "payment.failed",
            at=before_midnight,
            paymentId="pay_1",
            errorCode="card_declined",
            errorMessage="first card",
        )
        engine = engine_for(database_url)
        stream = inbounds([late, early])
        store = store_for(engine, stream)
        store.apply(stream[:1])
        store.apply(stream[1:])
        assert report(engine, day="2025-12-18")["payments_failed"] == 1
        assert report(engine, day="2025-12-19")["payments_failed"] == 0

    def test_the_failure_rate_is_per_payment_and_does_not_exceed_the_attempts(
        self, database_url: str
    ) -> None:
        """Of 20 initiated payments one fails on three cards: the failure rate is 5.00% (one payment), not 15%, so high_failure_rate stays quiet."""
        documents = [initiated(f"pay_{i}", i * 0.1) for i in range(20)]
        documents += [completed(f"pay_{i}", 3) for i in range(1, 20)]
        documents += [
            failed("pay_0", 2, code) for code in ("card_declined", "expired_card", "incorrect_cvc")
        ]
        document = report(counted(database_url, documents))
        assert document["failure_rate"] == 5.0
        assert document["failed_attempts"] == 3
        assert "high_failure_rate" not in {a["name"] for a in document["alerts"]}


class TestAbandonment:
    def _engine(self, database_url: str) -> Engine:
        """Latest event at minute 60 (8 days and 1 hour in): payments of each kind before it."""
        return counted(
            database_url,
            [
                initiated("card_abandoned", 0),  # 60 min without outcome: past 15 min
                initiated("card_waiting", 55),  # 5 min: a processing delay, not abandoned
                initiated("bank_waiting", -2 * 24 * 60, "bank_transfer"),  # 2 days: waiting
                initiated("bank_abandoned", -8 * 24 * 60, "bank_transfer", currency="EUR"),
                initiated("card_failed", 0),
                failed("card_failed", 1),  # failed, not abandoned
                initiated("card_done", 58),
                completed("card_done", 60),
            ],
        )

    def test_payments_past_their_methods_threshold_are_counted_abandoned(
        self, database_url: str
    ) -> None:
        """A card payment an hour without outcome and a bank transfer eight days without are abandoned; a bank transfer two days old, a fresh card payment and a failed one are not."""
        document = report(self._engine(database_url))
        assert document["abandoned_payments"] == {
            "count": 2,
            "by_method": {"bank_transfer": 1, "credit_card": 1},
            "amount": {"EUR": "2500.00"},
        }

    def test_abandoned_payments_stay_out_of_the_processing_delay(self, database_url: str) -> None:
        """Only the card payment still inside its abandonment window is pending: the delay is its 5 minutes, not the abandoned payment's hour nor the bank transfer's days."""
        document = report(self._engine(database_url))
        delays = document["processing_delays"]
        assert (delays["pending"], delays["longest_seconds"]) == (1, 300.0)
        [alert] = [a for a in document["alerts"] if a["name"] == "processing_delay"]
        assert alert["value"] == 300.0

    def test_an_abandoned_payment_alone_raises_no_processing_delay(self, database_url: str) -> None:
        """A card payment initiated an hour before the latest event and never finished pages nobody."""
        engine = counted(
            database_url,
            [initiated("gone", 0), initiated("quick", 59), completed("quick", 60)],
        )
        document = report(engine)
        assert document["abandoned_payments"]["count"] == 1
        assert document["processing_delays"]["pending"] == 0
        assert not [a for a in document["alerts"] if a["name"] == "processing_delay"]

    def test_the_thresholds_are_settings_by_method(self, database_url: str) -> None:
        """With credit cards abandoned after 2 hours, the hour-old card payment is pending, not abandoned."""
        rules = AlertRules(
            abandoned_after_ms={**AlertRules().abandoned_after_ms, "credit_card": 7_200_000}
        )
        document = report(self._engine(database_url), rules=rules)
        assert document["abandoned_payments"]["by_method"] == {"bank_transfer": 1}
        assert document["processing_delays"]["pending"] == 2


class TestKeyMetrics:
    def test_initiated_amounts_are_averaged_per_currency(self, database_url: str) -> None:
        """Initiated 100.00, 200.00 and 301.00 EUR average 200.33 EUR, whether or not they complete."""
        documents = [
            initiated("a", 0, amount=Decimal("100.00")),
            initiated("b", 1, amount=Decimal("200.00")),
            initiated("c", 2, amount=Decimal("301.00")),
        ]
        document = report(counted(database_url, documents))
        assert document["initiated_amount"] == {"EUR": "601.00"}
        assert document["average_initiated_amount"] == {"EUR": "200.33"}

    def test_the_initiation_rate_is_per_hour_of_event_time(self, database_url: str) -> None:
        """Five payments initiated over 30 minutes of event time are 10 per hour."""
        documents = [initiated(f"p{i}", i * 7.5) for i in range(5)]
        document = report(counted(database_url, documents))
        assert document["initiation_rate"] == {
            "per_hour": 10.0,
            "payments": 5,
            "over_seconds": 1800.0,
        }

    def test_a_days_initiation_rate_is_over_its_hours(self, database_url: str) -> None:
        """48 payments on a past day are 2 per hour; the day's events are placed by initiatedAt."""
        documents = [initiated(f"p{i}", i * 30 - 600) for i in range(48)]
        documents.append(initiated("tomorrow", 24 * 60))
        document = report(counted(database_url, documents), day="2025-12-18")
        assert document["initiation_rate"]["per_hour"] == 2.0

    def test_refunds_are_compared_with_the_original_payment_and_counted_by_reason(
        self, database_url: str
    ) -> None:
        """A full refund, two partial refunds of one payment and a refund of an unknown payment: one full, one partial, one without original, 75% of the EUR refunded, reasons counted per refund."""
        documents = [
            initiated("full", 0),
            completed("full", 1, amount=Decimal("100.00")),
            initiated("part", 0),
            completed("part", 1, amount=Decimal("300.00")),
            refunded("full", 10, "r1", "100.00", "Customer requested cancellation"),
            refunded("part", 10, "r2", "50.00", "Voyage cancelled"),
            refunded("part", 11, "r3", "150.00", "Customer requested cancellation"),
            refunded("nobody", 12, "r4", "10.00", "Duplicate charge"),
        ]
        document = report(counted(database_url, documents))
        assert document["refund_reasons"] == {
            "Customer requested cancellation": 2,
            "Duplicate charge": 1,
            "Voyage cancelled": 1,
        }
        assert document["refund_vs_original"] == {
            "payments": 3,
            "full": 1,
            "partial": 1,
            "exceeding": 0,
            "without_original": 1,
            "refunded": {"EUR": "300.00"},
            "original": {"EUR": "400.00"},
            "percent": {"EUR": 75.0},
        }


class TestGatewayUnavailable:
    def _window(self, engine: Engine, rules: AlertRules) -> list[str]:
        with snapshot(engine) as session:
            window = read_window(session=session, rules=rules)
        assert window is not None
        return [alert.name for alert in evaluate(window, rules)]

    def test_gateway_errors_dominating_the_last_ten_minutes_raise_the_alert(
        self, database_url: str
    ) -> None:
        """Six processing_error failures and one completion in the last ten minutes raise gateway_unavailable live."""
        documents = [initiated(f"p{i}", 50) for i in range(7)]
        documents += [failed(f"p{i}", 52 + i, "processing_error") for i in range(6)]
        documents.append(completed("p6", 58))
        engine = counted(database_url, documents)
        assert "gateway_unavailable" in self._window(engine, AlertRules())

    def test_gateway_errors_older_than_the_gateway_window_do_not(self, database_url: str) -> None:
        """The same six gateway errors 20 minutes before the latest event are outside the window: no alert."""
        documents = [initiated(f"p{i}", 30) for i in range(7)]
        documents += [failed(f"p{i}", 31 + i, "processing_error") for i in range(6)]
        documents.append(completed("p6", 58))
        engine = counted(database_url, documents)
        assert "gateway_unavailable" not in self._window(engine, AlertRules())

    def test_card_declines_are_the_customers_not_the_gateways(self, database_url: str) -> None:
        """Six card_declined failures in the window are no gateway outage."""
        documents = [initiated(f"p{i}", 50) for i in range(7)]
        documents += [failed(f"p{i}", 52 + i, "card_declined") for i in range(6)]
        documents.append(completed("p6", 58))
        engine = counted(database_url, documents)
        assert "gateway_unavailable" not in self._window(engine, AlertRules())


class TestGauges:
    def test_no_abandoned_payment_is_a_zero_per_known_method_not_an_absent_series(
        self, database_url: str
    ) -> None:
        """With nothing abandoned, every known method's abandoned gauge reads 0, so a panel or rule on it sees a value, not a gap."""
        engine = counted(database_url, [initiated("paid", 0), completed("paid", 1)])
        registry = CollectorRegistry()
        Monitor(engine, AlertRules(), AnalyticsGauges(registry), interval_s=60).refresh()

        for method in ("credit_card", "paypal", "bank_transfer"):
            sample = registry.get_sample_value(
                "dreamscape_analytics_abandoned_payments", {"method": method}
            )
            assert sample == 0, method

    def test_the_new_figures_are_exported(self, database_url: str) -> None:
        """Abandoned payments, initiated amounts, refund reasons, failed payments and the initiation rate of the window are gauges."""
        engine = counted(
            database_url,
            [
                initiated("gone", 1, amount=Decimal("100.00")),
                initiated("paid", 59, amount=Decimal("300.00")),
                failed("paid", 59.5, "card_declined"),
                failed("paid", 59.6, "expired_card"),
                completed("paid", 60, amount=Decimal("300.00")),
                refunded("paid", 60, "r1", "300.00", "Voyage cancelled"),
            ],
        )
        registry = CollectorRegistry()
        Monitor(engine, AlertRules(), AnalyticsGauges(registry), interval_s=60).refresh()

        def value(name: str, **labels: str) -> float | None:
            return registry.get_sample_value("dreamscape_analytics_" + name, labels)

        assert value("abandoned_payments", method="credit_card") == 1
        assert value("abandoned_amount", currency="EUR") == 100.0
        assert value("average_initiated_amount", currency="EUR") == 200.0
        assert value("initiations_per_hour") == 2.0
        assert value("refund_reasons", reason="Voyage cancelled") == 1
        assert value("refunded_payments_by_kind", kind="full") == 1
        assert value("refunded_percent_of_original", currency="EUR") == 100.0
        assert (value("payments_failed"), value("payments_recovered")) == (1, 1)
        assert value("failure_reasons", error_code="expired_card") == 1
        assert value("alert_active", alert="gateway_unavailable") == 0
