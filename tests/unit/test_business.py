"""Business keys and content fingerprints: what makes two events one fact."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from common.business import business_key, fingerprint
from common.events import PaymentEvent
from common.parsing import parse_event
from dreamscape_dev.testing.builders import event, inbound, spec_example, to_json


def _event(event_type: str, **payload: Any) -> PaymentEvent:
    return inbound(event(event_type, **payload)).event


class TestBusinessKey:
    def test_a_payment_event_is_keyed_by_type_and_payment(self) -> None:
        """initiated, completed and failed: (eventType, paymentId)."""
        completed = _event("payment.completed", paymentId="pay_1")
        assert business_key(completed) == "payment.completed:pay_1"
        assert business_key(_event("payment.initiated", paymentId="pay_1")) != business_key(
            completed
        )

    def test_a_refund_is_keyed_by_its_refund_id(self) -> None:
        """A payment refunded twice states two facts; the same refundId twice, one."""
        assert business_key(_event("payment.refunded", refundId="ref_1")) == "refund:ref_1"


class TestFingerprint:
    def test_a_redelivered_webhook_has_the_same_fingerprint(self) -> None:
        """A new eventId, envelope time and completedAt (what a redelivery restamps) leave the content equal (issue 10, finding 14)."""
        first = _event("payment.completed", completedAt="2025-12-18T10:35:00Z")
        again = _event("payment.completed", completedAt="2025-12-18T10:39:12Z")
        assert first.event_id != again.event_id
        assert fingerprint(first) == fingerprint(again)

    def test_amounts_compare_as_numbers(self) -> None:
        """1250.0 and 1250.00 are one amount."""
        document = spec_example("payment.completed")
        raw = to_json(document)
        a = parse_event(raw.replace("1250.00", "1250.0").encode())
        b = parse_event(raw.encode())
        assert fingerprint(a) == fingerprint(b)

    def test_different_content_under_the_same_key_differs(self) -> None:
        """The same refundId with another amount is another content: an anomaly, not a duplicate."""
        a = _event("payment.refunded", refundId="ref_1", refundAmount=Decimal("10"))
        b = _event("payment.refunded", refundId="ref_1", refundAmount=Decimal("20"))
        assert business_key(a) == business_key(b)
        assert fingerprint(a) != fingerprint(b)
