"""The contract tests' tools: the checked-in schemas, validators, and events made bad on purpose."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator

from common.errors import InvalidEvent, RejectionReason
from common.parsing import parse_event
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.testing.builders import spec_path, to_json
from tests.contracts.conftest import CONTRACTS

SCHEMAS: Final = CONTRACTS / "schemas"


def event_schema(event_type: str) -> dict[str, Any]:
    """The checked-in JSON Schema of `event_type` (`payment.failed`), or of `envelope`."""
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{event_type}.schema.json").read_text())
    return schema


def validator(schema: dict[str, Any], *, draft: int = 2020) -> Validator:
    """A validator of the given draft that checks formats (date-time) too."""
    cls = Draft202012Validator if draft == 2020 else Draft7Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def errors(schema: dict[str, Any], document: object, *, draft: int = 2020) -> list[str]:
    """Why `document` does not match `schema` (empty: it matches)."""
    return [error.message for error in validator(schema, draft=draft).iter_errors(document)]


def strict_json(text: str | bytes) -> Any:
    """Decode as RFC 8259 JSON with exact decimals: `NaN`/`Infinity` are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_float=Decimal, parse_constant=refuse)


def read(path: Path) -> Any:
    """A JSON file, decoded strictly."""
    return strict_json(path.read_bytes())


Mutation = Callable[[dict[str, Any]], None]
NOW: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""The consumers' clock plus skew in these tests: the spec's examples are from December 2025."""


def example(event_type: str) -> dict[str, Any]:
    """The spec's printed example of `event_type`, with exact decimals."""
    document: dict[str, Any] = read(spec_path(event_type))
    return document


def parser_verdict(document: dict[str, Any], event_type: str) -> RejectionReason | None:
    """The reason the consumers give for `document` on `event_type`'s topic (None: accepted)."""
    try:
        parse_event(to_json(document).encode(), DEFAULT_TOPICS.for_event(event_type), not_after=NOW)
    except InvalidEvent as exc:
        return exc.reason
    return None


def setter(path: str, value: object) -> Mutation:
    """A mutation setting the field at the dotted wire `path` (`payload.amount`)."""
    *parents, name = path.split(".")

    def mutate(document: dict[str, Any]) -> None:
        for parent in parents:
            document = document[parent]
        document[name] = value

    return mutate


def deleter(path: str) -> Mutation:
    """A mutation deleting the field at the dotted wire `path`."""
    *parents, name = path.split(".")

    def mutate(document: dict[str, Any]) -> None:
        for parent in parents:
            document = document[parent]
        del document[name]

    return mutate


def mutated(event_type: str, mutate: Mutation) -> dict[str, Any]:
    """The spec's example of `event_type`, changed by `mutate`."""
    document = copy.deepcopy(example(event_type))
    mutate(document)
    return document


def both(*mutations: Mutation) -> Mutation:
    """The mutations applied in order."""

    def mutate(document: dict[str, Any]) -> None:
        for one in mutations:
            one(document)

    return mutate


BAD_EVENTS: Final[list[tuple[str, str, Mutation, RejectionReason]]] = [
    ("missing bookingId", "payment.initiated", deleter("payload.bookingId"), "missing_field"),
    ("missing eventId", "payment.completed", deleter("eventId"), "missing_field"),
    (
        "basic-format time",
        "payment.completed",
        setter("timestamp", "20251218T103215Z"),
        "invalid_value",
    ),
    (
        "time without seconds",
        "payment.completed",
        setter("payload.completedAt", "2025-12-18T10:32Z"),
        "invalid_value",
    ),
    ("amount as a string", "payment.completed", setter("payload.amount", "1250.00"), "wrong_type"),
    ("amount true", "payment.completed", setter("payload.amount", True), "wrong_type"),
    ("amount zero", "payment.initiated", setter("payload.amount", Decimal(0)), "invalid_value"),
    ("negative amount", "payment.failed", setter("payload.amount", Decimal("-5")), "invalid_value"),
    (
        "amount over 10^15",
        "payment.refunded",
        setter("payload.refundAmount", Decimal("1e16")),
        "invalid_value",
    ),
    (
        "lower-case currency",
        "payment.completed",
        setter("payload.currency", "eur"),
        "invalid_value",
    ),
    ("unknown currency", "payment.completed", setter("payload.currency", "ABC"), "invalid_value"),
    ("eventId not a UUID", "payment.completed", setter("eventId", "evt-123"), "invalid_value"),
    (
        "naive timestamp",
        "payment.completed",
        setter("timestamp", "2025-12-18T10:32:15"),
        "invalid_value",
    ),
    ("date alone", "payment.failed", setter("payload.failedAt", "2025-12-18"), "invalid_value"),
    (
        "Unix time as a string",
        "payment.completed",
        setter("timestamp", "1734517800"),
        "invalid_value",
    ),
    ("Unix time as a number", "payment.completed", setter("timestamp", 1734517800), "wrong_type"),
    (
        "before 2000",
        "payment.initiated",
        setter("payload.initiatedAt", "1999-12-31T23:59:59Z"),
        "invalid_value",
    ),
    ("version 2.0", "payment.completed", setter("version", "2.0"), "unsupported_version"),
    ("version v1", "payment.completed", setter("version", "v1"), "invalid_value"),
    (
        "unknown eventType",
        "payment.completed",
        setter("eventType", "payment.disputed"),
        "unknown_event_type",
    ),
    ("empty paymentId", "payment.completed", setter("payload.paymentId", ""), "invalid_value"),
    ("blank paymentId", "payment.completed", setter("payload.paymentId", "   "), "invalid_value"),
    (
        "CR LF in userId",
        "payment.completed",
        setter("payload.userId", "usr_1\r\nBcc: x"),
        "invalid_value",
    ),
    ("NUL in refundId", "payment.refunded", setter("payload.refundId", "r\x00"), "invalid_value"),
    (
        "identifier of 257 characters",
        "payment.failed",
        setter("payload.errorCode", "e" * 257),
        "invalid_value",
    ),
    ("payload a list", "payment.completed", setter("payload", []), "wrong_type"),
    ("correlationId a number", "payment.completed", setter("correlationId", 5), "wrong_type"),
    ("errorMessage null", "payment.failed", setter("payload.errorMessage", None), "wrong_type"),
]
