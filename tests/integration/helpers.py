"""Shared helpers for the run-loop integration tests: events, producing, waiting, runners.

Everything here talks to the real broker the `kafka_bootstrap_servers` fixture provides. The
tests decide "done" from what they know they produced (delivery reports give each record's
partition and offset), never from watermarks, and never sleep: they poll a condition every
50 ms until it holds or a deadline passes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from common.handlers import BatchHandler, ConsumerSpec
from common.kafka import KafkaConsumer, KafkaProducer, RebalanceListener, read_all
from common.lifecycle import (
    BatchHandled,
    Bus,
    LifecycleEvent,
    PartitionsChanged,
    RecordDeadLettered,
    RetryScheduled,
)
from common.ports import ConsumerPort, ProducerPort
from common.records import OutboundRecord, Record, TopicPartition
from common.runner import Runner
from common.settings import RunnerSettings
from common.topics import PAYMENT_INITIATED, Topics
from dreamscape_dev.testing.builders import event, outbound
from dreamscape_dev.testing.running import RunnerThread
from dreamscape_dev.testing.running import wait_until as wait_until  # the tests import it from here

E = TypeVar("E")

ROOT = Path(__file__).resolve().parents[2]

#: librdkafka settings that keep group joins and rebalances around one second.
FAST_GROUP: dict[str, str] = {"session.timeout.ms": "1000", "heartbeat.interval.ms": "100"}

#: Tansu answers a fetch on an empty partition only after `fetch.wait.max.ms` (500 ms by
#: default); a short wait makes records and end-of-partition arrive sooner.
FAST_FETCH: dict[str, str] = {"fetch.wait.max.ms": "50"}


# -- events and records -----------------------------------------------------------------


def payment_record(
    topics: Topics,
    event_type: str = PAYMENT_INITIATED,
    *,
    event_id: str | None = None,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> OutboundRecord:
    """A valid event modelled on the spec example, with a fresh eventId and paymentId."""
    document = event(event_type, event_id=event_id, paymentId=f"pay_{uuid.uuid4().hex[:12]}")
    return outbound(document, topics, key=key, headers=headers)


def payment_records(topics: Topics, count: int) -> list[OutboundRecord]:
    """`count` valid events spread over the four payment topics (and their partitions)."""
    types = ("payment.initiated", "payment.completed", "payment.failed", "payment.refunded")
    return [payment_record(topics, types[n % len(types)]) for n in range(count)]


def event_id(record: OutboundRecord | Record) -> str:
    """The eventId inside a record's JSON value."""
    assert record.value is not None
    value: str = json.loads(record.value)["eventId"]
    return value


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker put one produced record."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def tp(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


def produce(
    bootstrap: str, records: Sequence[OutboundRecord], *, timestamp_ms: int | None = None
) -> list[Delivered]:
    """Produce `records` in order and return each one's delivery (same order); all must land."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    reports: list[Delivered | None] = [None] * len(records)
    errors: list[str] = []

    def report_at(index: int) -> Callable[[Any, Any], None]:
        def report(error: Any, message: Any) -> None:
            if error is not None:
                errors.append(str(error))
            else:
                reports[index] = Delivered(
                    message.topic(), message.partition(), message.offset(), message.timestamp()[1]
                )

        return report

    for index, record in enumerate(records):
        producer.produce(
            record.topic,
            value=record.value,
            key=record.key,
            headers=list(record.headers) or None,
            on_delivery=report_at(index),
            timestamp=timestamp_ms or 0,  # 0: the producer's clock
        )
        producer.poll(0)
    remaining = producer.flush(15)
    assert not errors, f"produce failed: {errors[:3]}"
    assert not remaining, f"{remaining} record(s) not delivered"
    delivered = [d for d in reports if d is not None]
    assert len(delivered) == len(records)
    return delivered


def dlq_records(bootstrap: str, topic: str) -> list[Record]:
    """Every record of the DLQ `topic` (none if it does not exist), via `common.kafka.read_all`."""
    return read_all({"bootstrap.servers": bootstrap, **FAST_FETCH}, topic)


def committed_offsets(
    bootstrap: str, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The group's committed offsets (next offset to read; negative = none), read without joining."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        asked = [KafkaTopicPartition(tp.topic, tp.partition) for tp in partitions]
        answer = consumer.committed(asked, timeout=10)
        return {TopicPartition(tp.topic, tp.partition): tp.offset for tp in answer}
    finally:
        consumer.close()


def wait_committed(
    bootstrap: str,
    group: str,
    ends: Mapping[TopicPartition, int],
    *,
    abort: Callable[[], str | None],
    timeout_s: float = 60.0,
) -> None:
    """Wait until `group` has committed up to `ends` (every effect of those records durable)."""

    def caught_up() -> bool:
        committed = committed_offsets(bootstrap, group, ends)
        return all(committed[tp] >= end for tp, end in ends.items())

    wait_until(caught_up, timeout_s, f"{group} to commit {dict(ends)}", abort=abort)


def next_offsets(delivered: Iterable[Delivered]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last delivered record: what a full commit holds."""
    ends: dict[TopicPartition, int] = {}
    for d in delivered:
        ends[d.tp] = max(ends.get(d.tp, 0), d.offset + 1)
    return ends


# -- observing a runner -----------------------------------------------------------------


@dataclass
class Recorder:
    """A bus subscriber keeping every lifecycle event, safe to read from the test thread."""

    events: list[LifecycleEvent] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: LifecycleEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

    def handled_ids(self) -> list[str]:
        """eventIds of every handled record, one entry per time it was handled."""
        return [i.event.event_id for e in self.of(BatchHandled) for i in e.handled]

    def dead_lettered(self) -> list[RecordDeadLettered]:
        return self.of(RecordDeadLettered)

    def retries(self) -> list[RetryScheduled]:
        return self.of(RetryScheduled)

    def assignment(self) -> set[TopicPartition]:
        """Partitions currently assigned, replayed from the PartitionsChanged events."""
        current: set[TopicPartition] = set()
        for change in self.of(PartitionsChanged):
            if change.change == "assigned":
                current.update(change.partitions)
            else:
                current.difference_update(change.partitions)
        return current

    def assigned_at_some_point(self) -> bool:
        return any(c.change == "assigned" and c.partitions for c in self.of(PartitionsChanged))


class SpyConsumer:
    """A real `KafkaConsumer` that also notes its pause and resume calls in `log`."""

    def __init__(self, inner: KafkaConsumer, log: list[tuple[str, list[TopicPartition]]]) -> None:
        self._inner = inner
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self._log.append(("pause", list(partitions)))
        self._inner.pause(partitions)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self._log.append(("resume", list(partitions)))
        self._inner.resume(partitions)


def runner_settings(topics: Topics, bootstrap: str, **overrides: Any) -> RunnerSettings:
    """Settings for an in-process runner: fast group timings, short polls and retries."""
    kafka = {
        "bootstrap.servers": bootstrap,
        **FAST_GROUP,
        **FAST_FETCH,
        "auto.commit.interval.ms": "200",
    }
    kafka.update(overrides.pop("kafka", {}))
    values: dict[str, Any] = {
        "topic_prefix": topics.prefix,
        "batch_size": 100,
        "poll_timeout_seconds": 0.1,
        "retry_initial_seconds": 0.05,
        "retry_max_seconds": 0.5,
        "max_attempts": 3,
        "kafka": kafka,
        **overrides,
    }
    return RunnerSettings(**values)


class ObservedRunner(RunnerThread):
    """One `Runner` on a real consumer and producer, on a thread, observed through its bus."""

    def __init__(
        self,
        handle: BatchHandler,
        settings: RunnerSettings,
        *,
        group: str,
        name: str = "test-runner",
        producer: Callable[[ProducerPort], ProducerPort] = lambda p: p,
        producer_config: Mapping[str, str] | None = None,
        transient_errors: tuple[type[BaseException], ...] = (),
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        """`producer` wraps the DLQ producer; `producer_config` replaces its settings;
        `closers` are the service's (`ConsumerSpec.closers`), run when the loop stops."""
        self.recorder = Recorder()
        self.spec = ConsumerSpec(
            name=name,
            group_id=group,
            handle=handle,
            transient_errors=transient_errors,
            closers=closers,
        )
        self.flow_control: list[tuple[str, list[TopicPartition]]] = []
        """Every pause and resume call the runner made on its consumer, in order."""
        config = settings.consumer_config(group)
        flow_control = self.flow_control

        def consumer(listener: RebalanceListener) -> ConsumerPort:
            return SpyConsumer(KafkaConsumer(config, listener), flow_control)

        runner = Runner(
            self.spec,
            settings,
            consumer,
            producer(KafkaProducer(producer_config or settings.producer_config())),
            Bus([self.recorder]),
        )
        self.dlq_topic = runner.dlq_topic
        super().__init__(runner, name=name)


# -- consumer processes -----------------------------------------------------------------


def process_env(bootstrap: str, topics: Topics, **values: str) -> dict[str, str]:
    """The environment for a consumer subprocess: ours, not the test runner's KAFKA_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        KAFKA_SESSION_TIMEOUT_MS=FAST_GROUP["session.timeout.ms"],
        KAFKA_HEARTBEAT_INTERVAL_MS=FAST_GROUP["heartbeat.interval.ms"],
        TOPIC_PREFIX=topics.prefix,
        HTTP_PORT="0",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        POLL_TIMEOUT_SECONDS="0.1",
        PYTHONUNBUFFERED="1",
    )
    env.update(values)
    return env


@dataclass
class ServiceProcess:
    """A consumer running as `python -m module`, its output going to a file (never a pipe)."""

    process: subprocess.Popen[bytes]
    output: Path

    @classmethod
    def start(cls, module: str, env: Mapping[str, str], log_dir: Path) -> ServiceProcess:
        output = log_dir / f"{module.rsplit('.', 1)[-1]}.{uuid.uuid4().hex[:6]}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return cls(process, output)

    def died(self) -> str | None:
        """Why waiting on this process is pointless (it exited), with its last output."""
        code = self.process.poll()
        return None if code is None else f"it exited with {code}: {self.tail()}"

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        """The exit code; fails (and kills the process) if it has not exited in `timeout_s`."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout_s}s: {self.tail()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def service_process(module: str, env: Mapping[str, str], log_dir: Path) -> Iterator[ServiceProcess]:
    """Start `python -m module`; kill it on the way out if the test has not stopped it."""
    service = ServiceProcess.start(module, env, log_dir)
    try:
        yield service
    finally:
        service.kill()


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of the service's /readyz on `port`, ready or not."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def kill_mid_batch(
    module: str, env: Mapping[str, str], log_dir: Path, marker: Path, timeout_s: float
) -> None:
    """Run a service's crashing twin (`tests.voyage.crash_voyage` ...) until it writes
    `marker`, hanging mid-batch (`tests.integration.crash_consumer.hang`), and SIGKILL it."""
    with service_process(module, env, log_dir) as crashing:
        wait_until(marker.exists, timeout_s, "the crash marker", abort=crashing.died)
        crashing.signal(signal.SIGKILL)
        assert crashing.wait(10) == -signal.SIGKILL


def logged(path: Path) -> list[dict[str, Any]]:
    """The lines of an event-log file, parsed (a torn last line is ignored)."""
    if not path.exists():
        return []
    entries = []
    for text in path.read_text().splitlines():
        try:
            entries.append(json.loads(text))
        except ValueError:
            continue
    return entries


def logged_ids(path: Path) -> list[str]:
    """eventIds in an event-log file, one entry per line."""
    return [entry["event_id"] for entry in logged(path)]
