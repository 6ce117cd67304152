"""The spec's four example events, byte for byte as printed, parse into typed events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from common.events import PaymentCompleted, PaymentFailed, PaymentInitiated, PaymentRefunded
from common.parsing import parse_event
from dreamscape_dev.testing.builders import SPEC_EXAMPLES


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("payment_initiated", PaymentInitiated),
        ("payment_completed", PaymentCompleted),
        ("payment_failed", PaymentFailed),
        ("payment_refunded", PaymentRefunded),
    ],
)
def test_example_parses_on_its_topic(name: str, model: type) -> None:
    """Each printed example is accepted on its own topic as the matching model."""
    raw = (SPEC_EXAMPLES / f"{name}.json").read_bytes()
    event = parse_event(raw, "dreamscape." + name.replace("_", "."))
    assert isinstance(event, model)
    assert event.payload.payment_id == "pay_abc123xyz"
    assert event.payload.booking_id == "booking_456def"


def test_amounts_keep_their_exact_decimal_text() -> None:
    """`1250.00` on the wire becomes Decimal('1250.00'), not a float and not Decimal('1250')."""
    event = parse_event((SPEC_EXAMPLES / "payment_refunded.json").read_bytes())
    assert isinstance(event, PaymentRefunded)
    assert str(event.payload.refund_amount) == "1250.00"
    assert isinstance(event.payload.refund_amount, Decimal)


def test_timestamps_are_aware_utc() -> None:
    """`...Z` timestamps become timezone-aware UTC datetimes."""
    event = parse_event((SPEC_EXAMPLES / "payment_completed.json").read_bytes())
    assert event.timestamp == datetime(2025, 12, 18, 10, 32, 15, tzinfo=UTC)
    assert event.timestamp.tzinfo is UTC


def test_failed_example_keeps_optional_envelope_fields() -> None:
    """correlationId and causationId are read from the wire's camelCase names."""
    event = parse_event((SPEC_EXAMPLES / "payment_failed.json").read_bytes())
    assert isinstance(event, PaymentFailed)
    assert event.correlation_id == "booking-123-payment-flow"
    assert event.causation_id == "a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d"
    assert event.payload.error_code == "card_declined"


def test_topic_constants_are_the_names_topics_builds() -> None:
    """The exported topic-name constants are exactly the spec's names that `Topics` builds."""
    from common import topics

    assert topics.DEFAULT_TOPICS.payment_topics == (
        topics.TOPIC_PAYMENT_INITIATED,
        topics.TOPIC_PAYMENT_COMPLETED,
        topics.TOPIC_PAYMENT_FAILED,
        topics.TOPIC_PAYMENT_REFUNDED,
    )
