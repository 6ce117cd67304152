"""Throughput of the run loop next to bare confluent-kafka loops over the same records.

    .venv/bin/python benchmarks/run_loop.py [--records 200000] [--batch-size 1000]

Publishes simulated payment events (valid ones only) to the embedded broker once, then reads
them all three ways, each with a fresh consumer group, timing from the first record received
to the last (the group join is excluded):

* `bare consume()`: `Consumer.consume(1000)` and nothing else;
* `bare + json.loads`: the same, decoding every value;
* `run loop`: `common.runner.Runner` with a no-op batch handler: parse, validate into typed
  events, store offsets, emit lifecycle events to the logging and metrics subscribers.

Prints events/s for each and the run loop's ratio to the `json.loads` loop.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from common.handlers import ConsumerSpec
from common.kafka import KafkaConsumer, KafkaProducer, create_topics
from common.lifecycle import BatchHandled, Bus, LifecycleEvent, Subscriber
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.runner import Runner
from common.service import tune_gc
from common.settings import RunnerSettings
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker

FAST_GROUP = {
    "session.timeout.ms": "1000",
    "heartbeat.interval.ms": "100",
    "fetch.wait.max.ms": "50",
}
"""Fast group joins on the embedded broker, and no 500 ms wait on an empty fetch (Tansu
answers one only then). Every benchmark uses these, for the bare loops and the services."""


def publish(bootstrap: str, count: int) -> int:
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=6)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    sent, seed = 0, 0
    while sent < count:
        records = generate(SimulationConfig(flows=5000, seed=seed)).records[: count - sent]
        producer.send(records)
        sent += len(records)
        seed += 1
    producer.flush(120)
    return sent


def bare(bootstrap: str, total: int, group: str, decode: bool) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            **FAST_GROUP,
        }
    )
    consumer.subscribe(list(DEFAULT_TOPICS.payment_topics))
    seen, started = 0, 0.0
    while seen < total:
        messages = consumer.consume(1000, 1.0)
        if messages and not started:
            started = time.perf_counter()
        for message in messages:
            if message.error() is None:
                if decode:
                    json.loads(message.value() or b"null")
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


def time_runner(
    spec: ConsumerSpec, settings: RunnerSettings, total: int, subscribers: Sequence[Subscriber] = ()
) -> float:
    """Events/s of a `Runner` over `spec`, from its first handled batch to the `total`-th event.

    The group join is excluded: the clock starts when the first batch's handler started.
    Shared by every benchmark that times a service on the run loop.
    """
    done = threading.Event()
    state = {"seen": 0, "started": 0.0, "ended": 0.0}

    def count(event: LifecycleEvent) -> None:
        if isinstance(event, BatchHandled):
            if not state["started"]:
                state["started"] = time.perf_counter() - event.duration_s
            state["seen"] += len(event.handled)
            if state["seen"] >= total:
                state["ended"] = time.perf_counter()
                done.set()

    config = settings.consumer_config(spec.group_id)
    bootstrap = config["bootstrap.servers"]
    runner = Runner(
        spec,
        settings,
        lambda listener: KafkaConsumer(config, listener),
        KafkaProducer({"bootstrap.servers": bootstrap}),
        Bus([*subscribers, count]),
    )
    tune_gc()
    thread = threading.Thread(target=runner.run)
    thread.start()
    finished = done.wait(600)
    runner.stop()
    thread.join()
    if not finished:
        raise RuntimeError(f"only {state['seen']} of {total} events handled in 600 s")
    return state["seen"] / (state["ended"] - state["started"])


def run_loop(bootstrap: str, total: int, group: str, batch_size: int) -> float:
    """The run loop with a no-op handler, logging and metrics subscribed as in a service."""
    settings = RunnerSettings(
        batch_size=batch_size, kafka={"bootstrap.servers": bootstrap, **FAST_GROUP}
    )
    spec = ConsumerSpec(name="bench", group_id=group, handle=lambda batch: None)
    subscribers: list[Subscriber] = [LogSubscriber(), RuntimeMetrics(CollectorRegistry(), "bench")]
    return time_runner(spec, settings, total, subscribers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    configure_logging(level="WARNING", fmt="json", service="bench")
    with EmbeddedBroker() as broker:
        total = publish(broker.bootstrap_servers, args.records)
        print(f"{total} records published")
        results = {
            "bare consume()": bare(broker.bootstrap_servers, total, "bench-bare", decode=False),
            "bare + json.loads": bare(broker.bootstrap_servers, total, "bench-json", decode=True),
            "run loop (parse, validate, store offsets, no-op handler)": run_loop(
                broker.bootstrap_servers, total, "bench-loop", args.batch_size
            ),
        }
    for name, rate in results.items():
        print(f"{name:58s} {rate:12,.0f} events/s")
    loop, decoded = list(results.values())[2], results["bare + json.loads"]
    print(
        f"run loop / bare+json.loads = {loop / decoded:.0%}   run loop / bare = {loop / results['bare consume()']:.0%}"
    )


if __name__ == "__main__":
    main()
