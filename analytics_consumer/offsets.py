"""Kafka positions kept in the analytics database, and the fence against stale writers.

The database, not Kafka's committed offsets, says how far the analytics cover each partition:
a batch's effects and its partitions' next offsets commit in one transaction, and on
assignment the consumer resumes from the stored offsets. So a crash anywhere leaves effects
and positions in agreement, and nothing is counted twice or skipped.

The fence: each instance remembers, per partition it owns, the stored offset it started
from (or last wrote). It advances it with `UPDATE ... WHERE next_offset = :expected`; if
another instance moved it meanwhile (a rebalance this one has not noticed yet: a zombie),
nothing matches and the batch is resolved as follows:

* the stored offset already covers every record of the batch for that partition (someone
  counted them, or our own commit succeeded but its acknowledgement was lost): those
  records are skipped; if the stored offset is exactly where we were going, we adopt it;
* it moved forward into the batch (this instance is the rightful new owner, and the
  evicted one's commit landed after the assignment loaded the offset; or this instance is
  the zombie): the records before it are counted already, so the ones from it on are
  counted, with a second fenced advance from the re-read offset. Both instances then count
  disjoint ranges, and the conditional update serialises them;
* otherwise (it moved backwards, or to before the batch) the whole transaction rolls back
  with `OffsetFencedError`, a transient error: the run loop pauses and retries.

Records below the expected offset (redelivered after a retry or a rebalance) are skipped
without a query: the stored offset says they are counted. The inbox of eventIds remains the
second, independent guard against double counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn

import msgspec
import structlog
from sqlalchemy import text
from sqlmodel import Session

from common import bulk
from common.errors import TransientError
from common.records import Record, TopicPartition

_log = structlog.get_logger("analytics_consumer.offsets")

_SELECT = text(
    "SELECT next_offset FROM analytics_offset WHERE topic = :topic AND kafka_partition = :p"
)
_CREATE = text(
    "INSERT INTO analytics_offset (topic, kafka_partition, next_offset) "
    "VALUES (:topic, :p, 0) ON CONFLICT DO NOTHING"
)
_ADVANCE = text(
    "UPDATE analytics_offset SET next_offset = :next "
    "WHERE topic = :topic AND kafka_partition = :p AND next_offset = :expected"
)


_PAIRS = "json_array_elements(%s::json) AS v"
_LOCK = (
    "SELECT o.topic, o.kafka_partition, o.next_offset FROM analytics_offset AS o "  # noqa: S608
    f"JOIN {_PAIRS} ON o.topic = v->>0 AND o.kafka_partition = (v->>1)::int "
    "ORDER BY o.topic, o.kafka_partition FOR UPDATE OF o"
)
_MOVE = (
    "UPDATE analytics_offset AS o SET next_offset = (v->>2)::bigint "  # noqa: S608
    f"FROM {_PAIRS} WHERE o.topic = v->>0 AND o.kafka_partition = (v->>1)::int"
)
_JSON = msgspec.json.Encoder().encode


class OffsetFencedError(TransientError):
    """Another instance moved this partition's stored offset: this one is stale for it."""


@dataclass(frozen=True, slots=True)
class Span:
    """The offsets of one partition's records in a batch: first and last + 1."""

    first: int
    end: int


class OffsetBook:
    """The stored offsets this instance expects, and the fenced advance of them."""

    def __init__(self) -> None:
        self._expected: dict[TopicPartition, int] = {}

    def load(
        self, session: Session, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Stored offsets of newly assigned partitions (created at 0), now the expected ones."""
        found: dict[TopicPartition, int] = {}
        for tp in sorted(partitions):
            found[tp] = self._stored(session, tp)
        self._expected.update(found)
        return found

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop what we expected (before reloading, or when reloading failed)."""
        for tp in partitions:
            self._expected.pop(tp, None)

    def advance(
        self, session: Session, spans: Mapping[TopicPartition, Span]
    ) -> dict[TopicPartition, int]:
        """Fence and advance each partition; returns the offset from which its records count.

        Partitions absent from the result are wholly covered already: skip their records.
        Raises `OffsetFencedError` if another instance owns a partition's position.
        """
        counted: dict[TopicPartition, int] = {}
        ahead = {}
        for tp in sorted(spans):
            expected = self._expected.get(tp)
            if expected is None:  # no assignment callback seen: adopt the stored position
                expected = self._expected[tp] = self._stored(session, tp)
            if spans[tp].end > expected:
                ahead[tp] = expected
        if ahead and bulk.dialect_of(session) == "postgresql":
            return self._advance_locked(session, spans, ahead)
        for tp, expected in ahead.items():
            span = spans[tp]
            params = {"topic": tp.topic, "p": tp.partition, "expected": expected, "next": span.end}
            if session.execute(_ADVANCE, params).rowcount == 1:  # type: ignore[attr-defined]
                counted[tp] = expected
                continue
            stored = self._stored(session, tp)
            if stored >= span.end:  # all of it counted already: skip
                if stored == span.end:
                    self._expected[tp] = stored
                continue
            if expected < stored and span.first <= stored:
                # Moved forward into this batch (the previous owner's commit landed after we
                # loaded): [first, stored) is counted; count the rest from there, fenced again.
                params["expected"] = stored
                if session.execute(_ADVANCE, params).rowcount == 1:  # type: ignore[attr-defined]
                    _log.info("analytics.offset_adopted", **_positions(tp, expected, stored))
                    counted[tp] = stored
                    continue
                stored = self._stored(session, tp)
            _fenced(tp, expected, stored)
        return counted

    def _advance_locked(
        self,
        session: Session,
        spans: Mapping[TopicPartition, Span],
        ahead: Mapping[TopicPartition, int],
    ) -> dict[TopicPartition, int]:
        """PostgreSQL: the same decisions in two round trips whatever the partitions.

        The batch's offset rows are locked in key order and read (`FOR UPDATE` returns their
        latest committed values), the decisions made on what was read, and the rows advanced
        by one UPDATE. The locks are held to the commit, so nothing moves in between.
        """
        keys = _JSON([[tp.topic, tp.partition] for tp in ahead]).decode()
        stored = {
            TopicPartition(topic, partition): offset
            for topic, partition, offset in session.connection().exec_driver_sql(_LOCK, (keys,))
        }
        counted: dict[TopicPartition, int] = {}
        for tp, expected in ahead.items():
            span, found = spans[tp], stored.get(tp)
            if found is None:  # the row is gone: make it again, at 0, as `_stored` does
                found = self._stored(session, tp)
            if found == expected:
                counted[tp] = expected
            elif found >= span.end:  # all of it counted already: skip
                if found == span.end:
                    self._expected[tp] = found
            elif expected < found and span.first <= found:
                _log.info("analytics.offset_adopted", **_positions(tp, expected, found))
                counted[tp] = found
            else:
                _fenced(tp, expected, found)
        if counted:
            moves = _JSON([[tp.topic, tp.partition, spans[tp].end] for tp in counted]).decode()
            session.connection().exec_driver_sql(_MOVE, (moves,))
        return counted

    def committed(
        self, spans: Mapping[TopicPartition, Span], counted: Mapping[TopicPartition, int]
    ) -> None:
        """After the transaction committed: the written positions are the expected ones."""
        for tp in counted:
            self._expected[tp] = spans[tp].end

    @staticmethod
    def _stored(session: Session, tp: TopicPartition) -> int:
        params = {"topic": tp.topic, "p": tp.partition}
        session.execute(_CREATE, params)
        stored: int = session.execute(_SELECT, params).scalar_one()
        return stored


def _fenced(tp: TopicPartition, expected: int, stored: int) -> NoReturn:
    _log.warning("analytics.offset_fenced", **_positions(tp, expected, stored))
    raise OffsetFencedError(
        f"{tp.topic}[{tp.partition}]: stored offset is {stored}, expected {expected}"
    )


def _positions(tp: TopicPartition, expected: int, stored: int) -> dict[str, object]:
    return {"topic": tp.topic, "partition": tp.partition, "expected": expected, "stored": stored}


def spans_of(records: Iterable[Record]) -> dict[TopicPartition, Span]:
    """Per partition, the first offset and the offset after the last one."""
    low: dict[tuple[str, int], int] = {}
    high: dict[tuple[str, int], int] = {}
    for record in records:
        key, offset = (record.topic, record.partition), record.offset
        if offset < low.get(key, offset + 1):
            low[key] = offset
        if offset > high.get(key, -1):
            high[key] = offset
    return {TopicPartition(*key): Span(low[key], high[key] + 1) for key in low}
