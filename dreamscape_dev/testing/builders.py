"""Payment events for tests: the spec's printed examples, events made from them, their records.

The one event builder of the suite (and of a team testing its own consumer):

* `event(type, **payload)` is the spec's printed example of that type with a fresh eventId
  and the payload fields named replaced or added (`event(doc, ...)` starts from a copy of
  `doc` instead: the same fact published again);
* `outbound(doc)` is the record the payment-service publishes for it: on its type's topic,
  keyed by paymentId; `inbound(...)` is a record as the run loop hands it to a handler,
  consumed at an offset and parsed; `payment_event(...)` is only the parsed event, what a
  test of a pure function of events (a domain's fold, a renderer, a business key) wants;
* `to_json` writes a `Decimal` as the exact number text it holds (`1250.00`), as the
  payment-service does, which `json.dumps` can only do through a binary float.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeAlias

from common.events import PaymentEvent
from common.parsing import parse_event
from common.records import Header, Inbound, OutboundRecord, Record
from common.topics import DEFAULT_TOPICS, EVENT_TYPES, Topics

Document: TypeAlias = dict[str, Any]
"""An event as a JSON object, amounts as `Decimal`s."""

SPEC_EXAMPLES: Final = Path(__file__).parent / "spec_examples"
"""The spec's four example events, as printed (`payment_completed.json` ...)."""

OCCURRED_AT: Final = {
    "payment.initiated": "initiatedAt",
    "payment.completed": "completedAt",
    "payment.failed": "failedAt",
    "payment.refunded": "refundedAt",
}
"""The payload field that says when each type of event happened."""

_offsets = itertools.count()


# -- documents ----------------------------------------------------------------------------


def spec_path(event_type: str) -> Path:
    """The file of the spec's printed example of `event_type` (`payment.completed` ...)."""
    assert event_type in EVENT_TYPES, f"not a payment event type: {event_type!r}"
    return SPEC_EXAMPLES / f"{event_type.replace('.', '_')}.json"


def spec_bytes(event_type: str) -> bytes:
    """The spec's printed example of `event_type`, byte for byte."""
    return spec_path(event_type).read_bytes()


def spec_example(event_type: str) -> Document:
    """The spec's printed example of `event_type`, decoded with exact decimals."""
    return decode(spec_bytes(event_type))


def event(
    of: str | Document,
    *,
    event_id: str | None = None,
    at: datetime | None = None,
    **payload: Any,
) -> Document:
    """A valid event: the spec's example of event type `of` (or a copy of document `of`).

    It gets a fresh eventId (or `event_id`); `at` sets its envelope timestamp and the
    payload's own time (`completedAt` ...); `payload` fields replace or add to the payload's,
    by their wire names (`paymentId="pay_1"`, `refundAmount=Decimal("30.00")`).
    """
    document = spec_example(of) if isinstance(of, str) else copy.deepcopy(of)
    document["eventId"] = event_id or str(uuid.uuid4())
    if at is not None:
        document["timestamp"] = iso(at)
        document["payload"][OCCURRED_AT[document["eventType"]]] = iso(at)
    document["payload"].update(payload)
    return document


def iso(moment: datetime) -> str:
    """`moment` as the spec writes times: milliseconds, `Z` for UTC."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode(value: bytes | str) -> Document:
    """A JSON event decoded with exact decimals (`1250.00` stays `Decimal('1250.00')`)."""
    document: Document = json.loads(value, parse_float=Decimal)
    return document


def to_json(value: object) -> str:
    """Serialize like `json.dumps`, but write a `Decimal` as the bare number text it holds.

    Non-finite decimals are written as `NaN`/`Infinity` (not JSON: the parser refuses them);
    a `datetime` as its ISO text.
    """
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else str(value)
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    if isinstance(value, dict):
        items = (f"{json.dumps(key)}: {to_json(item)}" for key, item in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    return json.dumps(value)


def encode(document: Document) -> bytes:
    """`document` as a record value (`to_json`, UTF-8)."""
    return to_json(document).encode()


# -- records ------------------------------------------------------------------------------


def outbound(
    document: Document,
    topics: Topics = DEFAULT_TOPICS,
    *,
    key: bytes | None = None,
    headers: Iterable[Header] = (),
) -> OutboundRecord:
    """The record the payment-service publishes for `document`: on its topic, keyed by paymentId."""
    topic = topics.for_event(document["eventType"])
    key = key if key is not None else str(document["payload"]["paymentId"]).encode()
    return OutboundRecord(topic, key, encode(document), tuple(headers))


def spec_record(
    event_type: str, topics: Topics = DEFAULT_TOPICS, *, key: bytes | None = None
) -> OutboundRecord:
    """The spec's printed example of `event_type`, byte for byte, on its topic (keyed by paymentId)."""
    if key is None:
        key = str(spec_example(event_type)["payload"]["paymentId"]).encode()
    return OutboundRecord(topics.for_event(event_type), key, spec_bytes(event_type))


def spec_records(topics: Topics = DEFAULT_TOPICS) -> list[OutboundRecord]:
    """The spec's four printed examples on their topics, in lifecycle order."""
    return [spec_record(event_type, topics) for event_type in EVENT_TYPES]


def inbound(
    source: str | Document | OutboundRecord,
    topics: Topics = DEFAULT_TOPICS,
    *,
    partition: int = 0,
    offset: int | None = None,
    key: bytes | None = None,
) -> Inbound:
    """A record as the run loop hands it to a handler: consumed, and parsed on its topic.

    `source` is an event type (its printed spec example), a document (`outbound`'s record
    of it) or a record as produced. Without `offset`, each call takes the next of one
    counter, so records built one after another have increasing offsets.
    """
    if isinstance(source, OutboundRecord):
        record = source
    elif isinstance(source, str):
        record = spec_record(source, topics)
    else:
        record = outbound(source, topics)
    consumed = Record(
        record.topic,
        partition,
        next(_offsets) if offset is None else offset,
        record.key if key is None else key,
        record.value,
        record.headers,
    )
    return Inbound(consumed, parse_event(record.value, record.topic, topics=topics))


def payment_event(
    of: str | Document,
    *,
    topics: Topics = DEFAULT_TOPICS,
    event_id: str | None = None,
    at: datetime | None = None,
    **payload: Any,
) -> PaymentEvent:
    """`event(of, ...)` parsed as the run loop parses it, on its type's topic: a `PaymentEvent`.

    The arguments are `event`'s (`payment_event("payment.completed", paymentId="pay_1")`),
    so a document `of` is copied with a fresh eventId; `inbound(document).event` parses a
    document as it is. Raises `InvalidEvent` if the fields named make the event invalid.
    """
    document = event(of, event_id=event_id, at=at, **payload)
    return parse_event(encode(document), topics.for_event(document["eventType"]), topics=topics)


def inbounds(
    sources: Iterable[str | Document | OutboundRecord], topics: Topics = DEFAULT_TOPICS
) -> list[Inbound]:
    """`inbound` of each source, at increasing offsets."""
    return [inbound(source, topics) for source in sources]
