"""The one package that imports `confluent_kafka`, one module per client.

Everything else works on `Record`s and `OutboundRecord`s. The adapters are thin: they
translate client messages, errors and callbacks into the project's types, and keep the
librdkafka details (rebalance protocol, statistics JSON, delivery reports) here:
`consumer` (the group member), `producer` (confirmed, idempotent writes), `admin` (reading
without joining, topics), `client` (what they share).
"""

from common.kafka.admin import GroupOffsets, create_topics, read_all
from common.kafka.client import ClientError, KafkaConfigError, to_record
from common.kafka.consumer import KafkaConsumer, RebalanceListener, consumer_lag
from common.kafka.producer import PERMANENT_PRODUCE_ERRORS, KafkaProducer

__all__ = [
    "PERMANENT_PRODUCE_ERRORS",
    "ClientError",
    "GroupOffsets",
    "KafkaConfigError",
    "KafkaConsumer",
    "KafkaProducer",
    "RebalanceListener",
    "consumer_lag",
    "create_topics",
    "read_all",
    "to_record",
]
