"""Simulated bookings as Kafka records: the spec's envelope and payloads, as exact JSON.

JSON is written here rather than with `json.dumps` of a dict because amounts must appear as
numbers with their exact decimal text (`1250.00`, `48200`), which the standard encoder can
only produce through a float. Records are keyed by paymentId and carry `content-type` and
`event-type` headers, as the payment-service publishes them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Final, TypeAlias

from common import topics as names
from common.records import Header, OutboundRecord
from common.topics import Topics
from dreamscape_dev.simulation_data import ERROR_MESSAGES, iso_ms, to_decimal
from dreamscape_dev.simulation_flows import Attempt, Booking, Refund

JsonValue: TypeAlias = "str | Decimal | dict[str, JsonValue]"
JsonObject: TypeAlias = dict[str, JsonValue]

VERSION: Final = "1.0"
SOURCE: Final = "payment-service"
CONTENT_TYPE: Final = ("content-type", b"application/json")


def encode(document: JsonObject) -> str:
    """Compact ASCII JSON; a `Decimal` is written as a number with its exact text.

    Keys are the spec's field names, which need no escaping; string values are escaped
    by the standard library's C encoder (what `json.dumps` calls, without its overhead).
    """
    parts = []
    for key, value in document.items():
        if type(value) is str:
            text = encode_basestring_ascii(value)
        elif type(value) is Decimal:
            text = format(value, "f")
        else:
            assert isinstance(value, dict)
            text = encode(value)
        parts.append(f'"{key}":{text}')
    return "{" + ",".join(parts) + "}"


def envelope(
    event_id: str, event_type: str, at_ms: int, correlation_id: str, causation_id: str | None
) -> JsonObject:
    """The spec's `BaseEvent` fields, in its order; the caller adds `payload`."""
    document: JsonObject = {
        "eventId": event_id,
        "eventType": event_type,
        "timestamp": iso_ms(at_ms),
        "version": VERSION,
        "source": SOURCE,
        "correlationId": correlation_id,
    }
    if causation_id is not None:
        document["causationId"] = causation_id
    return document


@functools.cache
def headers(event_type: str) -> tuple[Header, ...]:
    """The headers of a record carrying `event_type` (one shared tuple per type)."""
    return (CONTENT_TYPE, ("event-type", event_type.encode()))


def to_record(
    document: JsonObject, event_type: str, topics: Topics, payment_id: str
) -> OutboundRecord:
    """A record on `event_type`'s topic, keyed by paymentId (the spec's partitioning)."""
    value = encode(document).encode()
    return OutboundRecord(
        topics.for_event(event_type), payment_id.encode(), value, headers(event_type)
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """The records of one booking in lifecycle order, and which of them follow which."""

    records: list[tuple[int, OutboundRecord]]
    """(event time in ms, record)."""
    pairs: list[tuple[int, int]]
    """Indices (earlier, later) into `records` of events that the lifecycle orders."""


def render_booking(booking: Booking, topics: Topics) -> Rendered:
    """Every event of a booking: per attempt initiated then its outcome, then the refunds."""
    rendered = Rendered([], [])
    completed = -1
    for attempt in booking.attempts:
        initiated = len(rendered.records)
        rendered.records.append((attempt.initiated_ms, _initiated(booking, attempt, topics)))
        if attempt.outcome is not None:
            rendered.pairs.append((initiated, len(rendered.records)))
            completed = len(rendered.records)
            rendered.records.append((attempt.outcome_ms, _outcome(booking, attempt, topics)))
    for number, refund in enumerate(booking.refunds):
        if number == 0:
            rendered.pairs.append((completed, len(rendered.records)))
        rendered.records.append((refund.refunded_ms, _refunded(booking, refund, topics)))
    return rendered


def _payment_flow(booking: Booking) -> str:
    return f"booking-{booking.booking_id}-payment-flow"


def _base_payload(booking: Booking, payment_id: str) -> JsonObject:
    return {"paymentId": payment_id, "bookingId": booking.booking_id, "userId": booking.user_id}


def _initiated(booking: Booking, attempt: Attempt, topics: Topics) -> OutboundRecord:
    document = envelope(
        attempt.initiated_event_id,
        names.PAYMENT_INITIATED,
        attempt.initiated_ms,
        _payment_flow(booking),
        None,
    )
    payload = _base_payload(booking, attempt.payment_id)
    payload["amount"] = to_decimal(booking.amount_minor, booking.currency)
    payload["currency"] = booking.currency
    payload["paymentMethod"] = attempt.method
    payload["initiatedAt"] = document["timestamp"]
    document["payload"] = payload
    return to_record(document, names.PAYMENT_INITIATED, topics, attempt.payment_id)


def _outcome(booking: Booking, attempt: Attempt, topics: Topics) -> OutboundRecord:
    event_type = names.PAYMENT_COMPLETED if attempt.outcome == "completed" else names.PAYMENT_FAILED
    document = envelope(
        attempt.outcome_event_id,
        event_type,
        attempt.outcome_ms,
        _payment_flow(booking),
        attempt.initiated_event_id,
    )
    payload = _base_payload(booking, attempt.payment_id)
    payload["amount"] = to_decimal(booking.amount_minor, booking.currency)
    payload["currency"] = booking.currency
    if attempt.outcome == "completed":
        payload["transactionId"] = attempt.transaction_id
        payload["completedAt"] = document["timestamp"]
    else:
        payload["errorCode"] = attempt.error_code
        payload["errorMessage"] = ERROR_MESSAGES[attempt.error_code]
        payload["failedAt"] = document["timestamp"]
    document["payload"] = payload
    return to_record(document, event_type, topics, attempt.payment_id)


def _refunded(booking: Booking, refund: Refund, topics: Topics) -> OutboundRecord:
    paid = booking.paid
    assert paid is not None, "only paid bookings are refunded"
    correlation = f"booking-{booking.booking_id}-refund-flow"
    document = envelope(
        refund.event_id, names.PAYMENT_REFUNDED, refund.refunded_ms, correlation, None
    )
    payload = _base_payload(booking, paid.payment_id)
    payload["refundAmount"] = to_decimal(refund.amount_minor, booking.currency)
    payload["currency"] = booking.currency
    payload["refundId"] = refund.refund_id
    payload["reason"] = refund.reason
    payload["refundedAt"] = document["timestamp"]
    document["payload"] = payload
    return to_record(document, names.PAYMENT_REFUNDED, topics, paid.payment_id)
