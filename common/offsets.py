"""Offset bookkeeping: store each partition's next offset once a batch is durable; commit.

The at-least-once rule lives here: an offset is *stored* (librdkafka's
`enable.auto.offset.store` is off) only after the run loop made its batch's outcome durable,
and only for partitions owned throughout the batch (`common.partitions`). librdkafka commits
stored offsets periodically; the loop commits synchronously on revocation and at shutdown,
through `commit`, and a commit that fails is reported, never retried here: the next owner
re-reads from the last good commit, which handlers being idempotent makes safe.
"""

from __future__ import annotations

from collections.abc import Mapping

from common.errors import TransientError
from common.lifecycle import Bus, ConsumerError, OffsetsCommitted, OffsetsStored
from common.partitions import Partitions
from common.ports import ConsumerPort
from common.records import Record, TopicPartition


class Offsets:
    """Stores and commits the offsets of one consumer, announcing each on the bus."""

    def __init__(self, consumer: ConsumerPort, bus: Bus, partitions: Partitions) -> None:
        self._consumer = consumer
        self._bus = bus
        self._partitions = partitions

    def store(self, records: list[Record]) -> None:
        """Store each partition's next offset; a poll returns a partition's records in order."""
        latest: dict[tuple[str, int], int] = {}
        for record in records:
            latest[(record.topic, record.partition)] = record.offset + 1
        owned = self._partitions.owned()
        offsets = {TopicPartition(*tp): offset for tp, offset in latest.items() if tp in owned}
        if offsets:
            self._consumer.store_offsets(offsets)
            self._bus.emit(OffsetsStored(offsets))

    def commit(self, reason: str) -> Mapping[TopicPartition, int]:
        """Commit the stored offsets synchronously; returns what was committed ({} on failure)."""
        try:
            committed = self._consumer.commit()
        except TransientError as exc:
            self._bus.emit(ConsumerError("COMMIT_FAILED", str(exc), fatal=False))
            return {}
        self._bus.emit(OffsetsCommitted(committed, reason))
        return committed

    def committed_periodically(
        self, offsets: Mapping[TopicPartition, int], error: str | None
    ) -> None:
        """librdkafka's periodic commit came back: announce it, or its failure."""
        if error is None:
            self._bus.emit(OffsetsCommitted(offsets, "periodic"))
        else:
            self._bus.emit(ConsumerError("COMMIT_FAILED", error, fatal=False))
