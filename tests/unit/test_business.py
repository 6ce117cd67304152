"""Business keys and content fingerprints: what makes two events one fact."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.business import business_key, fingerprint, legacy_key
from common.parsing import parse_event
from dreamscape_dev.testing.builders import payment_event, spec_bytes, spec_example, to_json


class TestBusinessKey:
    def test_a_payment_event_is_keyed_by_type_and_payment(self) -> None:
        """initiated and completed: (eventType, paymentId)."""
        completed = payment_event("payment.completed", paymentId="pay_1")
        assert business_key(completed) == "payment.completed:pay_1"
        assert business_key(payment_event("payment.initiated", paymentId="pay_1")) != business_key(
            completed
        )

    def test_a_refund_is_keyed_by_its_refund_id(self) -> None:
        """A payment refunded twice states two facts; the same refundId twice, one."""
        assert business_key(payment_event("payment.refunded", refundId="ref_1")) == "refund:ref_1"

    def test_a_failure_is_keyed_by_its_attempt(self) -> None:
        """A failure's key is its paymentId and a digest of errorCode and errorMessage (issue 21)."""
        failed = payment_event(
            "payment.failed", paymentId="pay_1", errorCode="card_declined", errorMessage="No."
        )
        attempt = hashlib.sha256(b"card_declined\x1fNo.").hexdigest()[:16]
        assert business_key(failed) == f"payment.failed:pay_1:{attempt}"
        assert legacy_key(failed) == "payment.failed:pay_1"

    def test_a_second_card_failing_under_the_same_payment_is_another_fact(self) -> None:
        """Another errorCode, or the same code with another errorMessage, under one paymentId is another attempt."""
        first = payment_event("payment.failed", paymentId="pay_1", errorCode="card_declined")
        other_code = payment_event(
            "payment.failed", paymentId="pay_1", errorCode="insufficient_funds"
        )
        other_text = payment_event(
            "payment.failed", paymentId="pay_1", errorMessage="Expired card."
        )
        keys = {business_key(e) for e in (first, other_code, other_text)}
        assert len(keys) == 3

    def test_the_code_and_message_cannot_be_confused_by_moving_text_between_them(self) -> None:
        """`a` + `b_c` and `a_b` + `c` are two attempts: the two fields are hashed with a separator."""
        a = payment_event("payment.failed", paymentId="pay_1", errorCode="a", errorMessage="b_c")
        b = payment_event("payment.failed", paymentId="pay_1", errorCode="a_b", errorMessage="c")
        assert business_key(a) != business_key(b)

    def test_a_redelivered_failure_keeps_its_key_and_fingerprint(self) -> None:
        """A new eventId and a restamped failedAt (a redelivered webhook) leave key and content equal: a duplicate."""
        first = payment_event("payment.failed", failedAt="2025-12-18T10:31:45Z")
        again = payment_event("payment.failed", failedAt="2025-12-18T10:36:02Z")
        assert first.event_id != again.event_id
        assert business_key(first) == business_key(again)
        assert fingerprint(first) == fingerprint(again)

    def test_two_attempts_failing_alike_are_one_fact(self) -> None:
        """The documented limit: the same card declined twice, with the same code and message, cannot be told from a redelivery."""
        first = payment_event("payment.failed", failedAt="2025-12-18T10:31:45Z")
        second = payment_event("payment.failed", failedAt="2025-12-18T10:45:00Z")
        assert (business_key(first), fingerprint(first)) == (
            business_key(second),
            fingerprint(second),
        )

    def test_keys_fit_the_column_whatever_the_identifiers(self) -> None:
        """With every identifier at its 256-character maximum and a long message, a key fits `business_fact.key` (300)."""
        long = "p" * 256
        events = [
            payment_event(
                "payment.failed", paymentId=long, errorCode="c" * 256, errorMessage="m" * 5000
            ),
            payment_event("payment.completed", paymentId=long),
            payment_event("payment.initiated", paymentId=long),
            payment_event("payment.refunded", paymentId=long, refundId="r" * 256),
        ]
        assert max(len(business_key(e)) for e in events) <= 300


class TestFingerprint:
    def test_a_redelivered_webhook_has_the_same_fingerprint(self) -> None:
        """A new eventId, envelope time and completedAt (what a redelivery restamps) leave the content equal (issue 10, finding 14)."""
        first = payment_event("payment.completed", completedAt="2025-12-18T10:35:00Z")
        again = payment_event("payment.completed", completedAt="2025-12-18T10:39:12Z")
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
        a = payment_event("payment.refunded", refundId="ref_1", refundAmount=Decimal("10"))
        b = payment_event("payment.refunded", refundId="ref_1", refundAmount=Decimal("20"))
        assert business_key(a) == business_key(b)
        assert fingerprint(a) != fingerprint(b)


class TestStableFingerprints:
    """Fingerprints are stored (`business_fact`): a redelivery after an upgrade must match."""

    @pytest.mark.parametrize(
        ("event_type", "digest"),
        [
            (
                "payment.initiated",
                "47877fcda0413d23eb36aacc4ba4fa99df40dcdf15211383f8e8baa75facdb5d",
            ),
            (
                "payment.completed",
                "e857e8304f7b0c427bdbce78efa712c9b3af9d66f600943bb4fb61e20fab1fa7",
            ),
            ("payment.failed", "51e6f317d0dc42a720d2b50e7a722e6fcc9fac053ff63a2bb624e9611b1adaba"),
            (
                "payment.refunded",
                "fc92e271ff86d8dda1b8297297769931dc8c609c504b4c26dee1b4f39ec47f50",
            ),
        ],
    )
    def test_the_spec_examples_keep_the_fingerprints_earlier_releases_stored(
        self, event_type: str, digest: str
    ) -> None:
        """The digests computed before the parser moved to msgspec (commit 4449694) are computed still."""
        assert fingerprint(parse_event(spec_bytes(event_type))) == digest

    def test_non_ascii_text_keeps_its_fingerprint(self) -> None:
        """Non-ASCII content is hashed as `\\u` escapes, as before (ensure_ascii)."""
        refund = payment_event("payment.refunded", reason="Annulé à la demande du client")
        assert fingerprint(refund) == (
            "e749f6d67febbf15048bd6a9cfd2f8bf8ab2ee2bf76b61db3528b32f7ebf18b9"
        )

    @settings(max_examples=200, deadline=None)
    @given(text=st.text(max_size=40))
    def test_any_text_hashes_as_json_dumps_wrote_it(self, text: str) -> None:
        """The hashed text is what `json.dumps(sort_keys, compact)` writes, for any reason text."""
        refund = payment_event("payment.refunded", reason=text or "x")
        payload = refund.payload
        content = {
            name: format(value.normalize(), "f") if isinstance(value, Decimal) else value
            for name in payload.__struct_fields__
            if name != "refunded_at" and (value := getattr(payload, name)) is not None
        }
        text_hashed = json.dumps(content, sort_keys=True, separators=(",", ":"))
        assert fingerprint(refund) == hashlib.sha256(text_hashed.encode()).hexdigest()
