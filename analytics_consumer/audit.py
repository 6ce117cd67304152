"""The audit trail: every accepted payment event, as it was received, kept for its retention.

`analytics_audit` holds one row per accepted event (an eventId the inbox had not seen:
business-key duplicates and anomalies included, marked as such in `outcome`), written in the
transaction that counts the batch and stores its offsets (`store`), so an event is there
exactly once whatever crashes and redeliveries happen. Each row keeps:

* `envelope`: the record's value exactly as received (UTF-8 JSON text, whitespace and number
  spellings included): source, correlationId, causationId, metadata and any field this
  release ignores are all in it;
* the Kafka coordinates: `topic`, `kafka_partition`, `kafka_offset`, `record_key`, and
  `broker_ms`, the record's timestamp (CreateTime or LogAppendTime, as the topic is set);
* for finding rows: eventId, type, paymentId, source, correlation and causation ids, the
  event's occurrence time `occurred_ms` (the payload's `completedAt` ...: the time the
  report's days use), `recorded_ms` (this consumer's clock at the commit) and `outcome`.

On PostgreSQL the table is range-partitioned by `occurred_ms`, one partition per UTC month
(`analytics_audit_mYYYYMM`), so retention drops whole months; on SQLite it is a plain table
and retention deletes rows. This module is pure: the rows, the months and the export lines;
`audit_trail` does the database work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Final, NamedTuple

import msgspec
from sqlalchemy import BigInteger, Text
from sqlmodel import Field, SQLModel

from analytics_consumer.days import iso
from analytics_consumer.domain import Fact
from common.events import (
    PaymentCompleted,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
)
from common.records import Inbound

TABLE: Final = "analytics_audit"
PARTITION_PREFIX: Final = f"{TABLE}_m"
"""A month's partition is `analytics_audit_m202612` (PostgreSQL only)."""

OUTCOMES: Final[Mapping[str, str]] = {
    "new": "counted",
    "duplicate": "duplicate",
    "anomaly": "anomaly",
}
"""What the analytics did with an audited event, by its verdict: counted, or not (`dedup`)."""


class AnalyticsAudit(SQLModel, table=True):
    """One accepted event with its envelope and Kafka coordinates (see the module)."""

    __tablename__ = TABLE
    __table_args__ = ({"postgresql_partition_by": "RANGE (occurred_ms)"},)
    # No index but the key: every index is paid on each event written, and the documented
    # way in is by time (`audit export`). An auditor querying by paymentId often can add
    # `CREATE INDEX ON analytics_audit (payment_id)`, which covers every partition.

    occurred_ms: int = Field(primary_key=True, sa_type=BigInteger)
    event_id: str = Field(primary_key=True, max_length=64)
    event_type: str = Field(max_length=32)
    payment_id: str = Field(max_length=256)
    source: str = Field(sa_type=Text)
    correlation_id: str | None = Field(default=None, sa_type=Text)
    causation_id: str | None = Field(default=None, sa_type=Text)
    outcome: str = Field(max_length=16)
    topic: str = Field(max_length=255)
    kafka_partition: int
    kafka_offset: int = Field(sa_type=BigInteger)
    record_key: str | None = Field(default=None, sa_type=Text)
    broker_ms: int | None = Field(default=None, sa_type=BigInteger)
    recorded_ms: int = Field(sa_type=BigInteger)
    envelope: str = Field(sa_type=Text)


COLUMNS: Final = (
    "occurred_ms",
    "event_id",
    "event_type",
    "payment_id",
    "source",
    "correlation_id",
    "causation_id",
    "outcome",
    "topic",
    "kafka_partition",
    "kafka_offset",
    "record_key",
    "broker_ms",
    "recorded_ms",
    "envelope",
)
"""The order of `rows`' values, and of the columns `audit_trail.export` reads."""


def key_text(key: bytes | None) -> str | None:
    """A record key as text: UTF-8, with bytes that are not (and NUL) as `\\xNN` escapes."""
    if key is None:
        return None
    return searchable(key.decode("utf-8", "backslashreplace"))


def searchable(text: str | None) -> str | None:
    """`text` with NUL written `\\x00`: PostgreSQL's text type cannot hold NUL.

    Only for the columns copied out of the envelope for searching (`source` and the ids
    are free text, and JSON may spell NUL `\\u0000`); the envelope itself is JSON text,
    where a NUL can only be that escape, and is kept as received.
    """
    if text is None or "\x00" not in text:
        return text
    return text.replace("\x00", "\\x00")


def rows(
    accepted: Sequence[tuple[Inbound, Fact]], verdicts: Mapping[str, str], recorded_ms: int
) -> list[tuple[Any, ...]]:
    """The audit rows of a batch's accepted events, sorted by key (the order they lock in).

    `accepted` pairs each new event's record with its fact (for the occurrence time);
    `verdicts` is what the business keys made of it. The value is valid UTF-8: the parser
    accepted it as JSON.
    """
    built = []
    for inbound, fact in accepted:
        record, event = inbound.record, inbound.event
        built.append(
            (
                fact.at_ms,
                event.event_id,
                event.event_type,
                fact.payment_id,
                searchable(event.source),
                searchable(event.correlation_id),
                searchable(event.causation_id),
                OUTCOMES[verdicts.get(event.event_id, "new")],
                record.topic,
                record.partition,
                record.offset,
                key_text(record.key),
                record.timestamp_ms,
                recorded_ms,
                (record.value or b"").decode(),
            )
        )
    built.sort(key=_row_key)
    return built


def _row_key(row: tuple[Any, ...]) -> tuple[int, str]:
    return row[0], row[1]


# -- months --------------------------------------------------------------------------------


class Month(NamedTuple):
    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def start_ms(self) -> int:
        """The first millisecond of the month, UTC (epoch milliseconds)."""
        start = datetime(self.year, self.month, 1, tzinfo=UTC)
        return int(start.timestamp()) * 1000

    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def partition(self) -> str:
        return f"{PARTITION_PREFIX}{self.year:04d}{self.month:02d}"


def month_of_partition(name: str) -> Month | None:
    """The month of a partition named by `Month.partition`, or None for any other name."""
    digits = name.removeprefix(PARTITION_PREFIX)
    if digits == name or len(digits) != 6 or not digits.isdigit():
        return None
    return Month(int(digits[:4]), int(digits[4:]))


def occurred_months(events: Iterable[PaymentEvent]) -> set[Month]:
    """The UTC months of the events' occurrence times (`initiatedAt` ...), for partitions."""
    return {Month.of(_OCCURRED[type(event)](event.payload)) for event in events}


_OCCURRED: Final[Mapping[type[PaymentEvent], Callable[[Any], datetime]]] = {
    PaymentInitiated: attrgetter("initiated_at"),
    PaymentCompleted: attrgetter("completed_at"),
    PaymentFailed: attrgetter("failed_at"),
    PaymentRefunded: attrgetter("refunded_at"),
}


def retained_from(now: datetime, years: int) -> Month:
    """The oldest month kept by a retention of `years`: the month `years` before `now`.

    Whole months older than it go, so nothing is removed before it is `years` old.
    """
    now = now.astimezone(UTC)
    return Month(now.year - years, now.month)


# -- export --------------------------------------------------------------------------------

_JSON: Final = msgspec.json.Encoder()


def export_line(row: Sequence[Any]) -> bytes:
    """One JSON line (no newline) of an audit row in `COLUMNS` order (docs/analytics.md).

    The envelope is embedded as received with only the whitespace between its tokens
    removed (`msgspec.json.format`), so every value, and every number's spelling
    (`1250.00`), is the producer's.
    """
    values = dict(zip(COLUMNS, row, strict=True))
    head = {
        "eventId": values["event_id"],
        "eventType": values["event_type"],
        "paymentId": values["payment_id"],
        "occurredAt": iso(values["occurred_ms"]),
        "outcome": values["outcome"],
        "recordedAt": iso(values["recorded_ms"]),
        "kafka": {
            "topic": values["topic"],
            "partition": values["kafka_partition"],
            "offset": values["kafka_offset"],
            "key": values["record_key"],
            "timestamp": None if values["broker_ms"] is None else iso(values["broker_ms"]),
        },
    }
    envelope: bytes = msgspec.json.format(values["envelope"].encode(), indent=-1)
    return _JSON.encode(head)[:-1] + b',"envelope":' + envelope + b"}"
