"""Typed models of the payment event envelope and its four payloads, decoded by msgspec.

Field names on the wire are the spec's camelCase; in Python they are snake_case. The models
are tolerant readers: unknown fields are ignored, and an unknown `paymentMethod` is kept as
given. They are strict where money and time are concerned: amounts are exact `Decimal`s
read only from JSON numbers (never through a binary float, never from a string), finite and
> 0; currencies are current ISO 4217 codes; timestamps are RFC 3339 strings with a zone,
stored as aware UTC.

Why msgspec (issue 13): it decodes the bytes straight into these frozen structs, checking
types, lengths and patterns in C as it goes, in a third of the time `json.loads` alone
takes to build a dict (figures in docs/performance.md). What msgspec cannot say in a type
is checked in each struct's `__post_init__`, which raises `InvalidEvent` naming the wire
field; `common.parsing` turns msgspec's own errors into the same reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from operator import attrgetter
from typing import Annotated, Any, ClassVar, Final, Literal, NamedTuple

import msgspec
import pycountry
from babel.numbers import get_currency_precision
from msgspec import Meta, Struct

from common import topics
from common.errors import InvalidEvent

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

#: Not blank, and no control characters (CR/LF would inject email headers, NUL breaks
#: PostgreSQL text): at least one visible character among printable ones.
IDENTIFIER_PATTERN: Final = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"

TIMESTAMP_PATTERN: Final = (
    r"^[2-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""The RFC 3339 form of the timestamps the models read, for the JSON Schema only.

msgspec reads RFC 3339 itself (with a zone, required here); the contract also asks for a
year from 2000, which `__post_init__` checks.
"""

MAX_MAJOR_UNITS: Final = Decimal(10) ** 15
"""The largest amount accepted, in major units of any currency (a quadrillion)."""

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""No DreamScape payment predates this: an earlier time (year 1, the epoch) is a bug."""


def _python(pattern: str) -> str:
    r"""`pattern` for Python's `re`, whose `$` also matches before a final newline: `\Z`."""
    return pattern.removesuffix("$") + r"\Z"


class Amount(Decimal):
    """An exact decimal read from a JSON number: finite, > 0, at most 10^15 major units.

    A `Decimal` subclass only so the decoder can tell it from a plain `Decimal`, which
    msgspec would also read from a JSON string: amounts must be numbers (the contract's
    `"type": "number"`). `decode_hook` builds it; everything downstream sees a `Decimal`.
    """

    __slots__ = ()


AMOUNT_SCHEMA: Final = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": int(MAX_MAJOR_UNITS),
    "description": "A JSON number (never a string) in major units, with no more decimal places "
    "than the currency's ISO 4217 minor units (EUR 2, JPY 0, BHD 3; trailing zeros do not count).",
}
"""How `Amount` reads in the contract's JSON Schema (`dreamscape_dev.contracts`)."""


def decode_hook(kind: type, value: Any) -> Any:
    """msgspec's `dec_hook`: checks `Amount`s, which the decoder reads as untyped numbers.

    Decode with `float_hook=Amount` (as `common.parsing` does), so that a JSON float becomes
    an `Amount` straight from its text; an integer becomes one here.

    Errors are `TypeError`/`ValueError` whose message starts with the rejection reason;
    msgspec adds the field's path and `common.parsing` reads both back.
    """
    if kind is not Amount:
        raise NotImplementedError(kind)
    kind_of = type(value)
    if kind_of is int or kind_of is Decimal:  # an integer, or a Decimal given to `convert`
        value = Amount(value)
    elif kind_of is not Amount:  # a string, bool, null, list... (JSON floats come as Amount)
        raise TypeError("wrong_type: amount must be a JSON number")
    # Bounds first, in O(1): `1e99999999` is a 331-byte record whose `format(amount, 'f')`
    # takes 450 MB. (NaN and Infinity are not JSON: the decoder refuses them as not_json.)
    if value <= 0:
        raise ValueError("invalid_value: amount must be greater than 0")
    if value.adjusted() >= 15 and value > MAX_MAJOR_UNITS:
        raise ValueError("invalid_value: amount must be at most 10^15")
    return value


def _invalid(field: str, message: str) -> InvalidEvent:
    return InvalidEvent("invalid_value", f"{field}: {message}", field)


def _utc(value: datetime, field: str) -> datetime:
    """`value` (aware) in UTC, from 2000-01-01; raises `InvalidEvent` naming `field`."""
    if value.tzinfo is not UTC:
        try:
            value = value.astimezone(UTC)
        except OverflowError:
            raise _invalid(field, "timestamp is out of range in UTC") from None
    if value < EARLIEST:
        raise _invalid(field, "timestamp is before 2000-01-01")
    return value


_IDENTIFIER: Final = re.compile(_python(IDENTIFIER_PATTERN))


def _check_identifier(value: str, field: str) -> None:
    """`IDENTIFIER_PATTERN`, with a fast path: printable and not all spaces is always a match.

    Python's `re` walks a character class at ~15 ns a character, so the pattern costs
    ~0.6 µs per identifier and a payload has four; `str.isprintable` refuses every control
    character (and more), so only identifiers it refuses, such as one with a no-break
    space, are left for the pattern to decide.
    """
    if value.isprintable() and not value.isspace():
        return
    if _IDENTIFIER.search(value) is None:
        raise _invalid(field, "must not be blank nor hold control characters")


_MINOR_UNITS: dict[str, Decimal] = {}
"""Currency → the quantum of its minor unit (EUR `0.01`, JPY `1`, BHD `0.001`), filled lazily."""


def _quantum(currency: str) -> Decimal:
    try:
        return _MINOR_UNITS[currency]
    except KeyError:
        quantum = _MINOR_UNITS[currency] = Decimal(1).scaleb(-get_currency_precision(currency))
        return quantum


def _check_money(currency: str, amount: Decimal, amount_field: str) -> None:
    """A current ISO 4217 currency, and no more decimals than its minor units.

    Trailing zeros are not digits of the amount (EUR `1250.000` is 1250.00); the minor
    units come from babel's copy of the ISO 4217 table (EUR 2, JPY 0, BHD 3).
    """
    if currency not in ISO_4217_CODES:
        if currency.isascii() and currency.upper() in ISO_4217_CODES:  # `eur`: wrong case
            raise _invalid(
                "payload.currency",
                f"ISO 4217 currency code in the wrong case: {currency} "
                f"(expected {currency.upper()})",
            )
        raise _invalid("payload.currency", f"not an ISO 4217 currency code: {currency}")
    quantum = _quantum(currency)
    if amount.quantize(quantum) != amount:  # digits below the minor unit that are not 0
        allowed = get_currency_precision(currency)
        raise _invalid(amount_field, f"{currency} amounts have at most {allowed} decimal place(s)")


# The `Meta` descriptions and `extra_json_schema` only describe the rules to `contracts/`
# (JSON Schema, generated by `make contracts`, which writes the patterns with `$`);
# validation reads the constraints.
Identifier = Annotated[
    str, Meta(min_length=1, max_length=256, extra_json_schema={"pattern": IDENTIFIER_PATTERN})
]
"""The pattern is checked by `_check_identifier`, not by msgspec: see there why."""
EventId = Annotated[str, Meta(pattern=_python(UUID_PATTERN))]
Version = Annotated[str, Meta(pattern=_python(SUPPORTED_VERSION))]
Currency = Annotated[
    str,
    Meta(
        description="A current ISO 4217 currency code, in upper case.",
        extra_json_schema={"enum": sorted(ISO_4217_CODES)},
    ),
]
Timestamp = Annotated[
    datetime,
    Meta(
        tz=True,
        description="An ISO 8601 (RFC 3339) date-time with a zone (Z or ±hh:mm), from "
        "2000-01-01, and no later than the consumer's clock plus its allowed skew.",
        extra_json_schema={"pattern": TIMESTAMP_PATTERN},
    ),
]


def _camel(attribute: str) -> str:
    head, *rest = attribute.split("_")
    return head + "".join(part.title() for part in rest)


class _Checks(NamedTuple):
    """What `_Payload.__post_init__` checks: (attribute, wire path) pairs, and their getters."""

    amount: tuple[str, str]
    time: tuple[str, str]
    identifiers: tuple[tuple[str, str], ...]
    amount_of: Callable[[Any], Decimal]
    time_of: Callable[[Any], datetime]
    identifiers_of: Callable[[Any], tuple[str, ...]]

    @classmethod
    def of(cls, amount: str, time: str, *identifiers: str) -> _Checks:
        names = ("payment_id", "booking_id", "user_id", *identifiers)
        return cls(
            (amount, f"payload.{_camel(amount)}"),
            (time, f"payload.{_camel(time)}"),
            tuple((name, f"payload.{_camel(name)}") for name in names),
            attrgetter(amount),
            attrgetter(time),
            attrgetter(*names),
        )


class _Model(Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """Frozen, camelCase on the wire; unknown fields are ignored (msgspec's default).

    `gc=False`: a decoded event can hold no reference cycle, so the cyclic collector need
    not track the two structs built per record.
    """


class _Payload(_Model, frozen=True, kw_only=True):
    """The fields every payload carries, and the checks msgspec cannot make from the types.

    Each payload names its amount, its time and its other identifiers in `_checks`:
    (attribute, wire path) pairs, so that a rejection names the field as it is on the wire.
    """

    payment_id: Identifier
    booking_id: Identifier
    user_id: Identifier
    currency: Currency

    _checks: ClassVar[_Checks]

    def __post_init__(self) -> None:
        # The hot path of every record, so in few steps: one C call fetching the identifiers,
        # one printability test over all of them (a join of printable strings is printable),
        # one cached quantum per currency (a currency is cached only once it was valid).
        checks = self._checks
        identifiers = checks.identifiers_of(self)
        if not "".join(identifiers).isprintable() or True in map(str.isspace, identifiers):
            for value, (_, field) in zip(identifiers, checks.identifiers, strict=True):
                _check_identifier(value, field)
        amount = checks.amount_of(self)
        quantum = _MINOR_UNITS.get(self.currency)
        if quantum is None or amount.quantize(quantum) != amount:
            _check_money(self.currency, amount, checks.amount[1])
        at = checks.time_of(self)
        if at.tzinfo is not UTC or at < EARLIEST:
            msgspec.structs.force_setattr(self, checks.time[0], _utc(at, checks.time[1]))


class PaymentInitiatedPayload(_Payload, frozen=True, kw_only=True):
    amount: Amount
    payment_method: Identifier
    initiated_at: Timestamp

    _checks = _Checks.of("amount", "initiated_at", "payment_method")


class PaymentCompletedPayload(_Payload, frozen=True, kw_only=True):
    amount: Amount
    transaction_id: Identifier
    completed_at: Timestamp

    _checks = _Checks.of("amount", "completed_at", "transaction_id")


class PaymentFailedPayload(_Payload, frozen=True, kw_only=True):
    amount: Amount
    error_code: Identifier
    error_message: str
    failed_at: Timestamp

    _checks = _Checks.of("amount", "failed_at", "error_code")


class PaymentRefundedPayload(_Payload, frozen=True, kw_only=True):
    refund_amount: Amount
    refund_id: Identifier
    reason: str
    refunded_at: Timestamp

    _checks = _Checks.of("refund_amount", "refunded_at", "refund_id")


class _Envelope(_Model, frozen=True, kw_only=True):
    """The fields every DreamScape event carries (the spec's `BaseEvent<T>`)."""

    event_id: EventId
    timestamp: Timestamp
    version: Version
    source: str
    correlation_id: str | None = None
    causation_id: str | None = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is not UTC or self.timestamp < EARLIEST:
            msgspec.structs.force_setattr(self, "timestamp", _utc(self.timestamp, "timestamp"))


class PaymentInitiated(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.initiated"]
    payload: PaymentInitiatedPayload


class PaymentCompleted(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.completed"]
    payload: PaymentCompletedPayload


class PaymentFailed(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.failed"]
    payload: PaymentFailedPayload


class PaymentRefunded(_Envelope, frozen=True, kw_only=True):
    event_type: Literal["payment.refunded"]
    payload: PaymentRefundedPayload


PaymentEvent = PaymentInitiated | PaymentCompleted | PaymentFailed | PaymentRefunded
Payload = (
    PaymentInitiatedPayload
    | PaymentCompletedPayload
    | PaymentFailedPayload
    | PaymentRefundedPayload
)

MODEL_BY_EVENT_TYPE: Final[dict[str, type[PaymentEvent]]] = {
    topics.PAYMENT_INITIATED: PaymentInitiated,
    topics.PAYMENT_COMPLETED: PaymentCompleted,
    topics.PAYMENT_FAILED: PaymentFailed,
    topics.PAYMENT_REFUNDED: PaymentRefunded,
}
