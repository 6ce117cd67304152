"""Typed models of the payment event envelope and its four payloads.

Field names on the wire are the spec's camelCase; in Python they are snake_case. The models
are tolerant readers: unknown fields are ignored, and an unknown `paymentMethod` is kept as
given. They are strict where money and time are concerned: amounts are exact `Decimal`s
(the JSON is decoded with decimals, never through binary floats), finite and > 0; currencies
are current ISO 4217 codes; timestamps are ISO 8601 strings with a zone, stored as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from common import topics

KNOWN_PAYMENT_METHODS: Final = frozenset(
    {"credit_card", "debit_card", "paypal", "bank_transfer", "crypto"}
)
"""Methods the spec lists. Others are accepted as given: a new method is an additive change."""

ISO_4217_CODES: Final = frozenset(c.alpha_3 for c in pycountry.currencies)

SUPPORTED_VERSION: Final = r"^1(\.[0-9]+){0,2}$"
"""Major version 1, any minor (tolerant reader); the parser explains any other version."""

UUID_PATTERN: Final = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def _amount(value: object) -> Decimal:
    """A JSON number (decoded as int or Decimal), finite and > 0; never a string, bool or float."""
    if type(value) is int:
        value = Decimal(value)
    elif type(value) is not Decimal:
        raise PydanticCustomError("decimal_type", "amount must be a JSON number")
    if not value.is_finite():
        raise PydanticCustomError("finite_number", "amount must be finite")
    if value <= 0:
        raise PydanticCustomError("greater_than", "amount must be greater than 0")
    return value


def _timestamp(value: object) -> datetime:
    """An ISO 8601 date-time string with a zone, as an aware UTC datetime.

    One plain validator instead of pydantic's datetime plus two hooks: timestamps are on the
    hot path (two per event), and pydantic alone would read `"1734517800"` as a Unix time.
    """
    if type(value) is not str:
        raise PydanticCustomError("datetime_type", "timestamp must be an ISO 8601 string")
    try:  # unlike pydantic's parser, fromisoformat refuses "1734517800"
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise PydanticCustomError(
            "datetime_parsing", "timestamp: {error}", {"error": str(exc)}
        ) from None
    if parsed.tzinfo is UTC:
        return parsed
    if parsed.tzinfo is None:
        raise PydanticCustomError("timezone_aware", "timestamp must carry a zone (Z or ±hh:mm)")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "timestamp is out of range in UTC") from None


def _iso_4217(value: str) -> str:
    if value not in ISO_4217_CODES:
        raise PydanticCustomError(
            "currency_code", "not an ISO 4217 currency code: {code}", {"code": value}
        )
    return value


Amount = Annotated[Decimal, PlainValidator(_amount)]
Currency = Annotated[str, AfterValidator(_iso_4217)]
Timestamp = Annotated[datetime, PlainValidator(_timestamp)]
Identifier = Annotated[str, Field(min_length=1, max_length=256)]
EventId = Annotated[str, Field(pattern=UUID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        frozen=True,
        extra="ignore",
    )


class PaymentInitiatedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    amount: Amount
    currency: Currency
    payment_method: Identifier
    initiated_at: Timestamp


class PaymentCompletedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    amount: Amount
    currency: Currency
    transaction_id: Identifier
    completed_at: Timestamp


class PaymentFailedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    amount: Amount
    currency: Currency
    error_code: Identifier
    error_message: str
    failed_at: Timestamp


class PaymentRefundedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    refund_amount: Amount
    currency: Currency
    refund_id: Identifier
    reason: str
    refunded_at: Timestamp


class _Envelope(_Model):
    """The fields every DreamScape event carries (the spec's `BaseEvent<T>`)."""

    event_id: EventId
    timestamp: Timestamp
    version: Annotated[str, Field(pattern=SUPPORTED_VERSION)]
    source: str
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: dict[str, Any] | None = None


class PaymentInitiated(_Envelope):
    event_type: Literal["payment.initiated"]
    payload: PaymentInitiatedPayload


class PaymentCompleted(_Envelope):
    event_type: Literal["payment.completed"]
    payload: PaymentCompletedPayload


class PaymentFailed(_Envelope):
    event_type: Literal["payment.failed"]
    payload: PaymentFailedPayload


class PaymentRefunded(_Envelope):
    event_type: Literal["payment.refunded"]
    payload: PaymentRefundedPayload


PaymentEvent = PaymentInitiated | PaymentCompleted | PaymentFailed | PaymentRefunded

MODEL_BY_EVENT_TYPE: Final[dict[str, type[PaymentEvent]]] = {
    topics.PAYMENT_INITIATED: PaymentInitiated,
    topics.PAYMENT_COMPLETED: PaymentCompleted,
    topics.PAYMENT_FAILED: PaymentFailed,
    topics.PAYMENT_REFUNDED: PaymentRefunded,
}
