"""The batch handler as the service wires it, against a real SMTP server and each database.

Batches are handed to the handler directly (the run loop is exercised in `test_service`), so
each test is about one behaviour of the notification logic: what arrives, in what form, and
what is recorded, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections import Counter

import pytest
from structlog.testing import capture_logs

from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.builders import event, inbound
from dreamscape_dev.testing.smtp import SmtpSink
from tests.notification.support import (
    MAIL_FROM,
    Service,
    kinds,
    parts,
    settings,
)

pytestmark = pytest.mark.integration

FR_AMOUNT = "1\u202f250,00\xa0€"  # Babel: narrow no-break space, then no-break space


class TestContent:
    def test_a_receipt_arrives_as_multipart_alternative_with_its_headers(
        self, sqlite_service: Service, smtp_server: SmtpSink
    ) -> None:
        """A completed payment yields one text+HTML receipt addressed to the contact, with a Message-ID derived from the eventId."""
        initiated = event("payment.initiated")
        completed = event("payment.completed")
        sqlite_service.handle([initiated])
        sqlite_service.handle([completed])

        [received] = smtp_server.wait_for(1)
        message = received.message
        assert received.rcpt_tos == ("zoe@example.test",)
        assert received.mail_from == "no-reply@dreamscape.test"
        assert message["From"] == MAIL_FROM
        assert message["To"] == "Zoé Martin <zoe@example.test>"
        assert message["Subject"] == "Payment receipt: €1,250.00 for booking booking_456def"
        assert (
            message["Message-ID"].strip()
            == f"<{completed['eventId']}.receipt@notifications.dreamscape>"
        )
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Date"] is not None
        assert message.get_content_type() == "multipart/alternative"
        subtypes = [part.get_content_type() for part in message.iter_parts()]
        assert subtypes == ["text/plain", "text/html"]
        text, html = parts(received)
        for body in (text, html):
            assert "€1,250.00" in body
            assert "Zoé Martin" in body
            assert "credit card" in body  # from the initiated event, kept in notification_payment
            assert "stripe_ch_3NqY7L2eZvKYlo2C0XYZ1234" in body
        assert "December 18, 2025" in text

    def test_french_recipients_get_french_text_money_and_dates(
        self, sqlite_service: Service, smtp_server: SmtpSink
    ) -> None:
        """A contact with locale fr gets the French receipt with Babel's French money and date formats."""
        sqlite_service.add_contact("usr_fr", "claire@example.test", "Claire", "fr_FR")
        sqlite_service.handle([event("payment.completed", userId="usr_fr")])

        [received] = smtp_server.wait_for(1)
        text, html = parts(received)
        assert received.message["Subject"] == (
            f"Reçu de paiement : {FR_AMOUNT} pour la réservation booking_456def"
        )
        assert received.message["Content-Language"] == "fr-FR"
        for body in (text, html):
            assert f"paiement de {FR_AMOUNT}" in body.replace("<strong>", "").replace(
                "</strong>", ""
            )
            assert "18 décembre 2025" in body

    def test_untrusted_text_arrives_inert_in_the_html(
        self, sqlite_service: Service, smtp_server: SmtpSink
    ) -> None:
        """A gateway errorMessage carrying a script tag is escaped in the HTML part and kept verbatim in the text part."""
        payload = "<script>alert(1)</script>"
        sqlite_service.handle([event("payment.failed", errorMessage=payload)])

        [received] = smtp_server.wait_for(1)
        text, html = parts(received)
        assert "<script" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert payload in text
        retry = "https://app.dreamscape.test/bookings/booking_456def/pay?retry=pay_abc123xyz"
        assert retry in text
        assert f'href="{retry}"' in html


class TestWhatIsNotSent:
    def test_a_failure_for_a_paid_booking_is_stale_and_logged(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A failure arriving after its booking's completion sends nothing and logs notification.stale."""
        service.handle([event("payment.completed")])
        late_failure = event("payment.failed", paymentId="pay_other")
        with capture_logs() as logs:
            service.handle([late_failure])

        assert kinds(smtp_server.wait_for(1)) == ["receipt"]
        stale = [line for line in logs if line["event"] == "notification.stale"]
        assert len(stale) == 1
        assert stale[0]["event_id"] == late_failure["eventId"]
        assert stale[0]["booking_id"] == "booking_456def"
        assert service.count("payment_failed", "stale") == 1

    def test_a_failure_and_the_completion_in_one_batch_send_only_the_receipt(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A consumer catching up sees the completion in the same batch as the earlier failure, so only the receipt goes out."""
        failed = event("payment.failed", paymentId="pay_first")
        completed = event("payment.completed", paymentId="pay_second")
        service.handle([failed, completed])
        assert kinds(smtp_server.wait_for(1)) == ["receipt"]

    def test_an_unknown_user_without_a_template_is_undeliverable(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """No contact row and no RECIPIENT_EMAIL_TEMPLATE: nothing is sent, the outcome is recorded undeliverable, logged and counted."""
        refunded = event("payment.refunded", userId="usr_nobody")
        with capture_logs() as logs:
            service.handle([refunded])

        assert smtp_server.messages == []
        outcome = service.outcome(refunded["eventId"], "refund")
        assert outcome is not None
        assert outcome.status == "undeliverable"
        assert service.count("refund", "undeliverable") == 1
        assert [line["event"] for line in logs] == ["notification.undeliverable"]

    def test_an_initiated_event_sends_nothing(
        self, sqlite_service: Service, smtp_server: SmtpSink
    ) -> None:
        """payment.initiated is remembered, not mailed."""
        sqlite_service.handle([event("payment.initiated")])
        assert smtp_server.messages == []


def test_the_address_template_reaches_users_without_a_contact_row(
    smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """With RECIPIENT_EMAIL_TEMPLATE set, a user with no contact row is written to at the templated address."""
    service = Service(
        settings(smtp_server, sqlite_url, recipient_email_template="{user_id}@example.test")
    )
    service.handle([event("payment.refunded", userId="usr_42")])
    [received] = smtp_server.wait_for(1)
    assert received.rcpt_tos == ("usr_42@example.test",)
    assert received.message["To"] == "usr_42@example.test"


def test_a_simulated_history_in_one_batch_sends_exactly_the_expected_emails(
    smtp_server: SmtpSink, database_url: str
) -> None:
    """A simulated history with duplicates and reordering, handled as one batch, sends the simulator's expected emails per kind, each Message-ID once."""
    simulation = generate(
        SimulationConfig(flows=40, seed=11, duplicate_rate=0.05, reorder_rate=0.2)
    )
    service = Service(
        settings(smtp_server, database_url, recipient_email_template="{user_id}@example.test")
    )
    batch = [inbound(record) for record in simulation.records]
    assert service.spec.handle(batch) in (None, {})

    expected = simulation.expected.emails_by_kind
    received = smtp_server.wait_for(sum(expected.values()))
    assert Counter(kinds(received)) == Counter(expected)
    ids = [m.message["Message-ID"].strip() for m in received]
    assert len(set(ids)) == len(ids)
