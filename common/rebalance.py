"""The consumer's group callbacks: what the run loop does when partitions come and go.

librdkafka calls these from inside a poll, so they can land in the middle of a batch: while
the loop polls between handler calls or waits out a retry. Each one is short and leaves the
bookkeeping to `common.partitions`:

* assigned: a service that keeps offsets with its state says where to start
  (`ConsumerSpec.starting_offsets`); then the partitions are ours (paused at once if the
  loop is waiting with the others paused);
* revoked: what is stored is committed first, so the next owner starts after it, then the
  partitions are forgotten: their records in hand are neither handled nor stored;
* lost (the session expired): forgotten without a commit, which could no longer succeed;
* a periodic commit came back, statistics came in: announced on the bus.

The listener is built before the consumer, which takes it: by then everything it calls exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from common.handlers import StartingOffsets
from common.kafka import RebalanceListener
from common.lifecycle import Bus, LagMeasured, PartitionsChanged
from common.partitions import Partitions
from common.records import TopicPartition


class Rebalance(RebalanceListener):
    """Applies one member's group changes to its `Partitions`, and announces them."""

    def __init__(
        self, partitions: Partitions, bus: Bus, starting_offsets: StartingOffsets | None
    ) -> None:
        self._partitions = partitions
        self._bus = bus
        self._starting_offsets = starting_offsets
        self.joined = False
        """The member has joined its group and received an assignment (readiness)."""

    def on_assign(self, partitions: Sequence[TopicPartition]) -> Mapping[TopicPartition, int]:
        if self._starting_offsets is None or not partitions:
            return {}
        return self._starting_offsets(partitions)

    def after_assign(self, partitions: Sequence[TopicPartition]) -> None:
        self.joined = True
        self._partitions.assign(partitions)
        self._bus.emit(PartitionsChanged("assigned", list(partitions)))

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self._partitions.commit("revoke")  # on failure the next owner re-reads the rest
        self._partitions.forget(partitions)
        self._bus.emit(PartitionsChanged("revoked", list(partitions)))

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None:
        self._partitions.forget(partitions)
        self._bus.emit(PartitionsChanged("lost", list(partitions)))

    def on_commit(self, offsets: Mapping[TopicPartition, int], error: str | None) -> None:
        self._partitions.committed_periodically(offsets, error)

    def on_stats(self, lag: Mapping[TopicPartition, int]) -> None:
        self._bus.emit(LagMeasured(lag))
