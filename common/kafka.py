"""The one module that imports `confluent_kafka`.

Everything else works on `Record`s and `OutboundRecord`s. The adapters here are thin: they
translate client messages, errors and callbacks into the project's types, and keep the
librdkafka details (rebalance protocol, statistics JSON, delivery reports) in one place.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from common.errors import ProduceRefusedError, TransientError
from common.records import OutboundRecord, Record, TopicPartition

_log = logging.getLogger("librdkafka")
T = TypeVar("T")


class KafkaConfigError(Exception):
    """librdkafka refused the configuration (unknown property, bad value)."""


@dataclass(frozen=True, slots=True)
class ClientError:
    """An error the client delivered in place of a record."""

    code: str
    message: str
    fatal: bool
    topic: str | None

    @property
    def unknown_topic(self) -> bool:
        return self.code == "UNKNOWN_TOPIC_OR_PART"


def to_record(message: Message) -> Record:
    """Copy a client message into a `Record`, bytes untouched."""
    kind, timestamp = message.timestamp()
    headers = message.headers()
    return Record(
        message.topic(),  # type: ignore[arg-type]  # never None on a consumed record
        message.partition(),  # type: ignore[arg-type]
        message.offset(),  # type: ignore[arg-type]
        message.key(),  # bytes: no deserializer is configured
        message.value(),
        tuple(headers) if headers else (),  # type: ignore[arg-type]
        timestamp if kind != 0 else None,  # 0 = TIMESTAMP_NOT_AVAILABLE
    )


def _tp(tp: TopicPartition, offset: int | None = None) -> KafkaTopicPartition:
    if offset is None:
        return KafkaTopicPartition(tp.topic, tp.partition)
    return KafkaTopicPartition(tp.topic, tp.partition, offset)


def _ours(tps: Iterable[KafkaTopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in tps]


def _build(factory: Callable[[dict[str, Any]], T], config: Mapping[str, Any]) -> T:
    try:
        return factory(dict(config))
    except (KafkaException, ValueError, TypeError) as exc:
        detail = exc.args[0] if exc.args else exc
        message = detail.str() if isinstance(detail, KafkaError) else str(detail)
        raise KafkaConfigError(f"{message} (KAFKA_* settings name librdkafka properties)") from None


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
            "logger": _log,
        }
        self._consumer = _build(Consumer, full)
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
        """Up to `max_records` records, waiting at most `timeout_s`; errors come back separately."""
        records: list[Record] = []
        errors: list[ClientError] = []
        for message in self._consumer.consume(max_records, timeout_s):
            error = message.error()
            if error is None:
                records.append(to_record(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                errors.append(
                    ClientError(error.name(), error.str(), error.fatal(), message.topic())
                )
        return records, errors

    def store_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Mark `offsets` (the next offset to read, per partition) for the next commit."""
        self._consumer.store_offsets(offsets=[_tp(tp, off) for tp, off in offsets.items()])

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
            self._consumer.pause([_tp(tp) for tp in partitions])

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        if partitions:
            self._consumer.resume([_tp(tp) for tp in partitions])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(_tp(tp, offset))

    def close(self) -> None:
        self._consumer.close()

    def _on_assign(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        ours = _ours(partitions)
        starts = self._listener.on_assign(ours)
        assignment = [_tp(tp, starts.get(tp)) for tp in ours]
        if self._incremental:
            consumer.incremental_assign(assignment)
        else:
            consumer.assign(assignment)
        self._listener.after_assign(ours)

    def _on_revoke(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._listener.on_revoke(_ours(partitions))

    def _on_lost(self, consumer: Consumer, partitions: list[KafkaTopicPartition]) -> None:
        self._listener.on_lost(_ours(partitions))

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
PERMANENT_PRODUCE_ERRORS: frozenset[int] = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
    }
)


_MAX_CARRIED = 10_000


class KafkaProducer:
    """A durable producer: `acks=all`, idempotent, and every send confirmed before returning.

    A send that fails part-way is retried by calling `send_confirmed` again with the same
    records: the ones already acknowledged are not produced again, and the ones still in
    flight are waited for rather than produced a second time, so a retry never writes a
    record twice.
    """

    def __init__(self, config: Mapping[str, str]) -> None:
        self._producer = _build(Producer, {**config, "logger": _log})
        #: From calls that did not succeed entirely, for their retries: per record, the
        #: outcome cells of its copies still "pending" (in flight) or "delivered".
        self._carried: dict[OutboundRecord, list[list[Any]]] = {}

    def send_confirmed(
        self, records: Sequence[OutboundRecord], timeout_s: float = 30.0
    ) -> dict[TopicPartition, int]:
        """Produce `records` and wait for the broker's acknowledgement of every one.

        Returns, per partition written, the offset after its last record: the true end of
        what was published, which brokers' watermarks may report late. Raises
        `ProduceRefusedError` naming the records refused for good (too large, invalid) once
        every other one is acknowledged, and `TransientError` if any record is neither
        acknowledged nor refused in time: the caller retries, it never assumes the write
        happened.
        """
        carried = self._carried
        if len(carried) > _MAX_CARRIED:  # retries abandoned (partitions moved on): forget them
            carried.clear()
        cells: list[list[Any]] = []  # per record: [state, ...], updated by its delivery report
        for record in records:
            earlier = carried.get(record)
            if earlier:  # this call is a retry: acknowledged already, or still in flight
                cells.append(earlier.pop(0))
                if not earlier:
                    del carried[record]
                continue
            cell: list[Any] = ["pending"]
            cells.append(cell)
            try:
                self._produce(record, _reporter(cell))
            except _Refused as local:
                cell[:] = ["refused", local.code]
        remaining = self._producer.flush(timeout_s)
        unfinished = [c for c in cells if c[0] in ("pending", "failed")]
        refused = {n: str(c[1]) for n, c in enumerate(cells) if c[0] == "refused"}
        if remaining or unfinished or refused:
            for record, cell in zip(records, cells, strict=True):
                if cell[0] in ("pending", "delivered"):
                    carried.setdefault(record, []).append(cell)
        if remaining or unfinished:
            failed = [c[1] for c in cells if c[0] == "failed"]
            raise TransientError(
                f"{len(unfinished)} record(s) unacknowledged or failed: {failed[:1]}"
            )
        if refused:
            raise ProduceRefusedError(refused)
        ends: dict[TopicPartition, int] = {}
        for _, tp, end in cells:
            ends[tp] = max(ends.get(tp, 0), end)
        return ends

    def send(self, records: Iterable[OutboundRecord]) -> None:
        """Produce without waiting (bulk publishing); call `flush()` to wait for delivery."""
        for record in records:
            self._produce(record, None)

    def flush(self, timeout_s: float = 30.0) -> int:
        return int(self._producer.flush(timeout_s))

    def _produce(self, record: OutboundRecord, on_delivery: Callable[..., None] | None) -> None:
        """Hand one record to librdkafka; `_Refused` if it rejects it locally for good."""
        deadline = time.monotonic() + 60.0
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers) or None,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then go on
                if time.monotonic() > deadline:
                    raise TransientError("the producer's queue stayed full for 60 s") from None
                self._producer.poll(0.1)
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in PERMANENT_PRODUCE_ERRORS:
                    raise _Refused(error.name()) from exc
                raise TransientError(f"produce to {record.topic} failed: {exc}") from exc


def _reporter(cell: list[Any]) -> Callable[[KafkaError | None, Message], None]:
    """A delivery callback that writes one record's outcome into `cell`."""

    def report(error: KafkaError | None, message: Message) -> None:
        if error is None:
            tp = TopicPartition(str(message.topic()), int(message.partition() or 0))
            cell[:] = ["delivered", tp, int(message.offset() or 0) + 1]
        elif error.code() in PERMANENT_PRODUCE_ERRORS:
            cell[:] = ["refused", error.name()]
        else:
            cell[:] = ["failed", error.str()]

    return report


class _Refused(Exception):  # noqa: N818 - internal: librdkafka refused a record locally
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class GroupOffsets:
    """A consumer group's committed offsets, read by a client that never joins the group."""

    def __init__(self, config: Mapping[str, str], group: str) -> None:
        self.group = group
        self._consumer = _build(
            Consumer, {**config, "group.id": group, "enable.auto.commit": "false", "logger": _log}
        )

    def read(
        self, partitions: Iterable[TopicPartition], timeout_s: float = 5.0
    ) -> dict[TopicPartition, int]:
        """The next offset the group will read per partition (0 where it committed none).

        Raises `TransientError` when the group coordinator does not answer in time.
        """
        asked = [_tp(tp) for tp in partitions]
        try:
            answer = self._consumer.committed(asked, timeout=timeout_s)
        except KafkaException as exc:
            raise TransientError(f"committed offsets of {self.group}: {exc}") from exc
        return {TopicPartition(tp.topic, tp.partition): max(tp.offset, 0) for tp in answer}

    def close(self) -> None:
        self._consumer.close()


def create_topics(
    bootstrap_servers: str,
    names: Sequence[str],
    partitions: int,
    extra: Mapping[str, str] | None = None,
    replication_factor: int = -1,
) -> None:
    """Create `names` (already existing ones are fine).

    `replication_factor=-1` takes the cluster's `default.replication.factor`, so the same
    call makes RF 3 topics on a production cluster and RF 1 on a one-node test broker.
    """
    admin = _build(AdminClient, {"bootstrap.servers": bootstrap_servers, **(extra or {})})
    new = [NewTopic(name, partitions, replication_factor) for name in names]
    futures = admin.create_topics(new)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def read_all(config: Mapping[str, str], topic: str, idle_timeout_s: float = 2.0) -> list[Record]:
    """Read every record of `topic` from the beginning without joining a group.

    Stops when each partition reached its high watermark, or after `idle_timeout_s` with no
    record (watermarks can lag on some brokers, so silence also ends the read).
    """
    consumer = _build(
        Consumer,
        {
            **config,
            "group.id": "dreamscape-reader",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "logger": _log,
        },
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        topic_meta = metadata.topics.get(topic)
        if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
            return []
        numbers = sorted(topic_meta.partitions)
        consumer.assign([KafkaTopicPartition(topic, n, OFFSET_BEGINNING) for n in numbers])
        return _drain(consumer, set(numbers), idle_timeout_s)
    finally:
        consumer.close()


def _drain(consumer: Consumer, open_partitions: set[int], idle_timeout_s: float) -> list[Record]:
    records: list[Record] = []
    idle = 0.0
    while open_partitions and idle < idle_timeout_s:
        messages = consumer.consume(500, 0.1)
        idle = idle + 0.1 if not messages else 0.0
        for message in messages:
            error = message.error()
            if error is None:
                records.append(to_record(message))
            elif error.code() == KafkaError._PARTITION_EOF:
                open_partitions.discard(message.partition())
    return records
