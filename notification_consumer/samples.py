"""Sample events (the spec's examples) to check templates with, at start-up and in tests.

A team's template override that references an unknown variable or has a syntax error
should stop the service at start-up (exit code 2), not dead-letter every email later; the
start-up check renders each email with these events in every language it can find.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import msgspec

from common.events import MODEL_BY_EVENT_TYPE, PaymentEvent, decode_hook
from common.settings import ConfigurationError
from notification_consumer.domain import KINDS, Kind, PaymentSummary, Recipient
from notification_consumer.rendering import EmailContext, Renderer, shipped_languages

_ENVELOPE: Final = {
    "timestamp": "2025-12-18T10:30:00.000Z",
    "version": "1.0",
    "source": "payment-service",
}
_IDS: Final = {
    "paymentId": "pay_abc123xyz",
    "bookingId": "booking_456def",
    "userId": "usr_123456789",
}

SAMPLE_DOCUMENTS: Final[dict[Kind, dict[str, Any]]] = {
    "receipt": {
        **_ENVELOPE,
        "eventId": "b2c3d4e5-f6a7-4b5c-9d8e-0f1a2b3c4d5e",
        "eventType": "payment.completed",
        "payload": {
            **_IDS,
            "amount": Decimal("1250.00"),
            "currency": "EUR",
            "transactionId": "stripe_ch_3NqY7L2eZvKYlo2C0XYZ1234",
            "completedAt": "2025-12-18T10:32:15.000Z",
        },
    },
    "payment_failed": {
        **_ENVELOPE,
        "eventId": "c3d4e5f6-a7b8-4c5d-0e9f-1a2b3c4d5e6f",
        "eventType": "payment.failed",
        "payload": {
            **_IDS,
            "amount": Decimal("1250.00"),
            "currency": "EUR",
            "errorCode": "card_declined",
            "errorMessage": "Your card was declined. Please try another payment method.",
            "failedAt": "2025-12-18T10:31:45.000Z",
        },
    },
    "refund": {
        **_ENVELOPE,
        "eventId": "d4e5f6a7-b8c9-4d5e-1f0a-2b3c4d5e6f7a",
        "eventType": "payment.refunded",
        "payload": {
            **_IDS,
            "refundAmount": Decimal("500.00"),
            "currency": "EUR",
            "refundId": "refund_xyz789abc",
            "reason": "Customer requested cancellation",
            "refundedAt": "2025-12-20T14:15:00.000Z",
        },
    },
}


def sample_event(kind: Kind) -> PaymentEvent:
    document = SAMPLE_DOCUMENTS[kind]
    model = MODEL_BY_EVENT_TYPE[document["eventType"]]
    return msgspec.convert(document, model, dec_hook=decode_hook)


SAMPLE_PAYMENT: Final = PaymentSummary(
    payment_method="credit_card", amount=Decimal("1250.00"), currency="EUR"
)


def check_templates(renderer: Renderer, languages: Iterable[str]) -> None:
    """Render every email in every language, with and without optional context.

    Raises `ConfigurationError` naming the language and the template error.
    """
    for language in sorted(set(languages)):
        for kind in KINDS:
            for name, payment in (("Zoé", SAMPLE_PAYMENT), (None, None)):
                context = EmailContext(kind, Recipient("a@example.test", name, language), payment)
                try:
                    renderer.render(sample_event(kind), context)
                except Exception as exc:  # a broken override can fail in any way
                    raise ConfigurationError(
                        f"the {kind} email does not render in {language!r}: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None


def languages_to_check(default_locale: str, template_dir: Path | None) -> set[str]:
    """The default locale's language, shipped translations, and an override's language folders."""
    languages = {default_locale.split("_")[0], *shipped_languages()}
    if template_dir is not None:
        languages.update(p.name for p in template_dir.iterdir() if p.is_dir() and len(p.name) <= 3)
    return languages
