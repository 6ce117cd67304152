"""Throughput of the analytics consumer next to the bare consume loop, over the same records.

    .venv/bin/python benchmarks/analytics.py [--records 100000] [--batch-size 1000]
                                             [--batch-size 5000 ...] [--no-postgres]
                                             [--quick] [--json PATH]

Publishes a mixed simulated stream (all four event types, 2% duplicates, 10% swapped
lifecycle events; no poison) to the embedded broker once, then reads it, each time with a
fresh consumer group, timing from the first record handled to the last (group joins and
table creation are excluded):

* `bare consume()`: `Consumer.consume(1000)` and nothing else;
* `run loop, no-op handler`: `common.runner.Runner` parsing and validating every event;
* `analytics <db> (batch N)`: the real service spec (`analytics_consumer.service.build`)
  in the run loop: fence, inbox, aggregation, set-based writes, one durable commit per
  batch (SQLite: WAL + synchronous=FULL; PostgreSQL: whatever the server is set to, read
  from it and printed with the results: the embedded one runs with fsync off);
* `store only <db> (batch N)`: `AnalyticsStore.apply` over the same events already parsed,
  without Kafka: what the analytics add on top of the run loop.

PostgreSQL runs use a throw-away database on the server `provision_postgres` finds or starts.
Every row's anchor is the no-op run loop over the same records in the same run. Goal (issue
25): the service at 0.5x that anchor or more, on SQLite and on PostgreSQL; each service row
prints its ratio against it, met or not. (Issue 13's goal was 40k events/s; a ratio to a
loop timed in the same run moves less on a shared machine.) The store alone has no goal: its
ratio says how much of the anchor the analytics' own work leaves. `--quick` reads 10,000
records.
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
from results import Result, add_arguments, describe_url, report, size
from run_loop import FAST_GROUP, bare, time_runner

from analytics_consumer.service import build
from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.store import AnalyticsStore
from analytics_consumer.tables import SCHEMA
from common.handlers import ConsumerSpec
from common.kafka import KafkaProducer, create_topics
from common.logs import configure_logging
from common.parsing import parse_event
from common.records import Inbound, OutboundRecord, Record
from common.schema import open_database
from common.topics import DEFAULT_TOPICS, GROUP_ANALYTICS
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.postgres import PostgresServer, fresh_database, optional_postgres

GOAL_RATIO = 0.5
"""The service's events/s over the no-op run loop's, same records, same run (issue 25)."""
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
NOOP = "run loop, no-op handler"


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
    return ConsumerSpec(
        name="bench-noop", group_id=settings.group_id(GROUP_ANALYTICS), handle=lambda batch: None
    )


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
    engine = open_database(SCHEMA, AnalyticsSettings(database_url=database_url))
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


def measure(
    bootstrap: str,
    records: Sequence[OutboundRecord],
    kinds: Sequence[str],
    batch_sizes: Sequence[int],
    server: PostgresServer | None,
    directory: str,
) -> list[Result]:
    """Every row over the published `records`: the anchors first, then each database and size."""
    bare_rate = bare(bootstrap, len(records), f"bench-bare-{uuid.uuid4().hex[:6]}")
    noop_settings = settings_for(bootstrap, 1000)
    noop = time_runner(noop_spec(noop_settings), noop_settings, len(records))

    def row(name: str, rate: float, url: str, goal: float | None, batch_size: int) -> Result:
        details: dict[str, object] = {"batch_size": batch_size}
        if goal is not None:
            details["goal"] = "issue 25: >= 0.5x the no-op run loop"
        return Result(
            name=name,
            benchmark="analytics.py",
            events_per_s=rate,
            anchor=NOOP,
            anchor_events_per_s=noop,
            records=len(records),
            database=describe_url(url),
            goal_ratio=goal,
            references={"bare consume()": bare_rate},
            details=details,
        )

    results: list[Result] = []
    for kind in kinds:
        for batch_size in batch_sizes:
            with fresh(kind, directory, server) as url:
                settings = settings_for(bootstrap, batch_size, url)
                rate = time_runner(analytics_spec(settings), settings, len(records))
                name = f"analytics on {NAMES[kind]} (batch {batch_size})"
                results.append(row(name, rate, url, GOAL_RATIO, batch_size))
            with fresh(kind, directory, server) as url:
                rate = store_only(url, records, batch_size)
                name = f"analytics store alone on {NAMES[kind]} (batch {batch_size}, no Kafka)"
                results.append(row(name, rate, url, None, batch_size))
            print(f"  {kind} batch {batch_size} done", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=None, help="100,000")
    parser.add_argument("--batch-size", type=int, action="append", dest="batch_sizes")
    parser.add_argument("--no-postgres", action="store_true")
    add_arguments(parser)
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="json", service="bench")
    records = simulated(size(args.records, args.quick, 100_000, 10_000))
    with (
        optional_postgres(not args.no_postgres) as server,
        EmbeddedBroker() as broker,
        tempfile.TemporaryDirectory() as directory,
    ):
        kinds = ["sqlite"] + (["postgres"] if server else [])
        publish(broker.bootstrap_servers, records)
        print(f"{len(records)} records published ({', '.join(kinds)})", flush=True)
        batch_sizes = args.batch_sizes or [1000]
        results = measure(broker.bootstrap_servers, records, kinds, batch_sizes, server, directory)
    report(results, args.json)


if __name__ == "__main__":
    main()
