"""The AsyncAPI 3.0 document of the payment events, built from the runtime's own names.

Channels, consumer groups and dead-letter topics come from `common.topics` (so from what the
runtime computes), the `dlq.*` headers from the constants `common.dlq` writes, the payloads
from the JSON Schemas generated beside this document. Only the prose is written here.
`dreamscape_dev.contracts` renders it to `contracts/asyncapi.yaml`.
"""

from __future__ import annotations

from typing import Any, Final, get_args

from common import dlq
from common.errors import RejectionReason
from common.events import IDENTIFIER_PATTERN
from common.parsing import SUPPORTED_MAJOR
from common.topics import (
    DEFAULT_TOPICS,
    EVENT_TYPES,
    GROUP_ANALYTICS,
    GROUP_NOTIFICATION,
    GROUP_VOYAGE,
)
from dreamscape_dev.testing.builders import spec_example

ASYNCAPI_VERSION: Final = "3.0.0"
KAFKA_BINDING: Final = "0.5.0"
GROUPS: Final = (GROUP_VOYAGE, GROUP_NOTIFICATION, GROUP_ANALYTICS)

_DIGITS: Final = {"type": "string", "pattern": "^[0-9]+$"}

LETTER_HEADERS: Final[dict[str, dict[str, Any]]] = {
    dlq.H_ERROR_TYPE: {
        "type": "string",
        "minLength": 1,
        "description": "Why the record was dead-lettered: a parser rejection ("
        + ", ".join(f"`{r}`" for r in get_args(RejectionReason))
        + "), `permanent` or a handler's own type, or `unexpected:<ExceptionType>` after "
        "`MAX_ATTEMPTS` tries.",
    },
    dlq.H_ERROR_MESSAGE: {
        "type": "string",
        "maxLength": dlq.MAX_MESSAGE_CHARS,
        "description": "The detail of the failure, cut to its first characters.",
    },
    dlq.H_TOPIC: {"type": "string", "description": "The topic the record was read from."},
    dlq.H_PARTITION: _DIGITS | {"description": "Its partition."},
    dlq.H_OFFSET: _DIGITS | {"description": "Its offset."},
    dlq.H_TIMESTAMP: {
        "type": "string",
        "description": "Its CreateTime as an ISO 8601 UTC date-time, the raw milliseconds "
        "when no date can hold them, or empty when the record had none.",
    },
    dlq.H_GROUP: {"type": "string", "description": "The consumer group that gave up on it."},
    dlq.H_ATTEMPTS: _DIGITS | {"description": "How many times it was tried."},
    dlq.H_FAILED_AT: {
        "type": "string",
        "format": "date-time",
        "description": "When it was dead-lettered (ISO 8601, UTC).",
    },
}
"""The headers every letter carries, besides the original record's own."""

MARKER_HEADERS: Final[dict[str, dict[str, Any]]] = {
    dlq.H_VALUE_OMITTED: {
        "type": "string",
        "description": "Why the letter could not carry the record (`MSG_SIZE_TOO_LARGE`...).",
    },
    dlq.H_ORIGINAL_SIZE: _DIGITS | {"description": "The original value's size in bytes."},
    dlq.H_ORIGINAL_SHA256: {
        "type": "string",
        "pattern": "^[0-9a-f]{64}$",
        "description": "The original value's SHA-256, in hex.",
    },
}
"""The headers a marker letter adds (it keeps the `dlq.*` ones, drops the record's own)."""

_TRACEPARENT: Final = {
    "type": "string",
    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
}
"""A W3C trace context `traceparent` (version-traceid-parentid-flags)."""

LETTER_TRACE_HEADER: Final = {
    dlq.H_TRACEPARENT: _TRACEPARENT
    | {
        "description": "With tracing on only: the context of the span that dead-lettered the "
        "record (the record's own `traceparent`, if any, stays among its headers)."
    }
}
"""An optional letter header: absent when tracing is off (docs/operations.md, Tracing)."""

REPLAY_HEADER: Final = {
    dlq.H_REPLAYED_FROM: {
        "type": "string",
        "pattern": "^.+:[0-9]+:[0-9]+$",
        "description": "Set by `dreamscape dlq replay` only: `<dlq topic>:<partition>:<offset>` "
        "of the letter this record was replayed from.",
    },
    dlq.H_REPLAYED_TRACEPARENT: _TRACEPARENT
    | {
        "description": "Set by `dreamscape dlq replay` when the letter carried "
        "`dlq.traceparent`: the replayed record's span links to its first life."
    },
}


def _camel(name: str) -> str:
    """`payment.initiated` → `paymentInitiated`, `voyage-service` → `voyageService`."""
    words = name.replace("-", ".").split(".")
    return words[0] + "".join(w.capitalize() for w in words[1:])


def _dlq_channel(group: str) -> str:
    """`voyage-service` → `dlqVoyageService`."""
    name = _camel(group)
    return f"dlq{name[0].upper()}{name[1:]}"


def _payment_message(event_type: str, schema_path: str, summary: str) -> dict[str, Any]:
    example = spec_example(event_type)  # amounts keep their text: 1250.00
    return {
        "name": event_type,
        "title": event_type,
        "summary": summary,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/paymentHeaders"},
        "payload": {"$ref": f"./{schema_path}"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "pattern": IDENTIFIER_PATTERN,
                    "description": "The payload's paymentId, UTF-8: every event of one payment "
                    "lands on one partition, in order. Consumers do not read it.",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "examples": [
            {
                "name": "spec",
                "summary": "The example printed in the payment events documentation.",
                "payload": example,
            }
        ],
    }


def _components(schema_paths: dict[str, str], summaries: dict[str, str]) -> dict[str, Any]:
    messages = {_camel(t): _payment_message(t, schema_paths[t], summaries[t]) for t in EVENT_TYPES}
    messages["deadLetter"] = {
        "name": "dead letter",
        "summary": "A record a consumer gave up on: its key, value and headers byte for byte, "
        "plus `dlq.*` headers saying what failed and where the record came from.",
        "contentType": "application/octet-stream",
        "headers": {"$ref": "#/components/schemas/deadLetterHeaders"},
        "payload": {
            "description": "The original value, untouched: usually a payment event, but any "
            "bytes the consumer could not read (that is often why it is here)."
        },
        "bindings": {
            "kafka": {
                "key": {"description": "The original record's key, untouched."},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }
    messages["deadLetterMarker"] = {
        "name": "dead letter marker",
        "summary": "Written instead of a letter the DLQ refused for good (too large): the "
        "record itself stays on its original topic at `dlq.original.*`.",
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/deadLetterMarkerHeaders"},
        "payload": {"$ref": "#/components/schemas/deadLetterMarker"},
    }
    letter = {"type": "object", "required": list(LETTER_HEADERS), "properties": LETTER_HEADERS}
    return {
        "messages": messages,
        "schemas": {
            "paymentHeaders": {
                "type": "object",
                "description": "Headers are not part of the contract consumers read: the "
                "producer's (`content-type`, `event-type`) pass through untouched.",
                "properties": {
                    "content-type": {"type": "string", "examples": ["application/json"]},
                    "event-type": {"type": "string", "examples": list(EVENT_TYPES)},
                    **REPLAY_HEADER,
                },
            },
            "deadLetterHeaders": letter
            | {
                "description": "The `dlq.*` headers; the original record's headers follow.",
                "properties": LETTER_HEADERS | LETTER_TRACE_HEADER,
            },
            "deadLetterMarkerHeaders": {
                "type": "object",
                "description": "The letter's `dlq.*` headers, without the record's own.",
                "required": [*LETTER_HEADERS, *MARKER_HEADERS],
                "properties": LETTER_HEADERS | MARKER_HEADERS,
            },
            "deadLetterMarker": {
                "type": "object",
                "required": ["dlqValueOmitted", "originalSize", "sha256"],
                "properties": {
                    "dlqValueOmitted": MARKER_HEADERS[dlq.H_VALUE_OMITTED],
                    "originalSize": {"type": "integer", "minimum": 0},
                    "sha256": MARKER_HEADERS[dlq.H_ORIGINAL_SHA256],
                },
            },
        },
    }


def _channels(summaries: dict[str, str]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        channels[_camel(event_type)] = {
            "address": DEFAULT_TOPICS.for_event(event_type),
            "title": event_type,
            "description": f"{summaries[event_type]} Keyed by paymentId. Under `TOPIC_PREFIX` "
            "the address is that prefix followed by this name.",
            "messages": {_camel(event_type): _ref("components/messages", _camel(event_type))},
        }
    for group in GROUPS:
        channels[_dlq_channel(group)] = {
            "address": DEFAULT_TOPICS.dlq(group),
            "title": f"{group} dead letters",
            "description": f"Where `{group}` dead-letters what it cannot process (`DLQ_TOPIC` "
            "overrides it; `TOPIC_PREFIX` prefixes it). Read with `dreamscape dlq list`, sent "
            "back with `dreamscape dlq replay`.",
            "messages": {
                "deadLetter": _ref("components/messages", "deadLetter"),
                "deadLetterMarker": _ref("components/messages", "deadLetterMarker"),
            },
        }
    return channels


def _operations() -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for group in GROUPS:
        for event_type in EVENT_TYPES:
            name = _camel(event_type)
            operations[f"{_camel(group)}Receives{name[0].upper()}{name[1:]}"] = {
                "action": "receive",
                "channel": _ref("channels", name),
                "summary": f"`{group}` consumes `{event_type}`.",
                "bindings": {
                    "kafka": {
                        "groupId": {
                            "type": "string",
                            "enum": [group],
                            "description": "The default; `KAFKA_GROUP_ID` overrides it "
                            "(and with it the name of the group's DLQ).",
                        },
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
        operations[f"{_camel(group)}DeadLetters"] = {
            "action": "send",
            "channel": _ref("channels", _dlq_channel(group)),
            "summary": f"`{group}` writes a letter for each record it gives up on.",
        }
    return operations


def _ref(section: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/{section}/{name}"}


def asyncapi_document(schema_paths: dict[str, str], summaries: dict[str, str]) -> dict[str, Any]:
    """The AsyncAPI document; `schema_paths` maps event types to their schema, relative to it."""
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "DreamScape payment events",
            "version": f"{SUPPORTED_MAJOR}.0.0",
            "description": "The events payment-service publishes and how the DreamScape "
            "payment consumers read them: four payment topics, three consumer groups, one "
            f"dead-letter topic per group. Consumers read every `{SUPPORTED_MAJOR}.x` version "
            "and ignore unknown fields. Generated by `make contracts`; see docs/contracts.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Set per deployment with `KAFKA_BOOTSTRAP_SERVERS`.",
            }
        },
        "channels": _channels(summaries),
        "operations": _operations(),
        "components": _components(schema_paths, summaries),
    }
