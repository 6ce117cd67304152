"""`parse_event`: from raw record bytes to a typed payment event, or one `InvalidEvent`.

Most cases are mutations of the spec's four printed examples: one field deleted, retyped or
given a bad value, and the rejection's `reason` and `field` (the wire path) checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, get_args

import pytest

from common.errors import InvalidEvent, RejectionReason
from common.events import (
    PaymentCompleted,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
)
from common.parsing import parse_event
from common.topics import EVENT_TYPES, Topics
from dreamscape_dev.testing.builders import spec_bytes, spec_example, to_json

INITIATED, COMPLETED, FAILED, REFUNDED = EVENT_TYPES
MODELS: Final[dict[str, type[PaymentEvent]]] = {
    INITIATED: PaymentInitiated,
    COMPLETED: PaymentCompleted,
    FAILED: PaymentFailed,
    REFUNDED: PaymentRefunded,
}
ENVELOPE_REQUIRED: Final = ("eventId", "eventType", "timestamp", "version", "source", "payload")
PAYLOAD_REQUIRED: Final = {
    INITIATED: (
        "paymentId",
        "bookingId",
        "userId",
        "amount",
        "currency",
        "paymentMethod",
        "initiatedAt",
    ),
    COMPLETED: (
        "paymentId",
        "bookingId",
        "userId",
        "amount",
        "currency",
        "transactionId",
        "completedAt",
    ),
    FAILED: (
        "paymentId",
        "bookingId",
        "userId",
        "amount",
        "currency",
        "errorCode",
        "errorMessage",
        "failedAt",
    ),
    REFUNDED: (
        "paymentId",
        "bookingId",
        "userId",
        "refundAmount",
        "currency",
        "refundId",
        "reason",
        "refundedAt",
    ),
}
DELETE: Final = object()
"""Sentinel for `mutated`: remove the field instead of replacing its value."""


def mutated(event_type: str, path: str, value: object = DELETE) -> bytes:
    """The example of `event_type` with the field at dotted wire `path` set to `value` (or deleted)."""
    document = spec_example(event_type)
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return to_json(document).encode()


def with_amount(event_type: str, field: str, currency: str, text: str) -> bytes:
    """The example of `event_type` in `currency`, with the payload's `field` the number `text`."""
    document = spec_example(event_type)
    document["payload"]["currency"] = currency
    document["payload"][field] = "__AMOUNT__"
    return to_json(document).replace('"__AMOUNT__"', text).encode()


def topic_of(event_type: str) -> str:
    """The spec's (unprefixed) topic carrying `event_type`."""
    return Topics().for_event(event_type)


def rejection(value: bytes | None, topic: str | None = None, **kwargs: Any) -> InvalidEvent:
    """The `InvalidEvent` that parsing `value` raises (the test fails if it parses)."""
    with pytest.raises(InvalidEvent) as caught:
        parse_event(value, topic, **kwargs)
    return caught.value


class TestEmptyValue:
    """Kafka null values and tombstones."""

    @pytest.mark.parametrize("value", [None, b""], ids=["null", "empty"])
    def test_no_value_is_empty_value(self, value: bytes | None) -> None:
        """A null record value or an empty byte string is rejected as `empty_value`."""
        error = rejection(value, topic_of(INITIATED))
        assert error.reason == "empty_value"
        assert error.field is None


class TestNotJson:
    """Bytes that are not a JSON document."""

    @pytest.mark.parametrize(
        "value", [b"\xff", b"{", b"{'eventId': 1}", b"\x00", b"\xef\xbb\xbf{}", b"1 2"]
    )
    def test_undecodable_bytes_are_not_json(self, value: bytes) -> None:
        """Invalid UTF-8, truncated or non-JSON text is rejected as `not_json`."""
        error = rejection(value)
        assert error.reason == "not_json"
        assert error.field is None

    def test_detail_says_where_decoding_failed(self) -> None:
        """The rejection's detail keeps the decoder's position for the dead-letter record."""
        error = rejection(b"{")
        assert "line 1" in error.detail
        assert str(error).startswith("not_json: ")

    def test_huge_nesting_is_not_json(self) -> None:
        """Pathologically deep nesting is rejected as `not_json` rather than crashing."""
        assert rejection(b"[" * 100_000 + b"]" * 100_000).reason == "not_json"


class TestNotAnObject:
    """JSON documents whose top level is not an object."""

    @pytest.mark.parametrize("value", [b"[1]", b'"x"', b"3", b"null", b"true", b"1.5"])
    def test_non_object_document_is_not_an_object(self, value: bytes) -> None:
        """Arrays, strings, numbers, booleans and JSON null at top level are `not_an_object`."""
        assert rejection(value).reason == "not_an_object"


class TestMissingField:
    """Fields absent at top level or in the payload."""

    @pytest.mark.parametrize("field", ENVELOPE_REQUIRED)
    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_missing_envelope_field(self, event_type: str, field: str) -> None:
        """Deleting a required envelope field gives `missing_field` naming that field."""
        error = rejection(mutated(event_type, field), topic_of(event_type))
        assert (error.reason, error.field) == ("missing_field", field)

    @pytest.mark.parametrize(
        ("event_type", "field"),
        [(event_type, f) for event_type, fields in PAYLOAD_REQUIRED.items() for f in fields],
    )
    def test_missing_payload_field(self, event_type: str, field: str) -> None:
        """Deleting a required payload field gives `missing_field` with its `payload.` path."""
        error = rejection(mutated(event_type, f"payload.{field}"), topic_of(event_type))
        assert (error.reason, error.field) == ("missing_field", f"payload.{field}")

    @pytest.mark.parametrize(
        ("field", "attribute"),
        [
            ("correlationId", "correlation_id"),
            ("causationId", "causation_id"),
            ("metadata", "metadata"),
        ],
    )
    def test_optional_envelope_fields_may_be_absent(self, field: str, attribute: str) -> None:
        """correlationId, causationId and metadata are optional and default to None."""
        document = spec_example(FAILED)
        document.pop(field, None)
        event = parse_event(to_json(document).encode(), topic_of(FAILED))
        assert getattr(event, attribute) is None


class TestWrongType:
    """Fields present with the wrong JSON type."""

    @pytest.mark.parametrize(
        ("event_type", "path", "value"),
        [
            (INITIATED, "payload.amount", "1250.00"),
            (INITIATED, "payload.amount", True),
            (INITIATED, "payload.amount", None),
            (INITIATED, "payload.amount", [1250]),
            (REFUNDED, "payload.refundAmount", "1250.00"),
            (INITIATED, "payload.paymentId", 123),
            (COMPLETED, "payload.transactionId", None),
            (FAILED, "payload.errorMessage", False),
            (INITIATED, "payload.currency", 978),
            (INITIATED, "payload.initiatedAt", 1734517800),
            (INITIATED, "timestamp", 1734517800),
            (INITIATED, "timestamp", Decimal("1734517800.5")),
            (INITIATED, "payload", [1]),
            (INITIATED, "payload", "{}"),
            (INITIATED, "eventType", 3),
            (INITIATED, "version", Decimal("1.0")),
            (INITIATED, "eventId", 42),
            (INITIATED, "source", {"name": "payment-service"}),
            (INITIATED, "correlationId", 7),
            (INITIATED, "metadata", ["a"]),
        ],
    )
    def test_wrong_json_type_is_wrong_type(self, event_type: str, path: str, value: object) -> None:
        """A value of the wrong JSON type is rejected as `wrong_type` naming its wire path."""
        error = rejection(mutated(event_type, path, value), topic_of(event_type))
        assert (error.reason, error.field) == ("wrong_type", path)


class TestInvalidValue:
    """Fields of the right type whose value is not acceptable."""

    @pytest.mark.parametrize(
        ("event_type", "path", "value"),
        [
            (INITIATED, "payload.amount", 0),
            (INITIATED, "payload.amount", Decimal("0.00")),
            (INITIATED, "payload.amount", -5),
            (INITIATED, "payload.amount", Decimal("-0.01")),
            (REFUNDED, "payload.refundAmount", 0),
            (INITIATED, "payload.currency", "eur"),
            (INITIATED, "payload.currency", "XXY"),
            (INITIATED, "payload.currency", "EURO"),
            (INITIATED, "payload.currency", ""),
            (INITIATED, "timestamp", "2025-12-18T10:30:00.000"),
            (INITIATED, "payload.initiatedAt", "2025-12-18T10:30:00"),
            (INITIATED, "timestamp", "2025-12-18"),
            (INITIATED, "timestamp", "yesterday"),
            (INITIATED, "timestamp", "2025-13-18T10:30:00Z"),
            (INITIATED, "eventId", "not-a-uuid"),
            (INITIATED, "eventId", "a1b2c3d4e5f64a5b8c7d9e8f7a6b5c4d"),
            (INITIATED, "eventId", "a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4"),
            (INITIATED, "eventId", "g1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d"),
            (INITIATED, "eventId", "{a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d}"),
            (INITIATED, "eventId", "a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d\n"),
            (INITIATED, "payload.paymentId", ""),
            (INITIATED, "payload.userId", "u" * 257),
            (INITIATED, "version", "abc"),
            (INITIATED, "version", "1.x"),
            (INITIATED, "version", ""),
        ],
    )
    def test_bad_value_is_invalid_value(self, event_type: str, path: str, value: object) -> None:
        """A value of the right type but outside the allowed values is `invalid_value`."""
        error = rejection(mutated(event_type, path, value), topic_of(event_type))
        assert (error.reason, error.field) == ("invalid_value", path)

    @pytest.mark.parametrize(
        ("event_type", "path", "value"),
        [
            (INITIATED, "payload.paymentId", "   "),
            (INITIATED, "payload.userId", "\t"),
            (INITIATED, "payload.bookingId", "bkg_1\r\nBcc: x@evil.example"),
            (FAILED, "payload.errorCode", "CARD_DECLINED\u0000"),
            (REFUNDED, "payload.refundId", "ref\u007f1"),
        ],
    )
    def test_blank_identifiers_or_control_characters_are_invalid_value(
        self, event_type: str, path: str, value: str
    ) -> None:
        """An identifier that is blank or carries CR/LF, NUL or another control character is `invalid_value` (issue 10, finding 12)."""
        error = rejection(mutated(event_type, path, value), topic_of(event_type))
        assert (error.reason, error.field) == ("invalid_value", path)

    def test_identifiers_with_inner_spaces_and_unicode_are_kept(self) -> None:
        """Only blank and control characters are refused: `pay 42` and `réservation-7` are identifiers."""
        event = parse_event(
            mutated(INITIATED, "payload.bookingId", "réservation 7"), topic_of(INITIATED)
        )
        assert event.payload.booking_id == "réservation 7"

    @pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_amount_is_not_json(self, text: str) -> None:
        """NaN and infinities are not JSON numbers (RFC 8259): the document is `not_json`."""
        raw = mutated(INITIATED, "payload.amount", Decimal(0)).replace(
            b": 0,", f": {text},".encode()
        )
        error = rejection(raw, topic_of(INITIATED))
        assert (error.reason, error.field) == ("not_json", None)


class TestEventIds:
    """eventId accepts any well-formed UUID, not only RFC 4122 version 4."""

    @pytest.mark.parametrize(
        "event_id",
        [
            "c3d4e5f6-a7b8-4c5d-0e9f-1a2b3c4d5e6f",
            "d4e5f6a7-b8c9-4d5e-1f0a-2b3c4d5e6f7a",
            "00000000-0000-0000-0000-000000000000",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "A1B2C3D4-E5F6-4A5B-8C7D-9E8F7A6B5C4D",
        ],
        ids=["spec-variant-0", "spec-variant-1", "nil", "v1", "uppercase"],
    )
    def test_well_formed_uuid_is_accepted(self, event_id: str) -> None:
        """Non-v4, nil and uppercase UUIDs (like the spec's own examples) are kept as given."""
        event = parse_event(mutated(INITIATED, "eventId", event_id), topic_of(INITIATED))
        assert event.event_id == event_id


class TestUnknownEventType:
    """eventTypes this consumer does not know."""

    @pytest.mark.parametrize(
        "event_type",
        ["payment.disputed", "PAYMENT.INITIATED", "payment.initiated ", "", "user.created"],
    )
    def test_unknown_event_type(self, event_type: str) -> None:
        """An eventType that is not one of the four payment events is `unknown_event_type`."""
        for topic in (None, topic_of(INITIATED)):
            error = rejection(mutated(INITIATED, "eventType", event_type), topic)
            assert (error.reason, error.field) == ("unknown_event_type", "eventType")


class TestTopics:
    """eventType checked against the topic the record was read from."""

    @pytest.mark.parametrize(
        ("event_type", "topic_type"),
        [(e, t) for e in EVENT_TYPES for t in EVENT_TYPES if e != t],
    )
    def test_event_on_another_payment_topic_is_a_mismatch(
        self, event_type: str, topic_type: str
    ) -> None:
        """An example read from another payment event's topic is `event_type_mismatch`."""
        raw = spec_bytes(event_type)
        error = rejection(raw, topic_of(topic_type))
        assert (error.reason, error.field) == ("event_type_mismatch", "eventType")

    def test_mismatch_under_a_topic_prefix(self) -> None:
        """With `Topics(prefix="x-")`, payment.initiated on x-…payment.completed is a mismatch."""
        topics = Topics(prefix="x-")
        raw = to_json(spec_example(INITIATED)).encode()
        error = rejection(raw, topics.for_event(COMPLETED), topics=topics)
        assert error.reason == "event_type_mismatch"

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_prefixed_topic_accepts_its_own_event(self, event_type: str) -> None:
        """With a prefix, each example parses on its own prefixed topic."""
        topics = Topics(prefix="x-")
        event = parse_event(
            to_json(spec_example(event_type)).encode(), topics.for_event(event_type), topics=topics
        )
        assert isinstance(event, MODELS[event_type])

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_no_topic_parses_by_event_type(self, event_type: str) -> None:
        """With `topic=None` the eventType alone picks the model."""
        event = parse_event(to_json(spec_example(event_type)).encode(), None)
        assert isinstance(event, MODELS[event_type])

    @pytest.mark.parametrize(
        "topic", ["other.topic", "dreamscape.payment.disputed", "dreamscape.user.created", ""]
    )
    def test_non_payment_topic_is_not_a_mismatch(self, topic: str) -> None:
        """A topic that carries no payment event type does not cause a mismatch."""
        event = parse_event(to_json(spec_example(REFUNDED)).encode(), topic)
        assert isinstance(event, PaymentRefunded)

    def test_mismatch_is_checked_before_the_payload(self) -> None:
        """A wrong-topic event is reported as a mismatch even if its payload is also broken."""
        error = rejection(mutated(INITIATED, "payload.amount"), topic_of(FAILED))
        assert error.reason == "event_type_mismatch"


class TestVersions:
    """Schema versions: 1.x is read, other majors are not."""

    @pytest.mark.parametrize("version", ["1.0", "1.3", "1", "1.10", "1.0.1"])
    def test_major_version_one_is_accepted(self, version: str) -> None:
        """Any 1.x version string parses and is kept as given."""
        event = parse_event(mutated(INITIATED, "version", version), topic_of(INITIATED))
        assert event.version == version

    @pytest.mark.parametrize("version", ["2.0", "0.9", "2", "10.0", "11.1"])
    def test_other_major_is_unsupported_version(self, version: str) -> None:
        """A version whose major is not 1 is `unsupported_version` naming `version`."""
        error = rejection(mutated(INITIATED, "version", version), topic_of(INITIATED))
        assert (error.reason, error.field) == ("unsupported_version", "version")

    def test_version_is_checked_before_the_payload(self) -> None:
        """A version-2 event with a payload this consumer cannot read is `unsupported_version`."""
        document = spec_example(INITIATED)
        document["version"] = "2.0"
        document["payload"] = {"amountMinor": 125000}
        error = rejection(to_json(document).encode(), topic_of(INITIATED))
        assert error.reason == "unsupported_version"


class TestTolerantReader:
    """Additive changes from the producer do not break this consumer."""

    def test_unknown_fields_are_ignored_at_both_levels(self) -> None:
        """Extra fields in the envelope and in the payload are ignored."""
        document = spec_example(COMPLETED)
        document["traceParent"] = "00-abc-def-01"
        document["tenant"] = {"id": 7, "tags": [1, None]}
        document["payload"]["fee"] = Decimal("12.50")
        document["payload"]["gateway"] = None
        event = parse_event(to_json(document).encode(), topic_of(COMPLETED))
        assert isinstance(event, PaymentCompleted)
        assert event.payload.transaction_id == "stripe_ch_3NqY7L2eZvKYlo2C0XYZ1234"
        assert not hasattr(event.payload, "fee")

    def test_unknown_payment_method_is_kept(self) -> None:
        """An unlisted paymentMethod such as `apple_pay` is kept as given, not rejected."""
        event = parse_event(
            mutated(INITIATED, "payload.paymentMethod", "apple_pay"), topic_of(INITIATED)
        )
        assert isinstance(event, PaymentInitiated)
        assert event.payload.payment_method == "apple_pay"

    def test_metadata_is_kept(self) -> None:
        """A metadata object is kept as a dict of whatever it holds."""
        metadata = {"ip": "203.0.113.9", "attempt": 2, "nested": {"ok": True}}
        event = parse_event(mutated(INITIATED, "metadata", metadata), topic_of(INITIATED))
        assert event.metadata == metadata


class TestAmounts:
    """Amounts are exact decimals."""

    @pytest.mark.parametrize(
        ("currency", "text"),
        [("BHD", "12.345"), ("EUR", "1250.00"), ("EUR", "1250.500"), ("JPY", "150000")],
    )
    def test_an_amount_keeps_its_exact_text(self, currency: str, text: str) -> None:
        """An amount is kept digit for digit, trailing zeros included, never through a binary float."""
        event = parse_event(with_amount(INITIATED, "amount", currency, text), topic_of(INITIATED))
        assert isinstance(event, PaymentInitiated)
        assert str(event.payload.amount) == text

    @pytest.mark.parametrize(
        ("event_type", "path", "currency", "text"),
        [
            (INITIATED, "payload.amount", "EUR", "10.001"),
            (INITIATED, "payload.amount", "JPY", "100.5"),
            (INITIATED, "payload.amount", "BHD", "1.0001"),
            (INITIATED, "payload.amount", "EUR", "1000000000000000.01"),
            (INITIATED, "payload.amount", "EUR", "1e16"),
            (INITIATED, "payload.amount", "EUR", "1e99999999"),
            (INITIATED, "payload.amount", "EUR", "1e999999999"),
            (REFUNDED, "payload.refundAmount", "JPY", "0.5"),
            (REFUNDED, "payload.refundAmount", "USD", "1e999996"),
        ],
    )
    def test_an_amount_that_does_not_fit_its_currency_is_invalid_value(
        self, event_type: str, path: str, currency: str, text: str
    ) -> None:
        """More decimals than the currency's ISO 4217 minor units, or more than 10^15 major units, is `invalid_value`, decided without expanding the number (issue 10, finding 10)."""
        raw = with_amount(event_type, path.removeprefix("payload."), currency, text)
        error = rejection(raw, topic_of(event_type))
        assert (error.reason, error.field) == ("invalid_value", path)

    def test_integer_amount_becomes_decimal(self) -> None:
        """An integer amount such as 1250 becomes Decimal('1250')."""
        event = parse_event(mutated(INITIATED, "payload.amount", 1250), topic_of(INITIATED))
        assert isinstance(event, PaymentInitiated)
        assert isinstance(event.payload.amount, Decimal)
        assert event.payload.amount == Decimal("1250")

    def test_refund_amount_is_decimal(self) -> None:
        """refundAmount follows the same rules as amount."""
        event = parse_event(
            mutated(REFUNDED, "payload.refundAmount", Decimal("0.01")), topic_of(REFUNDED)
        )
        assert isinstance(event, PaymentRefunded)
        assert str(event.payload.refund_amount) == "0.01"

    @pytest.mark.parametrize("amount", [125000, Decimal("125000"), Decimal("1")])
    def test_jpy_amounts(self, amount: Decimal | int) -> None:
        """A yen amount, with no minor unit, parses as an exact Decimal in JPY."""
        document = spec_example(COMPLETED)
        document["payload"] |= {"amount": amount, "currency": "JPY"}
        event = parse_event(to_json(document).encode(), topic_of(COMPLETED))
        assert isinstance(event, PaymentCompleted)
        assert event.payload.currency == "JPY"
        assert event.payload.amount == Decimal(amount)
        assert isinstance(event.payload.amount, Decimal)

    def test_exponent_notation_is_a_number(self) -> None:
        """A JSON number written with an exponent (1.25e3) is the exact decimal 1250."""
        raw = mutated(INITIATED, "payload.amount", Decimal(7)).replace(b": 7,", b": 1.25e3,")
        event = parse_event(raw, topic_of(INITIATED))
        assert isinstance(event, PaymentInitiated)
        assert event.payload.amount == Decimal(1250)

    def test_smallest_positive_amount_is_accepted(self) -> None:
        """Any amount above zero is accepted, however small."""
        event = parse_event(
            mutated(INITIATED, "payload.amount", Decimal("0.01")), topic_of(INITIATED)
        )
        assert isinstance(event, PaymentInitiated)
        assert event.payload.amount == Decimal("0.01")


class TestCurrencies:
    """Currency codes checked against pycountry's ISO 4217 list."""

    @pytest.mark.parametrize("code", ["EUR", "USD", "JPY", "GBP", "CHF", "BHD"])
    def test_iso_4217_code_is_accepted(self, code: str) -> None:
        """A current ISO 4217 code is accepted and kept."""
        event = parse_event(mutated(FAILED, "payload.currency", code), topic_of(FAILED))
        assert isinstance(event, PaymentFailed)
        assert event.payload.currency == code


class TestTimestamps:
    """Timestamps are ISO 8601 with a zone and become aware UTC datetimes."""

    @pytest.mark.parametrize(
        ("event_type", "path", "value"),
        [
            (INITIATED, "timestamp", "1999-12-31T23:59:59Z"),
            (INITIATED, "timestamp", "0001-01-01T00:00:00Z"),
            (FAILED, "payload.failedAt", "1970-01-01T00:00:00Z"),
        ],
    )
    def test_a_time_before_2000_is_invalid_value(
        self, event_type: str, path: str, value: str
    ) -> None:
        """No DreamScape payment predates 2000: year 1 or the Unix epoch is a producer's bug (issue 10, finding 11)."""
        error = rejection(mutated(event_type, path, value), topic_of(event_type))
        assert (error.reason, error.field) == ("invalid_value", path)

    @pytest.mark.parametrize(
        ("event_type", "path", "value"),
        [
            (FAILED, "payload.failedAt", "9999-12-31T23:59:59Z"),
            (INITIATED, "timestamp", "2026-12-03T12:00:01Z"),
            (REFUNDED, "payload.refundedAt", "2027-01-01T00:00:00+14:00"),
        ],
    )
    def test_a_time_beyond_the_allowed_clock_skew_is_invalid_value(
        self, event_type: str, path: str, value: str
    ) -> None:
        """A time later than the consumer's `not_after` (its clock plus the allowed skew) is `invalid_value`: a failedAt in 9999 would otherwise be the latest attempt for ever (issue 10, finding 11)."""
        not_after = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
        with pytest.raises(InvalidEvent) as caught:
            parse_event(mutated(event_type, path, value), topic_of(event_type), not_after=not_after)
        assert (caught.value.reason, caught.value.field) == ("invalid_value", path)

    def test_a_time_within_the_skew_is_accepted(self) -> None:
        """Up to `not_after` inclusive, a time is accepted as it is."""
        not_after = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
        raw = mutated(INITIATED, "timestamp", "2026-12-03T12:00:00Z")
        event = parse_event(raw, topic_of(INITIATED), not_after=not_after)
        assert event.timestamp == not_after

    def test_offset_timestamps_are_converted_to_utc(self) -> None:
        """`+02:00` timestamps (envelope and payload) become the same instant in UTC."""
        document = spec_example(INITIATED)
        document["timestamp"] = "2025-12-18T12:30:00.000+02:00"
        document["payload"]["initiatedAt"] = "2025-12-18T01:00:00-05:30"
        event = parse_event(to_json(document).encode(), topic_of(INITIATED))
        assert isinstance(event, PaymentInitiated)
        assert event.timestamp == datetime(2025, 12, 18, 10, 30, tzinfo=UTC)
        assert event.timestamp.tzinfo is UTC
        assert event.timestamp.hour == 10
        assert event.payload.initiated_at == datetime(2025, 12, 18, 6, 30, tzinfo=UTC)
        assert event.payload.initiated_at.tzinfo is UTC

    def test_fractional_seconds_are_kept(self) -> None:
        """Microseconds survive parsing."""
        event = parse_event(
            mutated(INITIATED, "timestamp", "2025-12-18T10:30:00.123456Z"), topic_of(INITIATED)
        )
        assert event.timestamp.microsecond == 123456

    @pytest.mark.parametrize("text", ["1734517800", "1734517800000", "-1", "1734517800.5"])
    def test_unix_time_in_a_string_is_rejected(self, text: str) -> None:
        """A Unix time written as a string is not ISO 8601 and is `invalid_value`."""
        error = rejection(mutated(INITIATED, "timestamp", text), topic_of(INITIATED))
        assert (error.reason, error.field) == ("invalid_value", "timestamp")

    @pytest.mark.parametrize("text", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"])
    def test_timestamp_out_of_range_in_utc_is_invalid_value(self, text: str) -> None:
        """A timestamp whose UTC instant falls outside year 1..9999 is `invalid_value`."""
        error = rejection(mutated(COMPLETED, "payload.completedAt", text), topic_of(COMPLETED))
        assert (error.reason, error.field) == ("invalid_value", "payload.completedAt")


class TestInvalidEvent:
    """The shape of the one error type."""

    def test_every_reason_is_reachable(self) -> None:
        """Each reason in `RejectionReason` is produced by some input in this module."""
        inputs: list[tuple[bytes | None, str | None]] = [
            (b"{", None),
            (b"[1]", None),
            (mutated(INITIATED, "source"), None),
            (mutated(INITIATED, "payload.amount", "1"), None),
            (mutated(INITIATED, "payload.amount", 0), None),
            (mutated(INITIATED, "eventType", "payment.disputed"), None),
            (to_json(spec_example(INITIATED)).encode(), topic_of(REFUNDED)),
            (mutated(INITIATED, "version", "2.0"), None),
            (None, None),
        ]
        reasons = {rejection(value, topic).reason for value, topic in inputs}
        assert reasons == set(get_args(RejectionReason))

    def test_message_carries_reason_and_detail(self) -> None:
        """`str(error)` starts with the reason, and `detail` names the offending field."""
        error = rejection(mutated(INITIATED, "payload.currency", "XXY"))
        assert str(error).startswith("invalid_value: ")
        assert "payload.currency" in error.detail
