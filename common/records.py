"""The values that cross the boundary between the Kafka adapter and everything else.

`Record` is a plain copy of what the broker delivered, bytes untouched, so a record that
fails anywhere can be dead-lettered exactly as it arrived. `Inbound` pairs it with the
parsed event; handlers receive a sequence of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import msgspec

from common.events import PaymentEvent

Header = tuple[str, bytes | None]


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class Record(msgspec.Struct, eq=False, gc=False):
    """One consumed Kafka record. `timestamp_ms` is the broker/producer timestamp, or None.

    A msgspec struct because one is built per record on the hot path, and its `__init__` is
    C: three times faster than a slotted dataclass's (docs/performance.md). Read-only by
    convention, not `frozen` (which costs more again); hashable by identity (`eq=False`);
    `gc=False`, as it holds only bytes, strings and numbers, so it can be in no cycle.
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


class Inbound(msgspec.Struct, eq=False, gc=False):
    """A record whose value parsed into a payment event. Hashable by identity; read-only.

    A msgspec struct for the reason `Record` is; no cycle can pass through it either.
    """

    record: Record
    event: PaymentEvent


@dataclass(frozen=True, slots=True)
class OutboundRecord:
    """A record to produce: used by the simulator, DLQ replay and tests."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
