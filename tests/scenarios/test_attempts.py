"""A customer whose first two cards fail and whose third succeeds, under one paymentId.

The spec's webhook maps every event of one PaymentIntent to one `paymentId`, so a gateway
produces exactly this: `payment.initiated`, two `payment.failed` with different error codes,
then `payment.completed`. Each failed attempt is a fact of its own (docs/business-keys.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dreamscape_dev.testing import builders
from tests.scenarios.fleet import Fleet, text_of

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = "2026-03-02"


def test_two_failed_attempts_then_a_completion_email_each_failure_once_and_confirm_the_booking(
    services: Fleet,
) -> None:
    """Two failure emails and one receipt carrying voyage's confirmation number; both reasons counted once; the booking confirmed."""
    ids = {
        "paymentId": "pay_attempts_1",
        "bookingId": "booking_attempts_1",
        "userId": "usr_attempts_1",
    }
    declined = builders.event(
        "payment.failed",
        at=START + timedelta(seconds=30),
        errorCode="card_declined",
        errorMessage="Your card was declined.",
        **ids,
    )
    funds = builders.event(
        "payment.failed",
        at=START + timedelta(seconds=70),
        errorCode="insufficient_funds",
        errorMessage="Your card has insufficient funds.",
        **ids,
    )
    # A customer tries the next card after reading that the last one failed: each attempt
    # is handled before the next one happens (a failure read together with the completion
    # is stale and not emailed, docs/notification.md).
    services.publish([builders.event("payment.initiated", at=START, **ids), declined])
    services.publish([funds])
    services.publish([builders.event("payment.completed", at=START + timedelta(seconds=95), **ids)])

    booking = services.booking("booking_attempts_1")
    assert booking["status"] == "confirmed"
    number = booking["confirmation_number"]
    assert number

    emails = services.emails_to("usr_attempts_1@example.test")
    subjects = [str(email["Subject"]) for email in emails]
    assert len(emails) == 3, subjects
    failures = [e for e in emails if "declined" in text_of(e) or "insufficient" in text_of(e)]
    assert len(failures) == 2, subjects
    receipts = [e for e in emails if e not in failures]
    assert number in text_of(receipts[0])

    report = services.report(DAY)
    assert report["failure_reasons"] == {"card_declined": 1, "insufficient_funds": 1}
    assert report["payments_completed"] == 1
