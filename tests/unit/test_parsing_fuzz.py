"""Property tests of `parse_event`: whatever arrives, the outcome is an event or `InvalidEvent`.

Three families of input: arbitrary bytes, random JSON-ish documents (including mutations of
the spec's examples), and valid events built from random parts that must round-trip.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final, get_args

import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from common.errors import InvalidEvent, RejectionReason
from common.events import PaymentEvent
from common.parsing import parse_event
from common.topics import EVENT_TYPES, Topics
from dreamscape_dev.testing.builders import spec_example, to_json

REASONS: Final = frozenset(get_args(RejectionReason))
EVENT_CLASSES: Final = get_args(PaymentEvent)
PREFIXED: Final = Topics(prefix="x-")

FUZZ: Final = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ_STRUCTURED: Final = settings(FUZZ, max_examples=120)
"""Fewer examples where generating the nested input costs more than parsing it."""

TOPICS: Final = st.sampled_from(
    [None, "other.topic", *Topics().payment_topics, *PREFIXED.payment_topics]
)
FIELD_NAMES: Final = (
    "eventId",
    "eventType",
    "timestamp",
    "version",
    "source",
    "correlationId",
    "causationId",
    "metadata",
    "payload",
    "paymentId",
    "bookingId",
    "userId",
    "amount",
    "refundAmount",
    "currency",
    "paymentMethod",
    "transactionId",
    "errorCode",
    "errorMessage",
    "reason",
    "refundId",
    "initiatedAt",
    "completedAt",
    "failedAt",
    "refundedAt",
)
PLAUSIBLE_STRINGS: Final = st.sampled_from(
    [
        *EVENT_TYPES,
        "1.0",
        "1.7",
        "2.0",
        "EUR",
        "JPY",
        "eur",
        "a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d",
        "2025-12-18T10:30:00.000Z",
        "2025-12-18T10:30:00",
        "1734517800",
        "",
    ]
)
SCALARS: Final = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # NaN is not JSON: test_parsing
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | PLAUSIBLE_STRINGS
)
JSON_VALUES: Final = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=12,
)


SPEC_EXAMPLES: Final = [spec_example(event_type) for event_type in sorted(EVENT_TYPES)]
"""The spec's four printed examples, decoded with exact decimals (in file-name order)."""


def assert_event_or_rejection(value: bytes | None, topic: str | None, **kwargs: Any) -> None:
    """Parsing ends in a typed event or an `InvalidEvent` with a known reason, nothing else."""
    try:
        event = parse_event(value, topic, **kwargs)
    except InvalidEvent as error:
        rejected = error
    else:
        assert isinstance(event, EVENT_CLASSES)
        return
    assert rejected.reason in REASONS
    assert rejected.field is None or isinstance(rejected.field, str)


@st.composite
def mutated_examples(draw: st.DrawFn) -> dict[str, Any]:
    """A spec example with one to four fields dropped, replaced or added, at either level."""
    document = copy.deepcopy(draw(st.sampled_from(SPEC_EXAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        payload = document.get("payload")
        in_payload = isinstance(payload, dict) and draw(st.booleans())
        target: dict[str, Any] = payload if in_payload else document
        operation = draw(st.sampled_from(["drop", "replace", "add"]))
        if operation == "add" or not target:
            target[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=8))] = draw(JSON_VALUES)
            continue
        key = draw(st.sampled_from(sorted(target)))
        if operation == "drop":
            del target[key]
        else:
            target[key] = draw(JSON_VALUES)
    return document


class TestArbitraryInput:
    """Input that is mostly not a payment event at all."""

    @FUZZ
    @given(value=st.binary(max_size=200) | st.none(), topic=TOPICS)
    @example(value=b"\xff", topic=None)
    @example(value=b"{", topic=None)
    def test_bytes_end_in_event_or_invalid_event(
        self, value: bytes | None, topic: str | None
    ) -> None:
        """Arbitrary bytes never raise anything but `InvalidEvent`."""
        assert_event_or_rejection(value, topic)

    @FUZZ
    @given(document=JSON_VALUES, topic=TOPICS)
    def test_json_values_end_in_event_or_invalid_event(
        self, document: object, topic: str | None
    ) -> None:
        """Random JSON documents end in an event or a known rejection reason."""
        assert_event_or_rejection(to_json(document).encode(), topic)


class TestMutatedExamples:
    """The spec's examples with random fields dropped, replaced or added."""

    @FUZZ_STRUCTURED
    @given(document=mutated_examples(), topic=TOPICS)
    def test_mutations_end_in_event_or_invalid_event(
        self, document: dict[str, Any], topic: str | None
    ) -> None:
        """Mutated examples end in an event or a known rejection reason, never another exception."""
        assert_event_or_rejection(to_json(document).encode(), topic, topics=PREFIXED)
        assert_event_or_rejection(to_json(document).encode(), topic)

    @FUZZ_STRUCTURED
    @given(
        document=mutated_examples(),
        extra=st.dictionaries(
            st.text(max_size=8).filter(lambda k: k not in FIELD_NAMES), SCALARS, max_size=3
        ),
    )
    def test_unknown_fields_never_change_the_outcome(
        self, document: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        """Adding fields the spec does not name never turns a rejection into an event or back."""
        widened = {**document, **extra}
        outcomes = []
        for candidate in (document, widened):
            try:
                outcomes.append(type(parse_event(to_json(candidate).encode())).__name__)
            except InvalidEvent as error:
                outcomes.append(error.reason)
        assert outcomes[0] == outcomes[1]


PAYLOAD_FIELDS: Final = {
    "payment.initiated": ("amount", {"paymentMethod": "method"}, "initiatedAt"),
    "payment.completed": ("amount", {"transactionId": "id"}, "completedAt"),
    "payment.failed": ("amount", {"errorCode": "id", "errorMessage": "text"}, "failedAt"),
    "payment.refunded": ("refundAmount", {"refundId": "id", "reason": "text"}, "refundedAt"),
}
#: What an identifier may be: not blank, no control characters (issue 10, finding 12).
IDENTIFIERS: Final = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc",)), min_size=1, max_size=40
).filter(lambda text: any(not c.isspace() for c in text))
TEXTS: Final = st.text(st.characters(codec="utf-8"), max_size=80)
METHODS: Final = st.sampled_from(
    ["credit_card", "debit_card", "paypal", "bank_transfer", "crypto", "apple_pay"]
)
#: Currencies drawn, with their ISO 4217 minor units: an amount has at most that many places.
MINOR_UNITS: Final = {"EUR": 2, "USD": 2, "JPY": 0, "GBP": 2, "CHF": 2, "BHD": 3}


def amounts(currency: str) -> st.SearchStrategy[Decimal]:
    """Positive amounts with no more decimal places than `currency` has minor units."""
    return st.integers(min_value=0, max_value=MINOR_UNITS[currency]).flatmap(
        lambda places: st.decimals(
            min_value=Decimal(1).scaleb(-places),
            max_value=Decimal("10000000"),
            places=places,
            allow_nan=False,
        )
    )


OFFSETS: Final = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
#: From 2000-01-02 (local time): no offset can take an instant before the parser's 2000-01-01.
INSTANTS: Final = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2100, 1, 1), timezones=OFFSETS
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid wire event (Decimals and aware datetimes still as Python values)."""
    event_type = draw(st.sampled_from(EVENT_TYPES))
    amount_field, strings, at_field = PAYLOAD_FIELDS[event_type]
    kinds = {"method": METHODS, "id": IDENTIFIERS, "text": TEXTS}
    currency = draw(st.sampled_from(sorted(MINOR_UNITS)))
    payload: dict[str, Any] = {
        "paymentId": draw(IDENTIFIERS),
        "bookingId": draw(IDENTIFIERS),
        "userId": draw(IDENTIFIERS),
        amount_field: draw(amounts(currency)),
        "currency": currency,
        **{name: draw(kinds[kind]) for name, kind in strings.items()},
        at_field: draw(INSTANTS),
    }
    document: dict[str, Any] = {
        "eventId": str(draw(st.uuids())),
        "eventType": event_type,
        "timestamp": draw(INSTANTS),
        "version": draw(st.sampled_from(["1.0", "1.1", "1"])),
        "source": draw(TEXTS),
        "payload": payload,
    }
    for optional in ("correlationId", "causationId"):
        if draw(st.booleans()):
            document[optional] = draw(TEXTS)
    return document


def wire(value: Any) -> Any:
    """An event as its wire document: camelCase names, Python values, absent `None`s left out."""
    if not isinstance(value, msgspec.Struct):
        return value
    return {
        field.encode_name: wire(getattr(value, field.name))
        for field in msgspec.structs.fields(value)
        if getattr(value, field.name) is not None
    }


class TestRoundTrip:
    """Valid events built from random parts come back field for field."""

    @FUZZ
    @given(document=valid_events(), prefixed=st.booleans())
    def test_valid_events_round_trip(self, document: dict[str, Any], prefixed: bool) -> None:
        """Serialized with amounts as number text, a valid event parses to the same values."""
        topics = PREFIXED if prefixed else Topics()
        event = parse_event(
            to_json(document).encode("utf-8"),
            topics.for_event(document["eventType"]),
            topics=topics,
        )
        parsed = wire(event)
        assert parsed == document
        assert event.timestamp.tzinfo is UTC
        amount_field, _, at_field = PAYLOAD_FIELDS[document["eventType"]]
        assert str(parsed["payload"][amount_field]) == str(document["payload"][amount_field])
        assert parsed["payload"][at_field].tzinfo is UTC


class TestTimestampRange:
    """Timestamps anywhere in datetime's range, written as ISO 8601 with an offset."""

    @FUZZ
    @given(instant=st.datetimes(timezones=OFFSETS))
    @example(instant=datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))))
    def test_any_aware_timestamp_ends_in_event_or_invalid_event(self, instant: datetime) -> None:
        """Any aware datetime as envelope timestamp parses or is rejected, never crashes."""
        document = copy.deepcopy(SPEC_EXAMPLES[0])
        document["timestamp"] = instant
        assert_event_or_rejection(to_json(document).encode(), None)
