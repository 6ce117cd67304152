"""The HTML emails as a person sees them: rendered in headless Chromium, screenshot taken.

Email clients are not browsers, but a layout that hides the amount or throws errors in
Chromium is broken everywhere. Each HTML body is written to a file exactly as it would be
sent and opened from disk, with no network.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from common.confirmation import confirmation_number
from dreamscape_dev.testing.browser import HeadlessChromium
from notification_consumer.domain import Kind, PaymentSummary, Recipient
from notification_consumer.rendering import EmailContext, Renderer
from notification_consumer.samples import sample_event
from tests.notification.support import RETRY_URL

pytestmark = pytest.mark.integration

VISIBLE_AMOUNT: dict[tuple[Kind, str], str] = {
    ("receipt", "en"): "€1,250.00",
    ("payment_failed", "fr"): "1\u202f250,00\xa0€",
    ("refund", "en"): "€500.00",
}


@pytest.mark.parametrize(("kind", "locale"), list(VISIBLE_AMOUNT))
def test_the_html_email_shows_its_amount_without_console_errors(
    chromium: HeadlessChromium, tmp_path: Path, kind: Kind, locale: str
) -> None:
    """The email's HTML opens in Chromium with its amount visible, no console or page errors, and a screenshot is saved."""
    renderer = Renderer(retry_url=RETRY_URL)
    payment = PaymentSummary("credit_card", None, Decimal("1250.00"), "EUR")
    context = EmailContext(kind, Recipient("zoe@example.test", "Zoé", locale), payment)
    email = renderer.render(sample_event(kind), context)
    page = tmp_path / f"{kind}.{locale}.html"
    page.write_text(email.html, encoding="utf-8")

    with chromium.open(page) as rendered:
        assert rendered.visible(VISIBLE_AMOUNT[(kind, locale)])
        shot = tmp_path / f"{kind}.{locale}.png"
        rendered.page.screenshot(path=str(shot), full_page=True)
        assert rendered.errors == []

    assert shot.stat().st_size > 1000


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_the_receipt_shows_its_confirmation_number(
    chromium: HeadlessChromium, tmp_path: Path, locale: str
) -> None:
    """The receipt's HTML shows the booking's confirmation number (the one voyage stores) in Chromium, with no console or page errors (issue 21)."""
    event = sample_event("receipt")
    number = confirmation_number(event.payload.booking_id, event.payload.payment_id)
    context = EmailContext("receipt", Recipient("zoe@example.test", "Zoé", locale))
    page = tmp_path / f"receipt.{locale}.html"
    page.write_text(Renderer(retry_url=RETRY_URL).render(event, context).html, encoding="utf-8")

    with chromium.open(page) as rendered:
        assert rendered.visible(number)
        assert rendered.errors == []
