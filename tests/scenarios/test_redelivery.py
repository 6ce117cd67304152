"""A gateway that redelivers a failure webhook: same content, new eventId, restamped failedAt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dreamscape_dev.testing import builders
from tests.scenarios.fleet import Fleet

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
DAY = "2026-03-03"


def test_a_redelivered_failure_is_emailed_and_counted_once(services: Fleet) -> None:
    """The second delivery of the same failed attempt sends no second email and counts no second reason."""
    ids = {
        "paymentId": "pay_redelivered_1",
        "bookingId": "booking_redelivered_1",
        "userId": "usr_redelivered_1",
    }
    failure = builders.event("payment.failed", at=START + timedelta(seconds=20), **ids)
    redelivered = builders.event(failure, at=START + timedelta(seconds=80))
    services.publish([builders.event("payment.initiated", at=START, **ids), failure, redelivered])

    assert len(services.emails_to("usr_redelivered_1@example.test")) == 1
    assert services.report(DAY)["failure_reasons"] == {"card_declined": 1}
    assert services.booking("booking_redelivered_1")["status"] == "payment_failed"
