"""Throughput of the run loop next to bare confluent-kafka loops over the same records.

    .venv/bin/python benchmarks/run_loop.py [--records N] [--batch-size 1000] [--quick]
                                            [--json PATH]

Two workloads, each published to the embedded broker once and then read four (three) ways,
each with a fresh consumer group, timing from the first record received to the last (the
group join is excluded):

* `spec workload`: the records of the performance issue's table, N copies of the spec's
  `payment.completed` example (~500 B, each with its own eventId and paymentId) on one topic
  of 3 partitions;
* `mixed stream`: the simulator's valid flows over the four payment topics, 6 partitions
  each (what the services see).

The loops:

* `bare consume()`: `Consumer.consume(1000)` and nothing else;
* `bare consume() + json.loads`: the same, decoding every value (the anchor of the goal:
  the run loop at least as fast as this);
* `bare consume() + pydantic model_validate_json` (spec workload only): pydantic's own JSON
  validation into a plain model of the same envelope. A plain one, because ours refuse
  `model_validate_json`: JSON numbers reach their amount validators as floats, and they
  accept only exact decimals;
* `run loop`: `common.runner.Runner` with a no-op batch handler: parse, validate into typed
  events, store offsets, emit lifecycle events to the logging and metrics subscribers.

N defaults to 200,000 (20,000 with `--quick`). Goals (issue 25): the run loop at >= 1.0x
bare `consume()` + `json.loads` on the spec workload and on the mixed stream, with every
check the parser makes. A ratio to a loop of the same run, not a rate: a rate on a shared
2-core machine says more about the machine.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal

from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from results import Result, add_arguments, report, size

from common.handlers import ConsumerSpec
from common.kafka import KafkaConsumer, KafkaProducer, create_topics
from common.lifecycle import BatchHandled, Bus, LifecycleEvent, Subscriber
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.records import OutboundRecord
from common.runner import Runner
from common.service import tune_gc
from common.settings import RunnerSettings
from common.topics import DEFAULT_TOPICS, EVENT_TYPES, PAYMENT_COMPLETED, Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.broker import EmbeddedBroker
from dreamscape_dev.testing.builders import spec_bytes

FAST_GROUP = {
    "session.timeout.ms": "1000",
    "heartbeat.interval.ms": "100",
    "fetch.wait.max.ms": "50",
}
"""Fast group joins on the embedded broker, and no 500 ms wait on an empty fetch (Tansu
answers one only then). Every benchmark uses these, for the bare loops and the services."""

SPEC_TOPICS = Topics("spec.")
"""The spec workload under its own prefix, so both workloads share one broker."""
SPEC_PARTITIONS = 3
MIXED_PARTITIONS = 6

JSON_LOADS = "bare consume() + json.loads"
BARE = "bare consume()"
PYDANTIC = "bare consume() + pydantic model_validate_json"


class _Plain(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, frozen=True)


class PlainCompletedPayload(_Plain):
    payment_id: str
    booking_id: str
    user_id: str
    amount: Decimal
    currency: str
    transaction_id: str
    completed_at: datetime


class PlainCompleted(_Plain):
    """The spec's `payment.completed` envelope as a plain pydantic model: the anchor of what
    validating JSON with pydantic alone costs (no exactness, pattern or range checks)."""

    event_id: uuid.UUID
    event_type: Literal["payment.completed"]
    timestamp: datetime
    version: str
    source: str
    correlation_id: str | None = None
    causation_id: str | None = None
    payload: PlainCompletedPayload


def publish(bootstrap: str, count: int) -> int:
    """The mixed stream: about `count` valid simulated records over the four topics."""
    create_topics(bootstrap, DEFAULT_TOPICS.payment_topics, partitions=MIXED_PARTITIONS)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    sent, seed = 0, 0
    while sent < count:
        records = generate(SimulationConfig(flows=5000, seed=seed)).records[: count - sent]
        producer.send(records)
        sent += len(records)
        seed += 1
    producer.flush(120)
    return sent


def spec_records(count: int) -> list[OutboundRecord]:
    """`count` copies of the spec's `payment.completed` example, each its own event."""
    example = json.loads(spec_bytes(PAYMENT_COMPLETED))
    rng = random.Random(13)
    topic = SPEC_TOPICS.for_event(PAYMENT_COMPLETED)
    records = []
    for number in range(count):
        example["eventId"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        example["payload"]["paymentId"] = f"pay_{number:09d}"
        example["payload"]["bookingId"] = booking = f"booking_{number // 2:09d}"
        records.append(OutboundRecord(topic, booking.encode(), json.dumps(example).encode()))
    return records


def publish_spec(bootstrap: str, count: int) -> int:
    """The spec workload: `count` records on one topic of 3 partitions."""
    records = spec_records(count)
    create_topics(bootstrap, [records[0].topic], partitions=SPEC_PARTITIONS)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": "20"})
    producer.send(records)
    producer.flush(120)
    return len(records)


def bare(
    bootstrap: str,
    total: int,
    group: str,
    decode: Callable[[bytes], object] | None = None,
    topics: Sequence[str] = DEFAULT_TOPICS.payment_topics,
) -> float:
    """Events/s of `Consumer.consume(1000)` over `total` records, calling `decode` on each value."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            **FAST_GROUP,
        }
    )
    consumer.subscribe(list(topics))
    seen, started = 0, 0.0
    while seen < total:
        messages = consumer.consume(1000, 1.0)
        if messages and not started:
            started = time.perf_counter()
        for message in messages:
            if message.error() is None:
                if decode is not None:
                    decode(message.value() or b"null")
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


def run_loop(
    bootstrap: str,
    total: int,
    group: str,
    batch_size: int,
    *,
    topics: Topics = DEFAULT_TOPICS,
    event_types: Sequence[str] = EVENT_TYPES,
) -> float:
    """The run loop with a no-op handler, logging and metrics subscribed as in a service."""
    settings = RunnerSettings(
        batch_size=batch_size,
        topic_prefix=topics.prefix,
        kafka={"bootstrap.servers": bootstrap, **FAST_GROUP},
    )
    spec = ConsumerSpec(
        name="bench", group_id=group, handle=lambda batch: None, event_types=tuple(event_types)
    )
    subscribers: list[Subscriber] = [LogSubscriber(), RuntimeMetrics(CollectorRegistry(), "bench")]
    return time_runner(spec, settings, total, subscribers)


def spec_workload(bootstrap: str, count: int, batch_size: int) -> Result:
    total = publish_spec(bootstrap, count)
    topics = [SPEC_TOPICS.for_event(PAYMENT_COMPLETED)]
    print(f"spec workload: {total} records published", flush=True)
    rates = {
        BARE: bare(bootstrap, total, "spec-bare", topics=topics),
        JSON_LOADS: bare(bootstrap, total, "spec-json", json.loads, topics),
        PYDANTIC: bare(
            bootstrap, total, "spec-pydantic", PlainCompleted.model_validate_json, topics
        ),
    }
    loop = run_loop(
        bootstrap,
        total,
        "spec-loop",
        batch_size,
        topics=SPEC_TOPICS,
        event_types=[PAYMENT_COMPLETED],
    )
    return Result(
        name="run loop, no-op handler: spec workload",
        benchmark="run_loop.py",
        events_per_s=loop,
        anchor=JSON_LOADS,
        anchor_events_per_s=rates[JSON_LOADS],
        records=total,
        goal_ratio=1.0,
        references={BARE: rates[BARE], PYDANTIC: rates[PYDANTIC]},
        details={"topics": 1, "partitions": SPEC_PARTITIONS, "batch_size": batch_size},
    )


def mixed_stream(bootstrap: str, count: int, batch_size: int) -> Result:
    total = publish(bootstrap, count)
    print(f"mixed stream: {total} records published", flush=True)
    rates = {
        BARE: bare(bootstrap, total, "mixed-bare"),
        JSON_LOADS: bare(bootstrap, total, "mixed-json", json.loads),
    }
    return Result(
        name="run loop, no-op handler: mixed stream",
        benchmark="run_loop.py",
        events_per_s=run_loop(bootstrap, total, "mixed-loop", batch_size),
        anchor=JSON_LOADS,
        anchor_events_per_s=rates[JSON_LOADS],
        records=total,
        goal_ratio=1.0,
        references={BARE: rates[BARE]},
        details={"topics": 4, "partitions": MIXED_PARTITIONS, "batch_size": batch_size},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=None, help="per workload (200,000)")
    parser.add_argument("--batch-size", type=int, default=1000)
    add_arguments(parser)
    args = parser.parse_args()
    count = size(args.records, args.quick, 200_000, 20_000)
    configure_logging(level="WARNING", fmt="json", service="bench")
    with EmbeddedBroker() as broker:
        results = [
            spec_workload(broker.bootstrap_servers, count, args.batch_size),
            mixed_stream(broker.bootstrap_servers, count, args.batch_size),
        ]
    for result in results:
        also = ", ".join(f"{name} {rate:,.0f}/s" for name, rate in result.references.items())
        print(f"{result.name}: also in the same run {also}")
    report(results, args.json)


if __name__ == "__main__":
    main()
