"""The values that cross the boundary between the Kafka adapter and everything else.

`Record` is a plain copy of what the broker delivered, bytes untouched, so a record that
fails anywhere can be dead-lettered exactly as it arrived. `Inbound` pairs it with the
parsed event; handlers receive a sequence of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from common.events import PaymentEvent

Header = tuple[str, bytes | None]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


@dataclass(slots=True, eq=False)
class Record:
    """One consumed Kafka record. `timestamp_ms` is the broker/producer timestamp, or None.

    Read-only by convention, not `frozen`: a frozen dataclass is several times slower to
    build (docs/performance.md), and one is built per record on the hot path. Hashable by
    identity.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    timestamp_ms: int | None = None

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


@dataclass(slots=True, eq=False)
class Inbound:
    """A record whose value parsed into a payment event. Hashable by identity; read-only."""

    record: Record
    event: PaymentEvent


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A record to produce: used by the simulator, DLQ replay and tests."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
