"""What the adapters share: building a client, its errors, and copying records in and out.

`common.kafka` is the one package that imports `confluent_kafka`; everything else works on
`Record`s and `OutboundRecord`s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from common.records import Record, TopicPartition
from common.settings import MASK, is_secret_property

log = logging.getLogger("librdkafka")
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


def to_kafka_tp(tp: TopicPartition, offset: int | None = None) -> KafkaTopicPartition:
    if offset is None:
        return KafkaTopicPartition(tp.topic, tp.partition)
    return KafkaTopicPartition(tp.topic, tp.partition, offset)


def from_kafka_tps(tps: Iterable[KafkaTopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in tps]


def build_client(factory: Callable[[dict[str, Any]], T], config: Mapping[str, Any]) -> T:
    """The client `factory` builds from `config`; a refusal is a `KafkaConfigError` whose
    message never holds a secret property's value, even if librdkafka quoted it."""
    try:
        return factory(dict(config))
    except (KafkaException, ValueError, TypeError) as exc:
        detail = exc.args[0] if exc.args else exc
        message = detail.str() if isinstance(detail, KafkaError) else str(detail)
        for name, value in config.items():
            if is_secret_property(name) and isinstance(value, str) and value:
                message = message.replace(value, MASK)
        raise KafkaConfigError(f"{message} (KAFKA_* settings name librdkafka properties)") from None
