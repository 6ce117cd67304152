"""Rendering without any service: templates, escaping, locales, overrides, MIME structure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from common.confirmation import confirmation_number
from common.events import PaymentEvent
from dreamscape_dev.testing.builders import payment_event
from notification_consumer.domain import Kind, PaymentSummary, Recipient
from notification_consumer.message import compose
from notification_consumer.rendering import Email, EmailContext, Renderer, one_line
from tests.notification.support import RETRY_URL
from voyage_consumer.domain import derive
from voyage_consumer.facts import to_fact

RECIPIENT = Recipient("zoe@example.test", "Zoé", "en")
FR = Recipient("claire@example.test", "Claire", "fr")


def _render(
    event: PaymentEvent,
    kind: Kind,
    recipient: Recipient = RECIPIENT,
    payment: PaymentSummary | None = None,
    renderer: Renderer | None = None,
) -> Email:
    renderer = renderer or Renderer(retry_url=RETRY_URL)
    return renderer.render(event, EmailContext(kind, recipient, payment))


class TestLocales:
    def test_english_money_and_dates(self) -> None:
        """English readers get `€1,250.00` and an English date in the display time zone."""
        email = _render(payment_event("payment.completed"), "receipt")
        assert email.subject == "Payment receipt: €1,250.00 for booking booking_456def"
        assert "December 18, 2025" in email.text
        assert email.headers["Content-Language"] == "en"

    def test_an_english_time_keeps_a_visible_space_before_am_or_pm(self) -> None:
        """The time reads `10:32:15 AM`: Babel's narrow no-break space before AM is drawn so thin in a mail client's sans-serif that the time read `10:32:15AM`; a plain no-break space keeps the two together and visible."""
        email = _render(payment_event("payment.completed"), "receipt")
        assert "10:32:15\xa0AM" in email.text
        assert "10:32:15\xa0AM" in email.html
        assert "\u202f" not in email.text

    def test_french_money_and_dates_are_babels_own(self) -> None:
        """French readers get `1 250,00 €` with Babel's narrow no-break and no-break spaces."""
        email = _render(payment_event("payment.completed"), "receipt", FR)
        assert "1\u202f250,00\xa0€" in email.subject
        assert "1\u202f250,00\xa0€" in email.html
        assert "18 décembre 2025" in email.text
        assert email.language == "fr"

    def test_a_zero_decimal_currency_has_no_decimals(self) -> None:
        """A yen amount is written without decimals, from the exact Decimal."""
        email = _render(payment_event("payment.completed", amount=12500, currency="JPY"), "receipt")
        assert "¥12,500" in email.text
        assert "¥12,500.00" not in email.text

    def test_an_unknown_locale_falls_back_to_the_default(self) -> None:
        """A contact locale Babel does not know gets the configured default (French here)."""
        renderer = Renderer(retry_url=RETRY_URL, default_locale="fr")
        unknown = Recipient("x@example.test", None, "xx_YY")
        email = _render(payment_event("payment.completed"), "receipt", unknown, renderer=renderer)
        assert email.language == "fr"

    def test_the_display_time_zone_applies(self) -> None:
        """Times are shown in DISPLAY_TIMEZONE (10:32 UTC is 11:32 in Paris in December)."""
        renderer = Renderer(retry_url=RETRY_URL, timezone="Europe/Paris")
        email = _render(payment_event("payment.completed"), "receipt", renderer=renderer)
        assert "11:32:15" in email.text


class TestContent:
    def test_html_escapes_untrusted_text_and_text_keeps_it(self) -> None:
        """The gateway's errorMessage and the refund reason are escaped in HTML and verbatim in text."""
        script = "<script>alert(1)</script>"
        failed = _render(payment_event("payment.failed", errorMessage=script), "payment_failed")
        refund = _render(payment_event("payment.refunded", reason=script), "refund")
        for email in (failed, refund):
            assert "<script" not in email.html
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
            assert script in email.text

    def test_the_retry_link_quotes_the_ids(self) -> None:
        """Ids are URL-quoted into PAYMENT_RETRY_URL, so an odd id cannot change the link's shape."""
        email = _render(
            payment_event("payment.failed", bookingId="b/1?x=2", paymentId="p 1"), "payment_failed"
        )
        link = "https://app.dreamscape.test/bookings/b%2F1%3Fx%3D2/pay?retry=p%201"
        assert link in email.text
        assert f'href="{link}"' in email.html

    def test_emails_are_enriched_with_what_earlier_events_said(self) -> None:
        """A known payment method is named, and a partial refund mentions the original amount."""
        payment = PaymentSummary("paypal", None, Decimal("2000.00"), "EUR")
        email = _render(payment_event("payment.refunded"), "refund", payment=payment)
        assert "of your €2,000.00 payment" in email.text
        assert "to your PayPal" in email.text

    def test_the_message_id_derives_from_the_event_id(self) -> None:
        """Rendering one event twice gives the same Message-ID, which names the eventId and kind."""
        event = payment_event("payment.completed")
        first, second = _render(event, "receipt"), _render(event, "receipt")
        assert first.headers["Message-ID"] == second.headers["Message-ID"]
        assert first.headers["Message-ID"] == f"<{event.event_id}.receipt@notifications.dreamscape>"


class TestConfirmationNumber:
    def test_the_receipt_shows_the_number_voyage_stores(self) -> None:
        """The receipt (text and HTML, English and French) shows the confirmation number voyage derives for the same booking and payment (issue 21)."""
        event = payment_event("payment.completed", bookingId="bk_77", paymentId="pay_77")
        booking = derive("bk_77", [to_fact(event)])
        assert booking is not None
        number = booking.booking.confirmation_number
        assert number is not None
        for recipient in (RECIPIENT, FR):
            email = _render(event, "receipt", recipient)
            assert number in email.text
            assert number in email.html

    def test_the_receipt_names_the_number_in_the_readers_language(self) -> None:
        """English readers see "Confirmation number", French readers "Numéro de confirmation"."""
        event = payment_event("payment.completed")
        number = confirmation_number("booking_456def", "pay_abc123xyz")
        assert f"Confirmation number: {number}" in " ".join(_render(event, "receipt").text.split())
        french = " ".join(_render(event, "receipt", FR).text.split())
        assert f"Numéro de confirmation : {number}" in french

    @pytest.mark.parametrize("kind", ["payment_failed", "refund"])
    def test_only_the_receipt_carries_a_number(self, kind: Kind) -> None:
        """A failure notice (nothing is confirmed) and a refund show no confirmation number."""
        event_type = {"payment_failed": "payment.failed", "refund": "payment.refunded"}[kind]
        email = _render(payment_event(event_type), kind)
        assert "DS-" not in email.text
        assert "DS-" not in email.html


class TestSubjects:
    def test_a_subject_never_carries_a_line_break(self) -> None:
        """CR, LF and Unicode line separators in a subject become spaces; Babel's no-break spaces stay."""
        assert one_line("a\r\nBcc: x\u2028y\n") == "a Bcc: x y"
        assert one_line("1\u202f250,00\xa0€") == "1\u202f250,00\xa0€"

    def test_untrusted_text_in_an_overridden_subject_stays_on_one_line(
        self, tmp_path: Path
    ) -> None:
        """An override putting errorMessage in the subject cannot inject a header."""
        (tmp_path / "payment_failed.subject.txt").write_text("Failed: {{ payload.error_message }}")
        renderer = Renderer(retry_url=RETRY_URL, template_dir=tmp_path)
        event = payment_event("payment.failed", errorMessage="declined\r\nBcc: all@example.test")
        email = _render(event, "payment_failed", renderer=renderer)
        assert email.subject == "Failed: declined Bcc: all@example.test"
        message = compose(email, sender="a@b.test", recipient=RECIPIENT, date=datetime.now(UTC))
        assert message["Bcc"] is None


class TestOverrides:
    def test_an_override_directory_wins_over_the_package(self, tmp_path: Path) -> None:
        """A receipt.txt in NOTIFICATION_TEMPLATE_DIR replaces the shipped one; other files still come from the package."""
        (tmp_path / "receipt.txt").write_text(
            "Custom {{ payload.amount | money(payload.currency) }}"
        )
        renderer = Renderer(retry_url=RETRY_URL, template_dir=tmp_path)
        email = _render(payment_event("payment.completed"), "receipt", renderer=renderer)
        assert email.text == "Custom €1,250.00"
        assert "Payment received" in email.html

    def test_a_language_folder_in_the_override_wins_for_that_language(self, tmp_path: Path) -> None:
        """fr/receipt.subject.txt in the override directory is used for French readers only."""
        (tmp_path / "fr").mkdir()
        (tmp_path / "fr" / "receipt.subject.txt").write_text("Merci !")
        renderer = Renderer(retry_url=RETRY_URL, template_dir=tmp_path)
        event = payment_event("payment.completed")
        assert _render(event, "receipt", FR, renderer=renderer).subject == "Merci !"
        assert _render(event, "receipt", renderer=renderer).subject.startswith("Payment receipt")


class TestMessage:
    def test_a_message_is_multipart_alternative_text_then_html(self) -> None:
        """The composed message has From, To, Subject, Date, the Email's headers and two parts."""
        email = _render(payment_event("payment.completed"), "receipt")
        date = datetime(2025, 12, 18, 10, 33, tzinfo=UTC)
        message = compose(email, sender="DreamScape <n@d.test>", recipient=RECIPIENT, date=date)
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["To"] == "Zoé <zoe@example.test>"
        assert message["Date"] == "Thu, 18 Dec 2025 10:33:00 +0000"
        assert message["Content-Language"] == "en"
        assert message["X-DreamScape-Notification"] == "receipt"


@pytest.mark.parametrize("kind", ["receipt", "payment_failed", "refund"])
def test_every_shipped_email_renders_in_every_shipped_language(kind: Kind) -> None:
    """Each email renders in English and French, with and without a display name and payment."""
    event_type = {"receipt": "completed", "payment_failed": "failed", "refund": "refunded"}[kind]
    event = payment_event(f"payment.{event_type}")
    for recipient in (RECIPIENT, FR, Recipient("x@example.test")):
        email = _render(event, kind, recipient)
        assert email.subject
        assert "booking_456def" in email.text
        assert "<html" in email.html
