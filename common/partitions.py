"""What this member owns, which of it is paused, what to read again, and what it stored.

A rebalance can land in the middle of a batch: the consumer calls back from inside poll,
and the run loop polls between handler calls and while it waits out a retry. So every
step of a batch asks the same question (is this record's partition still ours, and has it
been ours since the batch was polled?) and every pause must be undone with the records
fetched meanwhile read again. This module answers both in one place, and keeps the offsets
that follow from them:

* an offset is *stored* (librdkafka's `enable.auto.offset.store` is off) only after the run
  loop made its batch's outcome durable, and only for partitions owned throughout the batch:
  at-least-once;
* librdkafka commits stored offsets periodically; the loop commits synchronously on
  revocation (`common.rebalance`) and at shutdown, and a commit that fails is reported, never
  retried here: the next owner re-reads from the last good commit, which handlers being
  idempotent makes safe.

The group's callbacks (`common.rebalance`) change the assignment; the run loop pauses,
resumes and stores; the DLQ writer only asks `owned`. The consumer is bound once it exists:
it needs the rebalance listener, which needs this object.

Partitions are kept as `(topic, partition)` tuples: a `TopicPartition` is one, and the
hot path looks records up by their plain `(record.topic, record.partition)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from common.errors import TransientError
from common.lifecycle import Bus, ConsumerError, OffsetsCommitted, OffsetsStored
from common.ports import ConsumerPort
from common.records import Inbound, Record, TopicPartition


class Partitions:
    """Assignment, pause, rewind and offsets of one consumer; the consumer is driven through it."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._consumer: ConsumerPort | None = None
        self._assigned: set[tuple[str, int]] = set()  # TopicPartitions; plain tuples look up alike
        self._interrupted: set[tuple[str, int]] = set()  # revoked or lost during this batch
        self._paused = False
        self._left_paused: set[tuple[str, int]] = set()  # revoked or lost while paused
        self._rewind: dict[TopicPartition, int] = {}

    def bind(self, consumer: ConsumerPort) -> None:
        """The consumer these partitions are read from (built with the rebalance listener)."""
        self._consumer = consumer

    @property
    def _client(self) -> ConsumerPort:
        if self._consumer is None:
            raise RuntimeError("Partitions used before its consumer was bound")
        return self._consumer

    # -- ownership ----------------------------------------------------------------------

    def begin_batch(self) -> None:
        """A batch was polled: partitions revoked from here on were not ours throughout."""
        self._interrupted.clear()

    def owned(self) -> set[tuple[str, int]]:
        """Partitions ours since the batch in hand was polled (a rebalance may intervene).

        A partition revoked during a retry wait and assigned back in a later one is not: its
        position went back to the committed offset, so its records will come again.
        """
        if self._interrupted:
            return self._assigned - self._interrupted
        return self._assigned

    def live(self, batch: list[Inbound]) -> list[Inbound]:
        """The part of `batch` whose partitions are still ours."""
        owned = self.owned()
        return [i for i in batch if (i.record.topic, i.record.partition) in owned]

    def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions assigned: paused at once if the loop is waiting with the others paused,
        and resumed if they left this member paused.

        librdkafka keeps a partition's pause across revoke and reassign. A partition taken
        away while the loop waited out a retry is not in the `resume` that ends the wait, so
        without this it would come back paused, and never be read again by this member.
        """
        self._assigned.update(partitions)
        stale = [tp for tp in partitions if tp in self._left_paused]
        self._left_paused.difference_update(partitions)
        if self._paused:  # the `resume` ending this wait covers them with the rest
            self._client.pause(list(partitions))
        elif stale:
            self._client.resume(stale)

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Partitions revoked or lost: not ours, and nothing of theirs to read again."""
        self._assigned.difference_update(partitions)
        self._interrupted.update(partitions)
        if self._paused:
            self._left_paused.update(partitions)
        for tp in partitions:
            self._rewind.pop(tp, None)

    # -- pausing ------------------------------------------------------------------------

    def pause(self) -> None:
        """Pause every assigned partition (once: a pause lasts until `resume`)."""
        if not self._paused:
            self._client.pause(self._assignment())
            self._paused = True

    def resume(self) -> None:
        """Resume the partitions, and seek back to what was fetched while they were paused."""
        if not self._paused:
            return
        consumer = self._client
        consumer.resume(self._assignment())
        self._paused = False
        for tp, offset in self._rewind.items():
            if tp in self._assigned:
                consumer.seek(tp, offset)
        self._rewind.clear()

    def remember_rewind(self, records: list[Record]) -> None:
        """Records polled while paused (fetched before the pause took effect): read them again."""
        for record in records:
            self._rewind[record.tp] = min(self._rewind.get(record.tp, record.offset), record.offset)

    # -- offsets ------------------------------------------------------------------------

    def store(self, records: list[Record]) -> None:
        """Store each owned partition's next offset; a poll returns a partition's records in order."""
        latest: dict[tuple[str, int], int] = {}
        for record in records:
            latest[(record.topic, record.partition)] = record.offset + 1
        owned = self.owned()
        offsets = {TopicPartition(*tp): offset for tp, offset in latest.items() if tp in owned}
        if offsets:
            self._client.store_offsets(offsets)
            self._bus.emit(OffsetsStored(offsets))

    def commit(self, reason: str) -> Mapping[TopicPartition, int]:
        """Commit the stored offsets synchronously; returns what was committed ({} on failure)."""
        try:
            committed = self._client.commit()
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

    def _assignment(self) -> list[TopicPartition]:
        return [TopicPartition(*tp) for tp in sorted(self._assigned)]
