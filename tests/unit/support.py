"""Builders the unit tests share: spec-example records and exact-decimal JSON."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import dreamscape_dev.testing
from common.parsing import parse_event
from common.records import Inbound, Record

EXAMPLES: Final = Path(dreamscape_dev.testing.__file__).parent / "spec_examples"


def inbound(
    name: str = "payment_completed",
    *,
    partition: int = 0,
    offset: int = 0,
    key: bytes | None = None,
) -> Inbound:
    """The spec's example `name` (e.g. "payment_failed") as a parsed record on its topic."""
    raw = (EXAMPLES / f"{name}.json").read_bytes()
    topic = "dreamscape." + name.replace("_", ".")
    return Inbound(Record(topic, partition, offset, key=key, value=raw), parse_event(raw, topic))


def example(event_type: str) -> dict[str, Any]:
    """The spec's printed example of `event_type`, decoded with exact decimals."""
    raw = (EXAMPLES / f"{event_type.replace('.', '_')}.json").read_bytes()
    document: dict[str, Any] = json.loads(raw, parse_float=Decimal)
    return document


def to_json(value: object) -> str:
    """Serialize like `json.dumps`, but write a `Decimal` as the bare number text it holds.

    Non-finite decimals are written as `NaN`/`Infinity`, which the decoder reads as numbers.
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
