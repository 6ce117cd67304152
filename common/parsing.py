"""From raw record bytes to a typed payment event, or one `InvalidEvent` with a reason.

Two steps, as the envelope is checked before the payload: first the JSON document and the
envelope fields that decide how to read the rest (eventType against the topic, version), then
the typed model of that event type. JSON is decoded with `jiter` in decimal mode, so amounts
never pass through a binary float, and it is faster than `json.loads` (figures in
docs/performance.md).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import jiter
from pydantic import ValidationError

from common.errors import InvalidEvent, RejectionReason
from common.events import MODEL_BY_EVENT_TYPE, PaymentEvent
from common.topics import DEFAULT_TOPICS, EVENT_TYPES, Topics

SUPPORTED_MAJOR: Final = "1"
_VERSION = re.compile(r"([0-9]+)(\.[0-9]+){0,2}")

_TYPE_ERRORS: Final = frozenset(
    {
        "string_type",
        "dict_type",
        "decimal_type",
        "datetime_type",
        "model_type",
        "model_attributes_type",
        "int_type",
        "bool_type",
        "list_type",
        "none_required",
    }
)


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
    try:
        document = jiter.from_json(value, float_mode="decimal", cache_mode="keys")
    except ValueError as exc:
        raise InvalidEvent("not_json", str(exc)) from None
    if type(document) is not dict:
        raise InvalidEvent("not_an_object", f"the value is a JSON {type(document).__name__}")
    model = _model_for(document, topic, topics)
    try:  # the model checks eventType and version itself: one call on the hot path
        event = model.model_validate(document)
    except ValidationError as exc:
        error = exc
    else:
        if not_after is not None:
            _check_not_after(event, not_after)
        return event
    # Rejections only: say precisely why, envelope before payload.
    _event_type(document, topic, topics)
    _check_version(document)
    raise _rejection(error)


def _model_for(document: dict[str, Any], topic: str | None, topics: Topics) -> type[PaymentEvent]:
    expected = _expected_event_type(topics, topic) if topic is not None else None
    if expected is None:
        expected = _event_type(document, topic, topics)
    return MODEL_BY_EVENT_TYPE[expected]


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


def _rejection(exc: ValidationError) -> InvalidEvent:
    """Map pydantic's first error onto our reasons, naming the field in wire (camelCase) form."""
    error = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    reason: RejectionReason
    if kind == "missing":
        reason = "missing_field"
    elif kind in _TYPE_ERRORS or kind.endswith("_type"):
        reason = "wrong_type"
    else:
        reason = "invalid_value"
    return InvalidEvent(reason, f"{field}: {error['msg']}", field)
