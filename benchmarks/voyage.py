"""Throughput of the voyage consumer beside the bare consume loop and the no-op run loop.

    .venv/bin/python benchmarks/voyage.py [--records 50000] [--batch-size 1000] [--no-postgres]
                                          [--quick] [--json PATH]

Publishes a realistic mixed stream once (the simulator's flows: attempts, failures, retries,
refunds, plus 2 % duplicates and 10 % cross-topic reordering) to the embedded broker, then
reads it all with a fresh consumer group per run, timing from the first record received to
the last one handled (the group join is excluded):

* `bare consume()` and `run loop (no-op handler)`: `benchmarks/run_loop.py`'s own loops;
* `voyage on SQLite` / `voyage on PostgreSQL`: the run loop with the voyage handler on a
  fresh database (a file under a temporary directory; a fresh PostgreSQL database, see
  `dreamscape_dev.testing.postgres.provision_postgres`).

Every voyage run is checked afterwards: the inbox must hold every distinct eventId. Each
voyage run also prints its batch sizes, the share of time spent in the handler and the events
per CPU-second of this process (run loop, librdkafka and, for SQLite, the database engine;
not the broker nor the PostgreSQL server): on a shared machine that last figure moves much
less than events/s does.

The anchor of each voyage row is the no-op run loop over the same records in the same run:
the ratio is the share of the runtime's speed the service keeps. The goal (issue 25) is that
ratio: at least 0.5x on SQLite and on PostgreSQL, printed as met or not. Each voyage run also
prints the rows it wrote per event. `--quick` reads about 5,000 records.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry
from results import Result, add_arguments, describe_database, report, size
from run_loop import FAST_GROUP, bare, run_loop
from sqlalchemy import Engine, text
from sqlmodel import Session

from common.db import TRANSIENT_DB_ERRORS, table_of
from common.handlers import ConsumerSpec, Rejections
from common.kafka import KafkaConsumer, KafkaProducer, create_topics
from common.lifecycle import BatchHandled, Bus, LifecycleEvent
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.records import Inbound, OutboundRecord
from common.runner import Runner
from common.schema import open_database
from common.settings import RunnerSettings
from common.topics import DEFAULT_TOPICS, Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.postgres import fresh_database, optional_postgres
from voyage_consumer import store
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import SCHEMA

GOAL_RATIO = 0.5
"""Of the no-op run loop's events/s in the same run, on each database (issue 25)."""


class VoyageRun(NamedTuple):
    rate: float
    applied: int
    """Distinct events the database holds afterwards."""
    database: str
    details: dict[str, Any]


def simulate(count: int, topics: Topics = DEFAULT_TOPICS) -> tuple[list[OutboundRecord], int]:
    """About `count` mixed records (2 % duplicates, 10 % reordered) and how many distinct events."""
    records: list[OutboundRecord] = []
    distinct = seed = 0
    while len(records) < count:
        config = SimulationConfig(
            flows=min(5000, max(200, count // 10)),
            seed=seed,
            duplicate_rate=0.02,
            reorder_rate=0.1,
            topics=topics,
        )
        simulation = generate(config)
        records += simulation.records
        distinct += sum(simulation.expected.events_by_type.values())
        seed += 1
    return records, distinct


def publish(bootstrap: str, count: int) -> tuple[int, int]:
    """Publish about `count` records; returns (records, distinct events among them)."""
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=6)
    records, distinct = simulate(count)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    producer.send(records)
    producer.flush(120)
    return len(records), distinct


def open_voyage_database(url: str) -> Engine:
    """The voyage service's engine on `url`, migrated, as the service opens it."""
    return open_database(SCHEMA, RunnerSettings(database_url=url))


def voyage_loop(bootstrap: str, total: int, group: str, batch_size: int, url: str) -> VoyageRun:
    """Events/s of the run loop with the voyage handler on `url` over `total` records, and
    how many distinct events the database holds afterwards."""
    engine = open_voyage_database(url)
    database = describe_database(engine)
    handler = VoyageHandler(engine, VoyageMetrics(CollectorRegistry()))
    settings = RunnerSettings(
        batch_size=batch_size, kafka={"bootstrap.servers": bootstrap, **FAST_GROUP}
    )
    done = threading.Event()
    state = dict.fromkeys(("seen", "started", "ended", "cpu_started", "cpu", "in_handler"), 0.0)
    state["batches"] = 0

    def timed(batch: Sequence[Inbound]) -> Rejections:
        if not state["started"]:
            state["started"] = time.perf_counter()
            state["cpu_started"] = time.process_time()
        began = time.perf_counter()
        try:
            return handler(batch)
        finally:
            state["in_handler"] += time.perf_counter() - began
            state["batches"] += 1

    def count(event: LifecycleEvent) -> None:
        if isinstance(event, BatchHandled):
            state["seen"] += len(event.handled)
            if state["seen"] >= total:
                state["ended"] = time.perf_counter()
                state["cpu"] = time.process_time() - state["cpu_started"]
                done.set()

    registry = CollectorRegistry()
    config = settings.consumer_config(group)
    spec = ConsumerSpec(
        name="bench-voyage", group_id=group, handle=timed, transient_errors=TRANSIENT_DB_ERRORS
    )
    runner = Runner(
        spec,
        settings,
        lambda listener: KafkaConsumer(config, listener),
        KafkaProducer({"bootstrap.servers": bootstrap}),
        Bus([LogSubscriber(), RuntimeMetrics(registry, "bench"), count]),
    )
    thread = threading.Thread(target=runner.run)
    thread.start()
    finished = done.wait(600)
    runner.stop()
    thread.join()
    if not finished:
        raise RuntimeError(f"only {state['seen']:.0f} of {total} events handled in 600 s")
    with Session(engine) as session:
        applied = store.count_processed(session=session)
        rows = sum(
            session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in (table_of(model).name for model in SCHEMA.models)
        )
    engine.dispose()
    elapsed = state["ended"] - state["started"]
    details = {
        "batch_size": batch_size,
        "mean_batch": round(total / state["batches"]),
        "share_in_handler": round(state["in_handler"] / elapsed, 3),
        "events_per_cpu_second": round(total / state["cpu"]),
        "rows_per_event": round(rows / applied, 2),
    }
    print(
        f"  {database}: {state['batches']:.0f} batches of {details['mean_batch']} records on "
        f"average, {details['share_in_handler']:.0%} of the time in the handler, "
        f"{details['events_per_cpu_second']:,} events per CPU-second of this process, "
        f"{details['rows_per_event']} rows in the database per event applied",
        flush=True,
    )
    return VoyageRun(state["seen"] / elapsed, applied, database, details)


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A fresh SQLite file, removed afterwards."""
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / 'voyage.db'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=None, help="about this many (50,000)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    add_arguments(parser)
    args = parser.parse_args()
    count = size(args.records, args.quick, 50_000, 5_000)
    configure_logging(level="ERROR", fmt="json", service="bench")
    databases: dict[str, Callable[[], AbstractContextManager[str]]] = {"SQLite": sqlite_url}
    results: list[Result] = []
    with optional_postgres(not args.no_postgres) as server, EmbeddedBroker() as broker:
        if server is not None:
            databases["PostgreSQL"] = partial(fresh_database, server)
        bootstrap = broker.bootstrap_servers
        total, distinct = publish(bootstrap, count)
        print(f"{total} records published ({distinct} distinct events, the rest duplicates)")
        bare_rate = bare(bootstrap, total, "bench-bare")
        loop = run_loop(bootstrap, total, "bench-loop", args.batch_size)
        for name, database in databases.items():
            with database() as url:
                run = voyage_loop(bootstrap, total, f"bench-{name}", args.batch_size, url)
            assert run.applied == distinct, f"{name}: {run.applied} of {distinct} events applied"
            results.append(
                Result(
                    name=f"voyage on {name}",
                    benchmark="voyage.py",
                    events_per_s=run.rate,
                    anchor="run loop, no-op handler",
                    anchor_events_per_s=loop,
                    records=total,
                    database=run.database,
                    goal_ratio=GOAL_RATIO,
                    references={"bare consume()": bare_rate},
                    details={**run.details, "distinct_events": distinct},
                )
            )
    report(results, args.json)


if __name__ == "__main__":
    main()
