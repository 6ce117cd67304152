"""From raw record bytes to a typed payment event, or one `InvalidEvent` with a reason.

The hot path is one call: msgspec decodes the bytes into the model of the topic's event
type (`common.events`), checking every field as it goes; amounts are read as exact decimals
and never pass through a binary float. Only a rejection costs more: the document is read
again, untyped, to say precisely why, envelope before payload (the eventType against the
topic, then the version, then the first bad field named by its wire path). Figures in
docs/performance.md.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import jiter
import msgspec

from common.errors import InvalidEvent, RejectionReason
from common.events import MODEL_BY_EVENT_TYPE, Amount, PaymentEvent, decode_hook
from common.topics import DEFAULT_TOPICS, EVENT_TYPES, Topics

SUPPORTED_MAJOR: Final = "1"
_VERSION = re.compile(r"([0-9]+)(\.[0-9]+){0,2}")

_DECODERS: Final[dict[str, msgspec.json.Decoder[Any]]] = {
    event_type: msgspec.json.Decoder(model, dec_hook=decode_hook, float_hook=Amount)
    for event_type, model in MODEL_BY_EVENT_TYPE.items()
}


class _Kind(msgspec.Struct):
    """Only the eventType: enough to pick the model when the topic does not say."""

    eventType: str  # noqa: N815 - the wire name


_KIND: Final = msgspec.json.Decoder(_Kind)


def parse_event(
    value: bytes | None,
    topic: str | None = None,
    *,
    topics: Topics = DEFAULT_TOPICS,
    not_after: datetime | None = None,
) -> PaymentEvent:
    """Parse and validate one record value read from `topic`.

    `topic` may be None (for instance for a file on disk); then only the eventType decides
    the model. `not_after` (the consumer's clock plus the skew it allows) rejects events
    from the future: the envelope's `timestamp` or the payload's time later than it is
    `invalid_value`. Raises `InvalidEvent` with one of the reasons in
    `common.errors.RejectionReason`.
    """
    if not value:
        raise InvalidEvent("empty_value", "the record has no value (null or tombstone)")
    expected = _expected_event_type(topics, topic) if topic is not None else None
    decoder = _DECODERS.get(expected or _kind(value))
    if decoder is None:  # no eventType this consumer has a model for: say which rule it breaks
        raise _explain(value, topic, topics, None)
    try:
        event: PaymentEvent = decoder.decode(value)
    except msgspec.ValidationError as exc:
        raise _explain(value, topic, topics, exc) from None
    except msgspec.DecodeError as exc:  # malformed: NaN and Infinity included, as in JSON
        raise InvalidEvent("not_json", _where(value, exc)) from None
    if not_after is not None:
        _check_not_after(event, not_after)
    return event


def _kind(value: bytes) -> str:
    """The document's eventType, read alone, or "" when it has none that is a string."""
    try:
        return _KIND.decode(value).eventType
    except msgspec.ValidationError:
        return ""
    except msgspec.DecodeError as exc:
        raise InvalidEvent("not_json", _where(value, exc)) from None


def _where(value: bytes, exc: msgspec.DecodeError) -> str:
    """The decode error with a line and column (jiter's words) for the dead-letter record."""
    try:
        jiter.from_json(value, float_mode="decimal")
    except ValueError as located:
        return str(located)
    return str(exc)  # jiter reads what JSON does not allow: NaN, Infinity


def _explain(
    value: bytes, topic: str | None, topics: Topics, error: msgspec.ValidationError | None
) -> InvalidEvent:
    """Why `value` was refused: the envelope's rules first, then the decoder's first error."""
    try:  # untyped, as leniently as the consumer reads: a document msgspec's error is about
        document = jiter.from_json(value, float_mode="decimal")
    except ValueError as exc:
        return InvalidEvent("not_json", str(exc))
    if type(document) is not dict:
        return InvalidEvent("not_an_object", f"the value is a JSON {type(document).__name__}")
    try:
        _event_type(document, topic, topics)
        _check_version(document)
    except InvalidEvent as rejection:
        return rejection
    if error is None:  # not reached: every eventType `_event_type` accepts has a model
        return InvalidEvent("unknown_event_type", "no model for this eventType", "eventType")
    return _rejection(error)


def _event_type(document: dict[str, Any], topic: str | None, topics: Topics) -> str:
    event_type: str = _required(document, "eventType", str)
    if event_type not in EVENT_TYPES:
        raise InvalidEvent("unknown_event_type", f"unknown eventType {event_type!r}", "eventType")
    expected = _expected_event_type(topics, topic) if topic is not None else None
    if expected is not None and expected != event_type:
        raise InvalidEvent(
            "event_type_mismatch",
            f"eventType {event_type!r} does not belong on topic {topic!r} (expected {expected!r})",
            "eventType",
        )
    return event_type


_EXPECTED: dict[tuple[str, str], str | None] = {}
"""(prefix, topic) → event type: a plain dict, as hashing the `Topics` dataclass is Python code."""


def _expected_event_type(topics: Topics, topic: str) -> str | None:
    key = (topics.prefix, topic)
    try:
        return _EXPECTED[key]
    except KeyError:
        expected = _EXPECTED[key] = topics.event_type_of(topic)
        return expected


#: The payload's own time, per event type: (attribute, wire name).
_PAYLOAD_TIME: Final = {
    "payment.initiated": ("initiated_at", "payload.initiatedAt"),
    "payment.completed": ("completed_at", "payload.completedAt"),
    "payment.failed": ("failed_at", "payload.failedAt"),
    "payment.refunded": ("refunded_at", "payload.refundedAt"),
}


def _check_not_after(event: PaymentEvent, not_after: datetime) -> None:
    if event.timestamp > not_after:
        raise InvalidEvent(
            "invalid_value", f"timestamp is later than {not_after.isoformat()}", "timestamp"
        )
    attribute, field = _PAYLOAD_TIME[event.event_type]
    if getattr(event.payload, attribute) > not_after:
        raise InvalidEvent("invalid_value", f"{field} is later than {not_after.isoformat()}", field)


def _check_version(document: dict[str, Any]) -> None:
    version = _required(document, "version", str)
    if version == "1.0":  # the common case, without a regex
        return
    match = _VERSION.fullmatch(version)
    if match is None:
        raise InvalidEvent("invalid_value", f"version {version!r} is not MAJOR[.MINOR]", "version")
    if match.group(1) != SUPPORTED_MAJOR:
        raise InvalidEvent(
            "unsupported_version",
            f"version {version!r}: this consumer reads major version {SUPPORTED_MAJOR}",
            "version",
        )


def _required(document: dict[str, Any], name: str, kind: type) -> Any:
    if name not in document:
        raise InvalidEvent("missing_field", f"{name} is missing", name)
    value = document[name]
    if type(value) is not kind:
        raise InvalidEvent("wrong_type", f"{name} must be a {kind.__name__}", name)
    return value


# msgspec's errors are one line: "<message> - at `$.payload.amount`" (no path at the top).
_AT: Final = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING: Final = re.compile(r"Object missing required field `(?P<name>[^`]+)`")
_TYPE: Final = re.compile(r"Expected `[^`]+`, got `[^`]+`")
_OURS: Final = re.compile(r"(?P<reason>wrong_type|invalid_value): (?P<detail>.*)", re.DOTALL)


def _rejection(exc: msgspec.ValidationError) -> InvalidEvent:
    """Map msgspec's error onto our reasons, naming the field in wire (camelCase) form."""
    at = _AT.fullmatch(str(exc))
    assert at is not None  # the pattern matches any text
    message, path = at["message"], (at["path"] or "").lstrip(".")
    reason: RejectionReason
    if missing := _MISSING.fullmatch(message):
        field = f"{path}.{missing['name']}" if path else missing["name"]
        return InvalidEvent("missing_field", f"{field} is missing", field)
    if ours := _OURS.fullmatch(message):  # raised by `events.decode_hook`
        reason, message = ours["reason"], ours["detail"]  # type: ignore[assignment]
    elif _TYPE.fullmatch(message):
        reason = "wrong_type"
    else:  # a pattern, a length, an RFC 3339 form, a zone, a literal
        reason = "invalid_value"
    return InvalidEvent(reason, f"{path}: {message}" if path else message, path or None)
