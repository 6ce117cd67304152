"""A card payment started and never finished, beside a payment that completes normally."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dreamscape_dev.testing import builders
from tests.scenarios.fleet import Fleet

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
DAY = "2026-03-04"


def test_an_abandoned_card_payment_is_counted_and_does_not_page(services: Fleet) -> None:
    """Initiated 40 minutes before the latest event (a card's threshold is 15), it is abandoned: counted, and no processing-delay alert."""
    left = {
        "paymentId": "pay_abandoned_1",
        "bookingId": "booking_abandoned_1",
        "userId": "usr_abandoned_1",
    }
    paid = {
        "paymentId": "pay_abandoned_2",
        "bookingId": "booking_abandoned_2",
        "userId": "usr_abandoned_2",
    }
    later = START + timedelta(minutes=40)
    services.publish(
        [
            builders.event("payment.initiated", at=START, paymentMethod="credit_card", **left),
            builders.event("payment.initiated", at=later, paymentMethod="credit_card", **paid),
            builders.event("payment.completed", at=later + timedelta(seconds=20), **paid),
        ]
    )

    report = services.report(DAY)
    assert report["abandoned_payments"]["count"] == 1
    assert report["abandoned_payments"]["by_method"] == {"credit_card": 1}
    assert "processing_delay" not in [alert["name"] for alert in report["alerts"]]
    assert services.booking("booking_abandoned_1")["status"] == "payment_pending"
