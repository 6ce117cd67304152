"""Reading without joining a group: committed offsets, whole topics; creating topics; proving
the DLQ can be written."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicCollection
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AclOperation, AdminClient, NewTopic  # type: ignore[attr-defined]

from common.errors import TransientError
from common.kafka.client import build_client, log, to_kafka_tp, to_record
from common.records import Record, TopicPartition


class GroupOffsets:
    """A consumer group's committed offsets, read by a client that never joins the group."""

    def __init__(self, config: Mapping[str, str], group: str) -> None:
        self.group = group
        self._consumer = build_client(
            Consumer, {**config, "group.id": group, "enable.auto.commit": "false", "logger": log}
        )

    def read(
        self, partitions: Iterable[TopicPartition], timeout_s: float = 5.0
    ) -> dict[TopicPartition, int]:
        """The next offset the group will read per partition (0 where it committed none).

        Raises `TransientError` when the group coordinator does not answer in time.
        """
        asked = [to_kafka_tp(tp) for tp in partitions]
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
    admin = build_client(AdminClient, {"bootstrap.servers": bootstrap_servers, **(extra or {})})
    new = [NewTopic(name, partitions, replication_factor) for name in names]
    futures = admin.create_topics(new)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


#: Producer properties an admin client must not take: idempotence would make it ask for a
#: producer id of its own.
_PRODUCER_ONLY = ("acks", "enable.idempotence", "linger.ms")
_MAY_WRITE = {AclOperation.WRITE, AclOperation.ALL}


def dlq_write_problem(
    producer_config: Mapping[str, str], topic: str, timeout_s: float = 10.0
) -> str | None:
    """Why the DLQ producer could not write to `topic`, or None when it can.

    One DescribeTopics request asking for the operations this principal may perform on the
    topic (KIP-430), a cheap proof of write access that writes nothing: it needs DESCRIBE
    on the topic, and tells a missing topic, a missing DESCRIBE and a missing WRITE apart.
    A broker that leaves the operations out is trusted once the topic exists. The answer
    names error codes and the topic, never a client message or a setting.
    """
    config = {k: v for k, v in producer_config.items() if k not in _PRODUCER_ONLY}
    admin = build_client(AdminClient, {**config, "logger": log})
    futures = admin.describe_topics(
        TopicCollection([topic]), include_authorized_operations=True, request_timeout=timeout_s
    )
    try:
        description = futures[topic].result()
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return f"DLQ topic {topic} does not exist"
        if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
            return f"authorization: no DESCRIBE permission on DLQ topic {topic}"
        return f"DLQ topic {topic} could not be described: {error.name()}"
    operations = description.authorized_operations
    if operations is not None and not _MAY_WRITE & set(operations):
        return f"authorization: no WRITE permission on DLQ topic {topic}"
    return None


def read_all(config: Mapping[str, str], topic: str, idle_timeout_s: float = 2.0) -> list[Record]:
    """Read every record of `topic` from the beginning without joining a group.

    Stops when each partition reached its high watermark, or after `idle_timeout_s` with no
    record (watermarks can lag on some brokers, so silence also ends the read).
    """
    consumer = build_client(
        Consumer,
        {
            **config,
            "group.id": "dreamscape-reader",
            "enable.auto.commit": "false",
            "enable.partition.eof": "true",
            "logger": log,
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
