"""What the run loop needs of a Kafka consumer and producer: the seams tests fake.

`common.kafka` implements both over confluent-kafka; the unit tests drive the run loop with
in-memory fakes of the same shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from common.kafka import ClientError
from common.records import OutboundRecord, Record, TopicPartition


class ConsumerPort(Protocol):
    def subscribe(self, topics: Sequence[str]) -> None: ...
    def poll_batch(
        self, max_records: int, timeout_s: float
    ) -> tuple[list[Record], list[ClientError]]: ...
    def store_offsets(self, offsets: Mapping[TopicPartition, int]) -> None: ...
    def commit(self) -> Mapping[TopicPartition, int]: ...
    def pause(self, partitions: Sequence[TopicPartition]) -> None: ...
    def resume(self, partitions: Sequence[TopicPartition]) -> None: ...
    def seek(self, tp: TopicPartition, offset: int) -> None: ...
    def close(self) -> None: ...


class ProducerPort(Protocol):
    def send_confirmed(
        self, records: Sequence[OutboundRecord], timeout_s: float = ...
    ) -> Mapping[TopicPartition, int]: ...

    """Raises `TransientError` when unacknowledged, `ProduceRefusedError` for records refused
    for good; a retry with the same records never produces one twice."""
