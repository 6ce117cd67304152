"""Dead-letter records: how a failed record is written, read back, and replayed.

A dead-letter record is the original record byte for byte (key, value, headers) plus `dlq.*`
headers that say what failed, where the record came from and when. Replay strips those
headers and sends the original bytes back to the original topic, so a replayed record is
indistinguishable from the first delivery except for one `dlq.replayed.from` header.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from common.records import Header, Inbound, OutboundRecord, Record

PREFIX = "dlq."
H_ERROR_TYPE = "dlq.error.type"
H_ERROR_MESSAGE = "dlq.error.message"
H_TOPIC = "dlq.original.topic"
H_PARTITION = "dlq.original.partition"
H_OFFSET = "dlq.original.offset"
H_TIMESTAMP = "dlq.original.timestamp"
H_GROUP = "dlq.consumer.group"
H_ATTEMPTS = "dlq.attempts"
H_FAILED_AT = "dlq.failed.at"
H_REPLAYED_FROM = "dlq.replayed.from"
H_TRACEPARENT = "dlq.traceparent"
"""The W3C traceparent of the span that dead-lettered the record (tracing on only)."""
H_REPLAYED_TRACEPARENT = "dlq.replayed.traceparent"
"""`H_TRACEPARENT` of the letter a record was replayed from: its next span links to it."""
H_VALUE_OMITTED = "dlq.value.omitted"
H_ORIGINAL_SIZE = "dlq.original.size"
H_ORIGINAL_SHA256 = "dlq.original.sha256"

MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The decision to dead-letter one record, and why."""

    record: Record
    inbound: Inbound | None
    error_type: str
    message: str
    attempts: int


def to_dlq_record(
    letter: DeadLetter,
    *,
    dlq_topic: str,
    group: str,
    failed_at: datetime,
    traceparent: bytes | None = None,
) -> OutboundRecord:
    """The record to write to the DLQ: original bytes plus the `dlq.*` headers.

    `traceparent` (tracing on) is the context of the span that processed the record; the
    record's own `traceparent`, if any, stays untouched with its other headers.
    """
    record = letter.record
    headers = _original_headers(record)
    headers += [
        (H_ERROR_TYPE, letter.error_type.encode()),
        (H_ERROR_MESSAGE, letter.message[:MAX_MESSAGE_CHARS].encode()),
        (H_TOPIC, record.topic.encode()),
        (H_PARTITION, str(record.partition).encode()),
        (H_OFFSET, str(record.offset).encode()),
        (H_TIMESTAMP, _create_time(record.timestamp_ms).encode()),
        (H_GROUP, group.encode()),
        (H_ATTEMPTS, str(letter.attempts).encode()),
        (H_FAILED_AT, failed_at.astimezone(UTC).isoformat().encode()),
    ]
    if traceparent is not None:
        headers.append((H_TRACEPARENT, traceparent))
    return OutboundRecord(
        topic=dlq_topic, key=record.key, value=record.value, headers=tuple(headers)
    )


def to_marker_record(
    letter: DeadLetter, *, dlq_topic: str, group: str, failed_at: datetime, refused: str
) -> OutboundRecord:
    """A letter for a record whose full letter the DLQ refused for good (`refused` says why).

    The value and the original headers are dropped (they are what made it too large); the
    `dlq.*` headers keep where the record is, so it can still be found and read from its
    original topic, plus its size and SHA-256 to check that it is the one.
    """
    full = to_dlq_record(letter, dlq_topic=dlq_topic, group=group, failed_at=failed_at)
    value = letter.record.value or b""
    digest = hashlib.sha256(value).hexdigest()
    headers = [(name, v) for name, v in full.headers if name.startswith(PREFIX)]
    headers += [
        (H_VALUE_OMITTED, refused.encode()),
        (H_ORIGINAL_SIZE, str(len(value)).encode()),
        (H_ORIGINAL_SHA256, digest.encode()),
    ]
    marker = {"dlqValueOmitted": refused, "originalSize": len(value), "sha256": digest}
    key = letter.record.key if letter.record.key is None or len(letter.record.key) <= 1024 else None
    return OutboundRecord(
        topic=dlq_topic, key=key, value=json.dumps(marker).encode(), headers=tuple(headers)
    )


def _create_time(timestamp_ms: int | None) -> str:
    """The original CreateTime as ISO 8601, or its raw number when no date can hold it.

    A producer sending microseconds (10**16) would otherwise make the letter, and so the
    record's only way out, fail for ever.
    """
    if timestamp_ms is None:
        return ""
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return str(timestamp_ms)


def _original_headers(record: Record) -> list[Header]:
    """`record`'s headers without the `dlq.*` ones a DLQ write or a replay added."""
    return [h for h in record.headers if not h[0].startswith(PREFIX)]


@dataclass(frozen=True, slots=True)
class DlqEntry:
    """A record read back from a DLQ topic, with its `dlq.*` headers decoded."""

    record: Record
    error_type: str
    error_message: str
    original_topic: str
    original_partition: int
    original_offset: int
    failed_at: str
    attempts: int
    group: str

    @property
    def ref(self) -> str:
        """`partition:offset` of the DLQ record: what `replay --only` selects."""
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def value_omitted(self) -> str | None:
        """Why the letter carries a marker instead of the record (None: it is the record)."""
        for name, value in self.record.headers:
            if name == H_VALUE_OMITTED:
                return (value or b"").decode("utf-8", "replace")
        return None

    @property
    def origin(self) -> tuple[str, int, int]:
        """(topic, partition, offset) of the record dead-lettered: the letter's identity."""
        return (self.original_topic, self.original_partition, self.original_offset)


def first_copies(entries: Sequence[DlqEntry]) -> list[DlqEntry]:
    """The first letter of each original record, in DLQ order.

    Letters are written at least once: a record redelivered after its partition was lost
    (a group coordinator failover that outlasts the session, say) before its offset was
    committed is dead-lettered again. Counting and replaying go by origin, not by letter.
    """
    seen: set[tuple[str, int, int]] = set()
    kept = []
    for entry in entries:
        if entry.origin not in seen:
            seen.add(entry.origin)
            kept.append(entry)
    return kept


def read_entry(record: Record) -> DlqEntry:
    """Decode the `dlq.*` headers of a DLQ record (missing ones read as empty)."""
    h = {name: (value or b"").decode("utf-8", "replace") for name, value in record.headers}
    return DlqEntry(
        record=record,
        error_type=h.get(H_ERROR_TYPE, ""),
        error_message=h.get(H_ERROR_MESSAGE, ""),
        original_topic=h.get(H_TOPIC, ""),
        original_partition=int(h.get(H_PARTITION) or -1),
        original_offset=int(h.get(H_OFFSET) or -1),
        failed_at=h.get(H_FAILED_AT, ""),
        attempts=int(h.get(H_ATTEMPTS) or 0),
        group=h.get(H_GROUP, ""),
    )


def to_replay_record(entry: DlqEntry, dlq_topic: str) -> OutboundRecord:
    """The original record again, for its original topic, marked with where it came from.

    The letter's `dlq.traceparent` goes along as `dlq.replayed.traceparent`, so the replayed
    record's span links to the span of its first life.
    """
    record = entry.record
    headers = _original_headers(record)
    headers.append((H_REPLAYED_FROM, f"{dlq_topic}:{entry.ref}".encode()))
    headers += [(H_REPLAYED_TRACEPARENT, v) for n, v in record.headers if n == H_TRACEPARENT]
    return OutboundRecord(
        topic=entry.original_topic, key=record.key, value=record.value, headers=tuple(headers)
    )


def select(
    entries: Iterable[DlqEntry], *, refs: Sequence[str] = (), error_types: Sequence[str] = ()
) -> list[DlqEntry]:
    """Entries matching any of `refs` (partition:offset) and any of `error_types`; empty = all."""
    return [
        e
        for e in entries
        if (not refs or e.ref in refs) and (not error_types or e.error_type in error_types)
    ]
