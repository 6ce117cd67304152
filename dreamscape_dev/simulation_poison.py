"""Poison records: one for each way a record on a payment topic can be unreadable.

Each is a valid `payment.completed` document of a payment that belongs to no booking,
broken in exactly one way, so a consumer must reject it (to its DLQ) without touching any
booking. The reason each kind earns is stated next to it and checked against
`common.parsing.parse_event` by the simulator's tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from common import topics as names
from common.errors import RejectionReason
from common.records import OutboundRecord
from common.topics import Topics
from dreamscape_dev.simulation_data import (
    IdFactory,
    draw_amount_minor,
    draw_currency,
    draw_initiated_ms,
    to_decimal,
)
from dreamscape_dev.simulation_wire import JsonObject, encode, envelope, headers


def _keep(document: JsonObject) -> None:
    """Leave the document valid (the record is broken some other way)."""


def _as_is(text: str) -> str | None:
    return text


def _payload(document: JsonObject) -> JsonObject:
    payload = document["payload"]
    assert isinstance(payload, dict)
    return payload


def _drop_booking_id(document: JsonObject) -> None:
    del _payload(document)["bookingId"]


def _amount_as_string(document: JsonObject) -> None:
    payload = _payload(document)
    payload["amount"] = str(payload["amount"])


def _unknown_event_type(document: JsonObject) -> None:
    document["eventType"] = "payment.disputed"


def _next_major_version(document: JsonObject) -> None:
    document["version"] = "2.0"


def _negative_amount(document: JsonObject) -> None:
    payload = _payload(document)
    amount = payload["amount"]
    assert isinstance(amount, Decimal)
    payload["amount"] = -amount


def _lowercase_currency(document: JsonObject) -> None:
    payload = _payload(document)
    payload["currency"] = str(payload["currency"]).lower()  # as a careless gateway sends it


def _amount_overflow(document: JsonObject) -> None:
    _payload(document)["amount"] = Decimal("1e400")  # past any float; 10^15 is the ceiling


def _far_future(document: JsonObject) -> None:
    # The last second of year 9999 west of UTC: no UTC datetime can hold it.
    document["timestamp"] = "9999-12-31T23:59:59-01:00"


def _nul_in_field(document: JsonObject) -> None:
    _payload(document)["userId"] = "user\u0000-1"  # NUL breaks PostgreSQL text columns


def _blank_identifier(document: JsonObject) -> None:
    _payload(document)["transactionId"] = "   "


def _unknown_currency(document: JsonObject) -> None:
    _payload(document)["currency"] = "XDS"  # three letters, upper case, not ISO 4217


HUGE_VALUE_BYTES: Final = 900_000
"""Just under the broker's default 1 MB message limit, so the record (and its DLQ copy) fits."""


def _huge_value(text: str) -> str:
    """The document followed by ~900 kB of padding: one value, not one JSON document."""
    return text + " x" * (HUGE_VALUE_BYTES // 2)


@dataclass(frozen=True, slots=True)
class PoisonKind:
    name: str
    reason: RejectionReason
    mutate: Callable[[JsonObject], None] = _keep
    wrap: Callable[[str], str | None] = _as_is
    """From the JSON text to the record value (None: a tombstone)."""
    published_as: str = names.PAYMENT_COMPLETED
    """The event type whose topic the record is published on."""


POISON_KINDS: Final = (
    PoisonKind("not_json", "not_json", wrap=lambda text: text[: len(text) // 2]),
    PoisonKind("json_array", "not_an_object", wrap=lambda text: f"[{text}]"),
    PoisonKind("missing_field", "missing_field", _drop_booking_id),
    PoisonKind("wrong_type", "wrong_type", _amount_as_string),
    PoisonKind("unknown_event_type", "unknown_event_type", _unknown_event_type),
    PoisonKind("wrong_topic", "event_type_mismatch", published_as=names.PAYMENT_FAILED),
    PoisonKind("unsupported_version", "unsupported_version", _next_major_version),
    PoisonKind("negative_amount", "invalid_value", _negative_amount),
    PoisonKind("bad_currency", "invalid_value", _lowercase_currency),
    PoisonKind("tombstone", "empty_value", wrap=lambda text: None),
    PoisonKind("amount_overflow", "invalid_value", _amount_overflow),
    PoisonKind("far_future_timestamp", "invalid_value", _far_future),
    PoisonKind("nul_in_field", "invalid_value", _nul_in_field),
    PoisonKind("blank_identifier", "invalid_value", _blank_identifier),
    PoisonKind("unknown_currency", "invalid_value", _unknown_currency),
    PoisonKind("huge_value", "not_json", wrap=_huge_value),
)
"""The kinds in the order `SimulationConfig.poison` cycles through them."""


def poison_kind(number: int) -> PoisonKind:
    """The kind of the `number`-th poison record (0-based)."""
    return POISON_KINDS[number % len(POISON_KINDS)]


def make_poison(
    kind: PoisonKind, rng: random.Random, ids: IdFactory, topics: Topics, window: tuple[int, int]
) -> OutboundRecord:
    """A record of `kind` for a fresh payment at a moment within `window` (start ms, days)."""
    payment_id, document = _orphan_completed(rng, ids, window)
    kind.mutate(document)
    value = kind.wrap(encode(document))
    event_type = document["eventType"]
    assert isinstance(event_type, str)
    record_headers = () if value is None else headers(event_type)
    topic = topics.for_event(kind.published_as)
    return OutboundRecord(
        topic, payment_id.encode(), None if value is None else value.encode(), record_headers
    )


def _orphan_completed(
    rng: random.Random, ids: IdFactory, window: tuple[int, int]
) -> tuple[str, JsonObject]:
    """A valid payment.completed document of a payment that belongs to no simulated booking."""
    payment_id, booking_id = ids.payment(), ids.booking()
    currency = draw_currency(rng)
    at_ms = draw_initiated_ms(rng, *window)
    document = envelope(
        ids.event(),
        names.PAYMENT_COMPLETED,
        at_ms,
        f"booking-{booking_id}-payment-flow",
        ids.event(),
    )
    document["payload"] = {
        "paymentId": payment_id,
        "bookingId": booking_id,
        "userId": ids.user(),
        "amount": to_decimal(draw_amount_minor(rng, currency), currency),
        "currency": currency,
        "transactionId": ids.transaction(),
        "completedAt": document["timestamp"],
    }
    return payment_id, document
