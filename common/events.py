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
from functools import lru_cache
from typing import Annotated, Any, Final, Literal

import pycountry
from babel.numbers import get_currency_precision
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
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


EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""No DreamScape payment predates this: an earlier time (year 1, the epoch) is a bug."""


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
    if parsed.tzinfo is None:
        raise PydanticCustomError("timezone_aware", "timestamp must carry a zone (Z or ±hh:mm)")
    if parsed.tzinfo is not UTC:
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "datetime_range", "timestamp is out of range in UTC"
            ) from None
    if parsed < EARLIEST:
        raise PydanticCustomError("datetime_range", "timestamp is before 2000-01-01")
    return parsed


def _iso_4217(value: str) -> str:
    if value not in ISO_4217_CODES:
        raise PydanticCustomError(
            "currency_code", "not an ISO 4217 currency code: {code}", {"code": value}
        )
    return value


Amount = Annotated[Decimal, PlainValidator(_amount)]
Currency = Annotated[str, AfterValidator(_iso_4217)]
Timestamp = Annotated[datetime, PlainValidator(_timestamp)]
#: Not blank, and no control characters (CR/LF would inject email headers, NUL breaks
#: PostgreSQL text): at least one visible character among printable ones.
IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
Identifier = Annotated[str, Field(min_length=1, max_length=256, pattern=IDENTIFIER_PATTERN)]
EventId = Annotated[str, Field(pattern=UUID_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        frozen=True,
        extra="ignore",
    )


MAX_MAJOR_UNITS: Final = Decimal(10) ** 15
"""The largest amount accepted, in major units of any currency (a quadrillion)."""


def _fits_currency(amount: Decimal, info: ValidationInfo) -> Decimal:
    """At most 10^15 major units, and no more decimals than the currency's minor units.

    Bounds first, in O(1): `1e99999999` is a 331-byte record whose `format(amount, 'f')`
    takes 450 MB. Trailing zeros are not digits of the amount (EUR `1250.000` is 1250.00);
    the minor units come from babel's copy of the ISO 4217 table (EUR 2, JPY 0, BHD 3).
    """
    if amount.adjusted() > 15 or amount > MAX_MAJOR_UNITS:
        raise PydanticCustomError("amount_too_large", "amount must be at most 10^15")
    currency = info.data.get("currency")
    if currency is None:  # the currency itself was rejected; that error is reported
        return amount
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < 0:
        places = -int(amount.normalize().as_tuple().exponent)
        allowed = _minor_units(currency)
        if places > allowed:
            raise PydanticCustomError(
                "currency_precision",
                "{currency} amounts have at most {allowed} decimal place(s)",
                {"currency": currency, "allowed": allowed},
            )
    return amount


@lru_cache(maxsize=512)
def _minor_units(currency: str) -> int:
    return int(get_currency_precision(currency))


class PaymentInitiatedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    currency: Currency  # before the amount: the amount's check needs it
    amount: Amount
    payment_method: Identifier
    initiated_at: Timestamp

    _fits = field_validator("amount")(_fits_currency)


class PaymentCompletedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    currency: Currency  # before the amount: the amount's check needs it
    amount: Amount
    transaction_id: Identifier
    completed_at: Timestamp

    _fits = field_validator("amount")(_fits_currency)


class PaymentFailedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    currency: Currency  # before the amount: the amount's check needs it
    amount: Amount
    error_code: Identifier
    error_message: str
    failed_at: Timestamp

    _fits = field_validator("amount")(_fits_currency)


class PaymentRefundedPayload(_Model):
    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    currency: Currency  # before the amount: the amount's check needs it
    refund_amount: Amount
    refund_id: Identifier
    reason: str
    refunded_at: Timestamp

    _fits = field_validator("refund_amount")(_fits_currency)


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
