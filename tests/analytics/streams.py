"""Simulated streams as the run loop would hand them over, without a broker.

Records go to partition `crc32(key) % 3` of their topic (all events of a payment share a
partition number, as with Kafka's key hashing) with consecutive offsets per partition, and
are parsed into `Inbound`s; poison records are dropped as the run loop would dead-letter
them. `interleaved` cuts a stream into batches the way polls do: each partition's records
stay in offset order, partitions mix in any order.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Sequence

from common.errors import InvalidEvent
from common.records import Inbound, OutboundRecord
from common.topics import DEFAULT_TOPICS, Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing import builders

PARTITIONS = 3


def simulated(config: SimulationConfig) -> list[OutboundRecord]:
    return generate(config).records


def as_inbound(
    records: Sequence[OutboundRecord], *, topics: Topics = DEFAULT_TOPICS
) -> list[Inbound]:
    offsets: dict[tuple[str, int], int] = {}
    inbound: list[Inbound] = []
    for outbound in records:
        partition = zlib.crc32(outbound.key or b"") % PARTITIONS
        offset = offsets.get((outbound.topic, partition), 0)
        offsets[(outbound.topic, partition)] = offset + 1
        try:
            inbound.append(builders.inbound(outbound, topics, partition=partition, offset=offset))
        except InvalidEvent:
            continue
    return inbound


def in_batches(stream: Sequence[Inbound], size: int) -> Iterator[list[Inbound]]:
    for start in range(0, len(stream), size):
        yield list(stream[start : start + size])


def interleaved(stream: Sequence[Inbound], size: int, seed: int) -> Iterator[list[Inbound]]:
    """Batches of up to `size` taking each next record from a random partition."""
    rng = random.Random(seed)
    queues: dict[tuple[str, int], list[Inbound]] = {}
    for inbound in stream:
        queues.setdefault((inbound.record.topic, inbound.record.partition), []).append(inbound)
    for queue in queues.values():
        queue.reverse()
    batch: list[Inbound] = []
    while queues:
        key = rng.choice(sorted(queues))
        batch.append(queues[key].pop())
        if not queues[key]:
            del queues[key]
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
