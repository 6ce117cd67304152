"""Throughput of the voyage consumer beside the bare consume loop and the no-op run loop.

    .venv/bin/python benchmarks/voyage.py [--records 50000] [--batch-size 1000] [--no-postgres]

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

from prometheus_client import CollectorRegistry
from run_loop import FAST_GROUP, bare, run_loop
from sqlmodel import Session

from common.db import TRANSIENT_DB_ERRORS
from common.handlers import ConsumerSpec, Rejections
from common.kafka import KafkaConsumer, KafkaProducer, create_topics
from common.lifecycle import BatchHandled, Bus, LifecycleEvent
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.records import Inbound
from common.runner import Runner
from common.settings import RunnerSettings
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.postgres import fresh_database, optional_postgres
from voyage_consumer import repository
from voyage_consumer.handler import CONSUMER, VoyageHandler, VoyageMetrics
from voyage_consumer.service import open_database


def publish(bootstrap: str, count: int) -> tuple[int, int]:
    """Publish about `count` records; returns (records, distinct events among them)."""
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=6)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    sent = distinct = seed = 0
    while sent < count:
        config = SimulationConfig(flows=5000, seed=seed, duplicate_rate=0.02, reorder_rate=0.1)
        simulation = generate(config)
        producer.send(simulation.records)
        sent += len(simulation.records)
        distinct += sum(simulation.expected.events_by_type.values())
        seed += 1
    producer.flush(120)
    return sent, distinct


def voyage_loop(
    bootstrap: str, total: int, group: str, batch_size: int, url: str
) -> tuple[float, int]:
    """Events/s of the run loop with the voyage handler on `url` over `total` records, and
    how many distinct events the database holds afterwards."""
    engine = open_database(url)
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
    done.wait(600)
    runner.stop()
    thread.join()
    with Session(engine) as session:
        applied = repository.count_processed(session=session, consumer=CONSUMER)
    engine.dispose()
    elapsed = state["ended"] - state["started"]
    print(
        f"  {url.split(':')[0].split('+')[0]}: {state['batches']:.0f} batches of "
        f"{total / state['batches']:.0f} records on average, "
        f"{state['in_handler'] / elapsed:.0%} of the time in the handler, "
        f"{total / state['cpu']:,.0f} events per CPU-second of this process"
    )
    return state["seen"] / elapsed, applied


@contextmanager
def sqlite_url() -> Iterator[str]:
    """A fresh SQLite file, removed afterwards."""
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / 'voyage.db'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    configure_logging(level="ERROR", fmt="json", service="bench")
    databases: dict[str, Callable[[], AbstractContextManager[str]]] = {"SQLite": sqlite_url}
    results: dict[str, float] = {}
    with optional_postgres(not args.no_postgres) as server, EmbeddedBroker() as broker:
        if server is not None:
            databases["PostgreSQL"] = partial(fresh_database, server)
        bootstrap = broker.bootstrap_servers
        total, distinct = publish(bootstrap, args.records)
        print(f"{total} records published ({distinct} distinct events, the rest duplicates)")
        results["bare consume()"] = bare(bootstrap, total, "bench-bare", decode=False)
        results["run loop (no-op handler)"] = run_loop(
            bootstrap, total, "bench-loop", args.batch_size
        )
        for name, database in databases.items():
            with database() as url:
                rate, applied = voyage_loop(bootstrap, total, f"bench-{name}", args.batch_size, url)
            assert applied == distinct, f"{name}: {applied} of {distinct} events applied"
            results[f"voyage on {name}"] = rate
    loop = results["run loop (no-op handler)"]
    for name, rate in results.items():
        print(f"{name:32s} {rate:10,.0f} events/s   {rate / loop:5.0%} of the run loop")


if __name__ == "__main__":
    main()
