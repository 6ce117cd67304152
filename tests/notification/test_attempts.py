"""Several attempts under one paymentId (issue 21): one failure notice per failed attempt.

A customer whose card is declined and who tries another card fails again under the same
paymentId with another errorCode; each failed attempt is its own fact (`common.business`),
a redelivered webhook is not, and a failure known after the booking is paid stays stale.
Through the handler as the service wires it, against a real SMTP server and each database.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.business import BusinessFact, fingerprint, legacy_key
from common.confirmation import confirmation_number
from common.db import transaction
from common.topics import GROUP_NOTIFICATION
from dreamscape_dev.testing.builders import Document, event, inbound
from dreamscape_dev.testing.smtp import SmtpSink
from tests.notification.support import Service, kinds, parts

pytestmark = pytest.mark.integration

DECLINED = {"errorCode": "card_declined", "errorMessage": "Your card was declined."}
NO_FUNDS = {"errorCode": "insufficient_funds", "errorMessage": "Insufficient funds."}


def failure(attempt: dict[str, str], **payload: object) -> Document:
    """A failure of payment `pay_1` with this attempt's error."""
    return event("payment.failed", paymentId="pay_1", **attempt, **payload)


def texts(smtp: SmtpSink, count: int) -> list[str]:
    """The text bodies of the first `count` messages received."""
    return [parts(m)[0] for m in smtp.wait_for(count)]


class TestOneNoticePerAttempt:
    def test_two_failed_attempts_under_one_payment_send_two_notices(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A second card failing under the same paymentId with another error gets its own failure notice, naming its own reason."""
        service.handle([failure(DECLINED)])
        service.handle([failure(NO_FUNDS)])

        received = texts(smtp_server, 2)
        assert kinds(smtp_server.messages) == ["payment_failed", "payment_failed"]
        assert "Your card was declined." in received[0]
        assert "Insufficient funds." in received[1]
        assert service.count("payment_failed", "sent") == 2

    def test_two_attempts_in_one_batch_send_two_notices(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """Two failed attempts of one payment read in the same batch are both notified."""
        service.handle([failure(DECLINED), failure(NO_FUNDS)])
        assert kinds(smtp_server.wait_for(2)) == ["payment_failed", "payment_failed"]

    def test_a_redelivered_failure_is_collapsed(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """The same failure under a new eventId with a restamped failedAt (a redelivered webhook) sends nothing more and counts a duplicate."""
        first = failure(DECLINED)
        again = event(first, failedAt="2025-12-18T10:39:00.000Z")
        service.handle([first])
        service.handle([again])

        assert len(smtp_server.wait_for(1)) == 1
        assert service.outcome(again["eventId"], "payment_failed") is None
        assert service.count("payment_failed", "duplicate") == 1

    def test_two_failures_then_the_completion_send_two_notices_and_a_receipt(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """Declined, declined again with another card, then paid, all under one paymentId: two failure notices and one receipt with the booking's confirmation number."""
        service.handle([failure(DECLINED)])
        service.handle([failure(NO_FUNDS)])
        service.handle([event("payment.completed", paymentId="pay_1")])

        received = smtp_server.wait_for(3)
        assert kinds(received) == ["payment_failed", "payment_failed", "receipt"]
        number = confirmation_number("booking_456def", "pay_1")
        assert f"Confirmation number: {number}" in parts(received[2])[0]


class TestStaleAttempts:
    def test_a_failed_attempt_known_after_the_completion_is_stale(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A failure of the payment arriving after its completion (reordered) is not emailed."""
        service.handle([failure(DECLINED)])
        service.handle([event("payment.completed", paymentId="pay_1")])
        service.handle([failure(NO_FUNDS)])

        assert kinds(smtp_server.wait_for(2)) == ["payment_failed", "receipt"]
        assert service.count("payment_failed", "stale") == 1

    def test_failures_read_with_the_completion_in_one_batch_are_stale(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A consumer catching up on two failures and the completion of one payment sends only the receipt."""
        completed = event("payment.completed", paymentId="pay_1")
        service.handle([failure(DECLINED), failure(NO_FUNDS), completed])

        assert kinds(smtp_server.wait_for(1)) == ["receipt"]
        assert service.count("payment_failed", "stale") == 2


class TestUpgrade:
    def test_a_failure_claimed_under_the_legacy_key_stays_a_duplicate(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A failure claimed before issue 21 (key `payment.failed:<paymentId>`) and redelivered after it is a duplicate; another attempt is notified."""
        service.handle([event("payment.initiated", paymentId="pay_1")])  # creates the tables
        before = failure(DECLINED)
        parsed = inbound(before).event
        old_key = legacy_key(parsed)
        assert old_key is not None
        with transaction(service.engine) as session:
            session.add(
                BusinessFact(
                    consumer=GROUP_NOTIFICATION,
                    key=old_key,
                    fingerprint=fingerprint(parsed),
                    event_id=before["eventId"],
                    first_seen=datetime(2025, 12, 18, 10, 32, tzinfo=UTC),
                )
            )

        service.handle([event(before, failedAt="2025-12-18T10:40:00.000Z")])
        service.handle([failure(NO_FUNDS)])

        [notice] = smtp_server.wait_for(1)
        assert "Insufficient funds." in parts(notice)[0]
        assert service.count("payment_failed", "duplicate") == 1
