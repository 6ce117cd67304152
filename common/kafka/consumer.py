"""The consumer adapter: a group member with manual offset storage, and its rebalance callbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from common.errors import TransientError
from common.kafka import fatal
from common.kafka.client import (
    ClientError,
    build_client,
    from_kafka_tps,
    log,
    to_kafka_tp,
    to_record,
)
from common.records import Record, TopicPartition

CONSUMER = "consumer"


class RebalanceListener:
    """What the consumer adapter calls back into on group changes (see `Runner`)."""

    def on_assign(self, partitions: Sequence[TopicPartition]) -> Mapping[TopicPartition, int]:
        """Return explicit starting offsets for some partitions (others use the committed one)."""
        return {}

    def after_assign(self, partitions: Sequence[TopicPartition]) -> None: ...

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None: ...

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None: ...

    def on_commit(self, offsets: Mapping[TopicPartition, int], error: str | None) -> None: ...

    def on_stats(self, lag: Mapping[TopicPartition, int]) -> None: ...


class KafkaConsumer:
    """A consumer-group member with manual offset storage."""

    def __init__(self, config: Mapping[str, str], listener: RebalanceListener) -> None:
        self._listener = listener
        full: dict[str, Any] = {
            **config,
            "on_commit": self._on_commit,
            "stats_cb": self._on_stats,
            "logger": log,
        }
        self._consumer = build_client(Consumer, full)
        strategy = str(config.get("partition.assignment.strategy", "range,roundrobin"))
        # KIP-848 (`group.protocol=consumer`) assigns incrementally, whatever the strategy.
        self._incremental = "cooperative" in strategy or config.get("group.protocol") == "consumer"

    def subscribe(self, topics: Sequence[str]) -> None:
        self._consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def poll_batch(
        self, max_records: int, timeout_s: float
    ) -> tuple[list[Record], list[ClientError]]:
        """Up to `max_records` records, waiting at most `timeout_s`; errors come back separately.

        What has arrived, without waiting for a full batch: librdkafka's `consume(n, timeout)`
        returns only once it holds `n` messages or the timeout is over, so below full load
        every record waited up to `timeout_s` (POLL_TIMEOUT_SECONDS) for a batch that would
        not fill. So: take what is queued without waiting; if nothing is, wait for one
        record, then take what arrived with it. Under load the queue holds more than a batch
        and one call returns a full one; below it a batch is what came in while the last one
        was handled, and a record waits for the batch before it, not for a timeout.

        A fatal error comes back with `fatal` set and its cause as `code`
        (`FENCED_INSTANCE_ID`...): librdkafka reports it as `_FATAL` with `fatal()` false.
        """
        records: list[Record] = []
        errors: list[ClientError] = []
        consume = self._consumer.consume
        try:
            messages = consume(max_records, 0)
            if not messages and (messages := consume(1, timeout_s)) and max_records > 1:
                messages.extend(consume(max_records - 1, 0))
        except (KafkaException, SystemError) as exc:
            if (found := fatal.from_exception(CONSUMER, exc)) is None:
                raise
            raise found from exc
        for message in messages:
            error = message.error()
            if error is None:
                records.append(to_record(message))
            elif fatal.is_fatal(error):
                cause = fatal.from_error(CONSUMER, error)
                errors.append(ClientError(cause.code, cause.detail, True, message.topic()))
            elif error.code() != KafkaError._PARTITION_EOF:
                errors.append(
                    ClientError(error.name(), error.str(), error.fatal(), message.topic())
                )
        return records, errors

    def store_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Mark `offsets` (the next offset to read, per partition) for the next commit."""
        self._consumer.store_offsets(offsets=[to_kafka_tp(tp, off) for tp, off in offsets.items()])

    def commit(self) -> Mapping[TopicPartition, int]:
        """Commit the stored offsets synchronously; returns what was committed."""
        try:
            committed = self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._NO_OFFSET:
                return {}
            raise TransientError(f"commit failed: {exc.args[0].str()}") from exc
        return {TopicPartition(tp.topic, tp.partition): tp.offset for tp in committed or ()}

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        if partitions:
            self._consumer.pause([to_kafka_tp(tp) for tp in partitions])

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        if partitions:
            self._consumer.resume([to_kafka_tp(tp) for tp in partitions])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(to_kafka_tp(tp, offset))

    def close(self) -> None:
        self._consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        ours = from_kafka_tps(partitions)
        starts = self._listener.on_assign(ours)
        assignment = [to_kafka_tp(tp, starts.get(tp)) for tp in ours]
        if self._incremental:
            consumer.incremental_assign(assignment)
        else:
            consumer.assign(assignment)
        self._listener.after_assign(ours)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._listener.on_revoke(from_kafka_tps(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._listener.on_lost(from_kafka_tps(partitions))

    def _on_commit(self, error: KafkaError | None, partitions: list[KafkaTopicPartition]) -> None:
        if error is not None and error.code() == KafkaError._NO_OFFSET:
            return
        offsets = {
            TopicPartition(tp.topic, tp.partition): tp.offset for tp in partitions if tp.offset >= 0
        }
        self._listener.on_commit(offsets, None if error is None else error.str())

    def _on_stats(self, stats_json: str) -> None:
        self._listener.on_stats(consumer_lag(json.loads(stats_json)))


def consumer_lag(stats: Mapping[str, Any]) -> dict[TopicPartition, int]:
    """Per-partition `consumer_lag` from librdkafka's statistics (only partitions we consume)."""
    lag: dict[TopicPartition, int] = {}
    for topic, info in stats.get("topics", {}).items():
        for number, partition in info.get("partitions", {}).items():
            value = partition.get("consumer_lag", -1)
            if int(number) >= 0 and value >= 0:
                lag[TopicPartition(topic, int(number))] = value
    return lag


#: Produce errors that no retry can fix: the record itself is refused.
