"""Throughput of the analytics consumer next to the bare consume loop, over the same records.

    .venv/bin/python benchmarks/analytics.py [--records 100000] [--batch-size 1000]
                                             [--batch-size 5000 ...] [--no-postgres]

Publishes a mixed simulated stream (all four event types, 2% duplicates, 10% swapped
lifecycle events; no poison) to the embedded broker once, then reads it, each time with a
fresh consumer group, timing from the first record handled to the last (group joins and
table creation are excluded):

* `bare consume()`: `Consumer.consume(1000)` and nothing else;
* `run loop, no-op handler`: `common.runner.Runner` parsing and validating every event;
* `analytics <db> (batch N)`: the real service spec (`analytics_consumer.service.build`)
  in the run loop: fence, inbox, aggregation, set-based writes, one durable commit per
  batch (SQLite: WAL + synchronous=FULL; PostgreSQL: the local server, fsync on);
* `store only <db> (batch N)`: `AnalyticsStore.apply` over the same events already parsed,
  without Kafka: what the analytics add on top of the run loop.

PostgreSQL runs use a throw-away database on the server `provision_postgres` finds or starts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
import zlib
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

from prometheus_client import CollectorRegistry
from run_loop import FAST_GROUP, bare, time_runner

from analytics_consumer.service import build, prepare
from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.store import AnalyticsStore
from common.db import make_engine
from common.handlers import ConsumerSpec
from common.kafka import KafkaProducer, create_topics
from common.logs import configure_logging
from common.parsing import parse_event
from common.records import Inbound, OutboundRecord, Record
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.postgres import PostgresServer, fresh_database, optional_postgres


def simulated(count: int) -> list[OutboundRecord]:
    records: list[OutboundRecord] = []
    seed = 0
    while len(records) < count:
        config = SimulationConfig(flows=5000, seed=seed, duplicate_rate=0.02, reorder_rate=0.1)
        records += generate(config).records
        seed += 1
    return records[:count]


def publish(bootstrap: str, records: Sequence[OutboundRecord]) -> None:
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=6)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    producer.send(records)
    producer.flush(120)


def settings_for(
    bootstrap: str, batch_size: int, database_url: str | None = None
) -> AnalyticsSettings:
    return AnalyticsSettings(
        batch_size=batch_size,
        database_url=database_url,
        kafka={
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            **FAST_GROUP,
        },
    )


def noop_spec(settings: AnalyticsSettings) -> ConsumerSpec:
    return ConsumerSpec(name="bench-noop", group_id=settings.group, handle=lambda batch: None)


def analytics_spec(settings: AnalyticsSettings) -> ConsumerSpec:
    return build(settings, CollectorRegistry())


def store_only(database_url: str, records: Sequence[OutboundRecord], batch_size: int) -> float:
    """Events/s of `AnalyticsStore.apply` alone over already parsed events."""
    offsets: dict[tuple[str, int], int] = {}
    stream: list[Inbound] = []
    for outbound in records:
        partition = zlib.crc32(outbound.key or b"") % 6
        offset = offsets[(outbound.topic, partition)] = (
            offsets.get((outbound.topic, partition), -1) + 1
        )
        record = Record(outbound.topic, partition, offset, outbound.key, outbound.value)
        stream.append(Inbound(record, parse_event(outbound.value, outbound.topic)))
    engine = make_engine(database_url)
    prepare(engine)
    store = AnalyticsStore(engine)
    store.starting_offsets(sorted({i.record.tp for i in stream}))
    started = time.perf_counter()
    for start in range(0, len(stream), batch_size):
        store.apply(stream[start : start + batch_size])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(stream) / elapsed


def fresh(kind: str, directory: str, server: PostgresServer | None) -> AbstractContextManager[str]:
    """A throw-away database URL: an SQLite file in `directory`, or a new PostgreSQL database."""
    if kind == "sqlite":
        return nullcontext(f"sqlite:///{directory}/{uuid.uuid4().hex[:8]}.db")
    assert server is not None
    return fresh_database(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, action="append", dest="batch_sizes")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    batch_sizes = args.batch_sizes or [1000]
    configure_logging(level="WARNING", fmt="json", service="bench")
    records = simulated(args.records)
    results: dict[str, float] = {}
    with (
        optional_postgres(not args.no_postgres) as server,
        EmbeddedBroker() as broker,
        tempfile.TemporaryDirectory() as directory,
    ):
        kinds = ["sqlite"] + (["postgres"] if server else [])
        bootstrap = broker.bootstrap_servers
        publish(bootstrap, records)
        print(f"{len(records)} records published ({', '.join(kinds)})", flush=True)
        results["bare consume()"] = bare(
            bootstrap, len(records), f"bench-bare-{uuid.uuid4().hex[:6]}", decode=False
        )
        noop_settings = settings_for(bootstrap, 1000)
        results["run loop, no-op handler"] = time_runner(
            noop_spec(noop_settings), noop_settings, len(records)
        )
        for kind in kinds:
            for size in batch_sizes:
                with fresh(kind, directory, server) as url:
                    settings = settings_for(bootstrap, size, url)
                    results[f"analytics {kind} (batch {size})"] = time_runner(
                        analytics_spec(settings), settings, len(records)
                    )
                with fresh(kind, directory, server) as url:
                    results[f"store only {kind} (batch {size}, no Kafka)"] = store_only(
                        url, records, size
                    )
                print(f"  {kind} batch {size} done", flush=True)
    noop = results["run loop, no-op handler"]
    for name, rate in results.items():
        print(f"{name:44s} {rate:12,.0f} events/s   {rate / noop:6.0%} of the no-op run loop")


if __name__ == "__main__":
    main()
