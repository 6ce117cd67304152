"""Payment events for the voyage tests, as exact JSON, parsed events, records and facts.

Documents are written with `dreamscape_dev.simulation_wire.encode`, so amounts appear on the wire as
JSON numbers with their exact text (`100.00`), exactly as the payment-service sends them.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dreamscape_dev.testing
from common.parsing import parse_event
from common.records import Inbound, OutboundRecord, Record
from common.topics import DEFAULT_TOPICS, Topics
from dreamscape_dev.simulation_wire import JsonObject, encode
from voyage_consumer.facts import Fact, FactKind, to_fact

SPEC_EXAMPLES = Path(dreamscape_dev.testing.__file__).parent / "spec_examples"
SPEC_NAMES = ("payment_initiated", "payment_failed", "payment_completed", "payment_refunded")
T0 = datetime(2025, 12, 18, 10, 0, tzinfo=UTC)
_offsets = itertools.count()


def at(minutes: float) -> datetime:
    """A moment `minutes` after 2025-12-18T10:00Z."""
    return T0 + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def document(
    kind: FactKind,
    *,
    booking: str = "bk_1",
    payment: str = "pay_1",
    amount: str = "100.00",
    currency: str = "EUR",
    minutes: float = 0,
    event_id: str | None = None,
    refund_id: str = "rf_1",
    user: str = "usr_1",
    text: str = "x",
) -> JsonObject:
    """A valid event document of `kind` (the payload's own time is `at(minutes)`)."""
    when = iso(at(minutes))
    payload: JsonObject = {"paymentId": payment, "bookingId": booking, "userId": user}
    money = Decimal(amount)
    if kind == "initiated":
        payload |= {"amount": money, "currency": currency, "paymentMethod": "credit_card"}
        payload["initiatedAt"] = when
    elif kind == "completed":
        payload |= {"amount": money, "currency": currency, "transactionId": f"tx_{payment}"}
        payload["completedAt"] = when
    elif kind == "failed":
        payload |= {"amount": money, "currency": currency, "errorCode": "card_declined"}
        payload |= {"errorMessage": text, "failedAt": when}
    else:
        payload |= {"refundAmount": money, "currency": currency, "refundId": refund_id}
        payload |= {"reason": text, "refundedAt": when}
    return {
        "eventId": event_id or str(uuid.uuid4()),
        "eventType": f"payment.{kind}",
        "timestamp": when,
        "version": "1.0",
        "source": "payment-service",
        "payload": payload,
    }


def outbound(doc: JsonObject, topics: Topics = DEFAULT_TOPICS) -> OutboundRecord:
    """The record the payment-service would publish for `doc` (keyed by paymentId)."""
    event_type = str(doc["eventType"])
    payload = doc["payload"]
    assert isinstance(payload, dict)
    key = str(payload["paymentId"]).encode()
    return OutboundRecord(topics.for_event(event_type), key, encode(doc).encode())


def inbound_of(record: OutboundRecord, topics: Topics = DEFAULT_TOPICS) -> Inbound:
    """`record` as the run loop hands it to a handler (parsed, at a fresh offset)."""
    consumed = Record(record.topic, 0, next(_offsets), record.key, record.value)
    return Inbound(consumed, parse_event(record.value, record.topic, topics=topics))


def inbound(doc: JsonObject) -> Inbound:
    return inbound_of(outbound(doc))


def fact(doc: JsonObject) -> Fact:
    return to_fact(inbound(doc).event)


def spec_records(topics: Topics = DEFAULT_TOPICS) -> list[OutboundRecord]:
    """The spec's four examples, byte for byte as printed, on their topics (lifecycle order)."""
    records = []
    for name in SPEC_NAMES:
        value = (SPEC_EXAMPLES / f"{name}.json").read_bytes()
        topic = topics.for_event(name.replace("_", "."))
        records.append(OutboundRecord(topic, b"pay_abc123xyz", value))
    return records
