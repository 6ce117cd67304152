"""`notification-consumer preview EVENT.json [--locale fr] --out DIR`, for template authors.

Renders the email an event would produce, exactly as the service would (same templates,
overrides from NOTIFICATION_TEMPLATE_DIR, same MIME structure), and writes
`<kind>.eml`, `<kind>.html` and `<kind>.txt` to DIR. It needs no broker, database or SMTP
server; without a database there is no earlier payment to enrich the email with, unless
`--payment-method` says which one to show. Settings come from the environment as for the
service, with stand-ins for the two required ones (MAIL_FROM, PAYMENT_RETRY_URL).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from common.errors import InvalidEvent
from common.parsing import parse_event
from common.settings import ConfigurationError, load_settings
from notification_consumer.domain import PaymentSummary, Recipient, kind_of
from notification_consumer.message import compose
from notification_consumer.rendering import EmailContext
from notification_consumer.service import renderer_for
from notification_consumer.settings import NotificationSettings


class PreviewSettings(NotificationSettings):
    """The service's settings, with stand-ins where the service insists on a value."""

    mail_from: str = "DreamScape <no-reply@dreamscape.example>"
    payment_retry_url: str = (
        "https://dreamscape.example/bookings/{booking_id}/pay?retry={payment_id}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", type=Path, help="a payment event as JSON (the wire format)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--locale", help="the recipient's locale (default: DEFAULT_LOCALE)")
    parser.add_argument("--display-name", help="the recipient's name, for the greeting")
    parser.add_argument("--payment-method", help="show this as the payment's method")


def preview(args: argparse.Namespace) -> int:
    """Write the preview files; returns the exit code (2 for a bad event or configuration)."""
    try:
        settings = load_settings(PreviewSettings)
        event = parse_event(args.event.read_bytes())
    except (ConfigurationError, InvalidEvent, OSError) as exc:
        print(f"preview: {exc}", file=sys.stderr)
        return 2
    kind = kind_of(event)
    if kind is None:
        print(f"preview: {event.event_type} sends no email", file=sys.stderr)
        return 0
    template = settings.recipient_email_template or "{user_id}@example.test"
    recipient = Recipient(
        template.format(user_id=event.payload.user_id), args.display_name, args.locale
    )
    payment = PaymentSummary(payment_method=args.payment_method) if args.payment_method else None
    email = renderer_for(settings).render(event, EmailContext(kind, recipient, payment))
    message = compose(email, sender=settings.mail_from, recipient=recipient, date=datetime.now(UTC))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{kind}.eml").write_bytes(bytes(message))
    (args.out / f"{kind}.html").write_text(email.html, encoding="utf-8")
    (args.out / f"{kind}.txt").write_text(email.text, encoding="utf-8")
    print(f"{kind} ({email.language}): {email.subject}")
    for suffix in ("eml", "html", "txt"):
        print(f"  {args.out / f'{kind}.{suffix}'}")
    return 0
