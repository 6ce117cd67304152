"""Publish-to-effect latency of each service at half its capacity, beside the no-op run loop's.

    .venv/bin/python benchmarks/latency.py [--seconds 5] [--config BATCH,POLL_S,FETCH_WAIT_MS ...]
                                           [--rate SERVICE=N ...] [--quick] [--json PATH]

A receipt is a customer waiting, so issue 25 asks for latency under load, not only events/s.
For the no-op run loop (the anchor), voyage (SQLite), analytics (SQLite) and notification
(SQLite ledger, an aiosmtpd server in another process as in `benchmarks/notification.py`):

1. *capacity*: the records/s the service sustains while a publisher in another process
   sends a fresh stream as fast as it can, from the first record sent to the last effect
   (default settings, fresh topics, group and database), unless `--rate SERVICE=N` gives
   the paced rate instead;
2. *paced run*: on topics of their own, the service joins its group; once every partition
   is assigned a publisher in another process (so it takes no GIL from the service) sends a
   fresh simulated stream at a steady rate of half that capacity, stamping each record
   with `time.time()` in a header right before handing it to the producer. The service's
   `ConsumerSpec.handle` is wrapped: when a call returns (its database transaction
   committed, its emails accepted by the SMTP server) every record of it gets its latency,
   now minus its stamp. p50 and p99 of those, in milliseconds.

Capacity is measured with the publisher running because on 2 cores the publisher and the
broker take their share: in a first version that timed the service over records published
beforehand (as `voyage.py` does), the no-op loop measured 80,000/s and, paced at half that,
queued up (p50 1.2 s) whatever the settings.

One row per service, percentile and setting, its anchor the no-op run loop's same percentile
with the same setting in the same run (itself paced at half *its* capacity). No goal: issue
25 sets none for latency. The capacity and the paced rate actually achieved are the row's
references.

Settings. The run loop polls up to `RunnerSettings.batch_size` records: what has arrived,
or, with nothing queued, the first record within `poll_timeout_seconds` and what came with
it (`common.kafka.consumer.KafkaConsumer.poll_batch`); the embedded Tansu broker answers a
fetch with no new data only after the consumer's `fetch.wait.max.ms`
(`KAFKA_FETCH_WAIT_MAX_MS`). `max_records_per_call` stays the service's own (1,000;
notification 100). Each `--config` is one such triple; by default two runs: the services'
defaults (batch 1,000, poll 0.5 s, fetch wait 50 ms, as every benchmark runs) and batch 100,
poll 0.05 s, fetch wait 10 ms (`--quick`: that one only). Until issue 25 the poll waited for
a full batch or the timeout (librdkafka's `consume(n, timeout)` returns only then), so with
the defaults a record below full load waited up to 0.5 s for a batch that would not fill,
and only the short waits gave low latency; now the defaults no longer add the poll timeout,
and the short waits save about the difference in fetch wait. The figures, and the runs
before and after that change side by side, are in docs/performance.md.

The publisher lingers 20 ms (`linger.ms`, as every benchmark's publisher): the stamp is
taken before it, so up to 20 ms of every figure is the producer's batching. With 1 ms the
broker got a request per millisecond and, at 10,000 records/s, fell behind (p50 0.5 s).

Not measured: the producer's acknowledgement (it comes later and does not count), offset
commits (they follow the effect), a remote broker or database (everything here is local:
no network round trip, SQLite fsyncs on the local disk), PostgreSQL, load bursts (the rate is steady), the time to a human's inbox after the SMTP server accepted a
message, and latency above half capacity, where queues build and it grows without bound.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import NamedTuple

from notification import smtp_sink
from prometheus_client import CollectorRegistry
from results import Result, add_arguments, describe_url, report, size
from run_loop import FAST_GROUP
from voyage import simulate

import analytics_consumer.service
import notification_consumer.service
import voyage_consumer.service
from analytics_consumer.settings import AnalyticsSettings
from common.handlers import ConsumerSpec, Rejections
from common.kafka import KafkaConsumer, KafkaProducer, create_topics
from common.lifecycle import Bus, LifecycleEvent, PartitionsChanged, Subscriber
from common.logs import LogSubscriber, configure_logging
from common.metrics import RuntimeMetrics
from common.records import Inbound, OutboundRecord, Record
from common.runner import Runner
from common.service import tune_gc
from common.settings import RunnerSettings
from common.topics import Topics
from dreamscape_dev.testing.broker import EmbeddedBroker
from notification_consumer.settings import NotificationSettings
from voyage_consumer.settings import VoyageSettings

SENT_HEADER = "bench-sent-at"
"""The header holding `time.time()` when the publisher handed the record to its producer."""
PARTITIONS = 6
PUBLISHER_LINGER_MS = "20"
NOOP = "run loop, no-op handler"
LOAD = 0.5
"""The paced rate, as a share of the capacity measured (issue 25: half of it)."""
MAX_PACED_RECORDS = 60_000
"""At most this many records per paced run: the publisher generates them before it starts,
at about 30,000/s, and the no-op run loop's half capacity would otherwise ask for hundreds
of thousands."""


class Config(NamedTuple):
    """The settings a record's wait for its batch depends on."""

    batch_size: int
    poll_timeout_s: float
    fetch_wait_ms: int

    def label(self) -> str:
        return (
            f"batch {self.batch_size}, poll {self.poll_timeout_s:g} s, "
            f"fetch wait {self.fetch_wait_ms} ms"
        )


DEFAULTS = Config(1000, 0.5, int(FAST_GROUP["fetch.wait.max.ms"]))
SMALL = Config(100, 0.05, 10)


class Target(NamedTuple):
    """Where one run reads and writes: its topics, group and database, with a setting."""

    bootstrap: str
    prefix: str
    group: str
    database_url: str
    smtp_port: int
    config: Config

    def kafka(self) -> dict[str, str]:
        return {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            **FAST_GROUP,
            "fetch.wait.max.ms": str(self.config.fetch_wait_ms),
        }

    def common(self) -> dict[str, object]:
        """The settings every service takes, as keyword arguments."""
        return {
            "batch_size": self.config.batch_size,
            "poll_timeout_seconds": self.config.poll_timeout_s,
            "topic_prefix": self.prefix,
            "database_url": self.database_url,
            "kafka": self.kafka(),
        }


class Runs:
    """Each run's own topics, group and SQLite file, numbered."""

    def __init__(self, bootstrap: str, directory: Path, smtp_port: int) -> None:
        self._bootstrap, self._directory, self._smtp_port = bootstrap, directory, smtp_port
        self._count = 0

    def next(self, config: Config) -> Target:
        self._count += 1
        number = self._count
        url = f"sqlite:///{self._directory / f'run-{number}.db'}"
        return Target(
            self._bootstrap, f"lat{number}.", f"lat-{number}", url, self._smtp_port, config
        )


Build = Callable[[Target], tuple[ConsumerSpec, RunnerSettings]]


def noop(target: Target) -> tuple[ConsumerSpec, RunnerSettings]:
    settings = RunnerSettings(**target.common())  # type: ignore[arg-type]
    return ConsumerSpec(name="bench-noop", group_id=target.group, handle=lambda batch: None), (
        settings
    )


def voyage(target: Target) -> tuple[ConsumerSpec, RunnerSettings]:
    settings = VoyageSettings(**target.common())  # type: ignore[arg-type]
    return voyage_consumer.service.build(settings, CollectorRegistry()), settings


def analytics(target: Target) -> tuple[ConsumerSpec, RunnerSettings]:
    settings = AnalyticsSettings(**target.common())  # type: ignore[arg-type]
    return analytics_consumer.service.build(settings, CollectorRegistry()), settings


def notification(target: Target) -> tuple[ConsumerSpec, RunnerSettings]:
    settings = NotificationSettings(
        mail_from="DreamScape <no-reply@dreamscape.test>",
        payment_retry_url="https://app.dreamscape.test/bookings/{booking_id}/pay?retry={payment_id}",
        recipient_email_template="{user_id}@example.test",
        smtp_host="127.0.0.1",
        smtp_port=target.smtp_port,
        **target.common(),  # type: ignore[arg-type]
    )
    return notification_consumer.service.build(settings, CollectorRegistry()), settings


SERVICES: Mapping[str, Build] = {
    "noop": noop,
    "voyage": voyage,
    "analytics": analytics,
    "notification": notification,
}
NAMES = {
    "noop": NOOP,
    "voyage": "voyage on SQLite",
    "analytics": "analytics on SQLite",
    "notification": "notification (SQLite ledger, local SMTP server)",
}
CAPACITY_RECORDS = {"noop": 30_000, "voyage": 15_000, "analytics": 15_000, "notification": 2_000}
"""Records each capacity run reads: a few seconds each, about a second with `--quick`."""
QUICK_CAPACITY_RECORDS = {"noop": 5_000, "voyage": 3_000, "analytics": 3_000, "notification": 300}


class Latencies(NamedTuple):
    p50_ms: float
    p99_ms: float
    max_ms: float
    records: int
    rate: float
    """Records/s the publisher actually achieved, from the first stamp to the last."""
    throughput: float
    """Records/s from the first stamp to the last effect."""


def sent_at(record: Record) -> float:
    for name, value in record.headers:
        if name == SENT_HEADER and value is not None:
            return float(value)
    raise ValueError(f"{record.topic}/{record.partition}@{record.offset}: no {SENT_HEADER}")


def stamped(record: OutboundRecord) -> OutboundRecord:
    """`record` with the time now in its `SENT_HEADER`."""
    sent = (SENT_HEADER, repr(time.time()).encode())
    return OutboundRecord(record.topic, record.key, record.value, (*record.headers, sent))


def paced_records(prefix: str, count: int) -> list[OutboundRecord]:
    return simulate(count, Topics(prefix))[0][:count]


def publisher(
    bootstrap: str,
    prefix: str,
    count: int,
    rate: float | None,
    ready: ProcessEvent,
    go: ProcessEvent,
) -> None:
    """In a process of its own: `count` fresh records at `rate`/s (None: at once), each
    stamped as it is sent.

    Paced by the clock, at most a millisecond's worth of records at once: a sleep here is
    the pacing itself.
    """
    configure_logging(level="WARNING", fmt="json", service="bench-publisher")
    records = paced_records(prefix, count)
    producer = KafkaProducer({"bootstrap.servers": bootstrap, "linger.ms": PUBLISHER_LINGER_MS})
    ready.set()
    go.wait()
    if rate is None:
        producer.send(stamped(record) for record in records)
        producer.flush(120)
        return
    started, sent = time.perf_counter(), 0
    while sent < count:
        due = min(count, int((time.perf_counter() - started) * rate) + 1)
        producer.send(stamped(record) for record in records[sent:due])
        sent = due
        producer.check()
        time.sleep(max(started + sent / rate - time.perf_counter(), 0.001))
    producer.flush(60)


class Assigned:
    """A subscriber that sets `event` once `expected` partitions are assigned."""

    def __init__(self, expected: int) -> None:
        self.event = threading.Event()
        self._expected = expected
        self._partitions: set[tuple[str, int]] = set()

    def __call__(self, event: LifecycleEvent) -> None:
        if isinstance(event, PartitionsChanged) and event.change == "assigned":
            self._partitions.update(event.partitions)
            if len(self._partitions) >= self._expected:
                self.event.set()


def recording(
    spec: ConsumerSpec, count: int
) -> tuple[ConsumerSpec, dict[tuple[str, int, int], tuple[float, float]], threading.Event]:
    """`spec` whose handler records, per record, (sent, effect) once its call returned."""
    seen: dict[tuple[str, int, int], tuple[float, float]] = {}
    done = threading.Event()
    handle = spec.handle

    def handle_and_stamp(batch: Sequence[Inbound]) -> Rejections | None:
        outcome = handle(batch)  # raises if the effect did not happen: no stamp then
        now = time.time()
        for inbound in batch:
            record = inbound.record
            seen.setdefault((record.topic, record.partition, record.offset), (sent_at(record), now))
        if len(seen) >= count:
            done.set()
        return outcome

    return dataclasses.replace(spec, handle=handle_and_stamp), seen, done


@contextmanager
def running(
    spec: ConsumerSpec, settings: RunnerSettings, subscribers: Sequence[Subscriber]
) -> Iterator[None]:
    """The run loop over `spec` in a thread, stopped and joined when the block ends."""
    config = settings.consumer_config(spec.group_id)
    metrics = RuntimeMetrics(CollectorRegistry(), "bench")
    runner = Runner(
        spec,
        settings,
        lambda listener: KafkaConsumer(config, listener),
        KafkaProducer({"bootstrap.servers": config["bootstrap.servers"]}),
        Bus([LogSubscriber(), metrics, *subscribers]),
    )
    tune_gc()
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        yield
    finally:
        runner.stop()
        thread.join()


def timed(build: Build, target: Target, count: int, rate: float | None) -> Latencies:
    """Latencies of the service `build` makes, `count` records published at `rate`/s
    (None: as fast as the publisher goes) once its group has joined."""
    topics = Topics(target.prefix).payment_topics
    create_topics(target.bootstrap, topics, partitions=PARTITIONS)
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    process = context.Process(
        target=publisher, args=(target.bootstrap, target.prefix, count, rate, ready, go)
    )
    process.start()
    spec, settings = build(target)
    spec, seen, done = recording(spec, count)
    assigned = Assigned(len(topics) * PARTITIONS)
    try:
        with running(spec, settings, [assigned]):
            if not assigned.event.wait(60) or not ready.wait(120):
                raise RuntimeError("the group join or the publisher did not get ready in time")
            go.set()
            if not done.wait(count / (rate or 1000) + 120):
                raise RuntimeError(f"only {len(seen)} of {count} records handled")
    finally:
        process.join(60)
        if process.exitcode is None:
            process.kill()
    sent = [pair[0] for pair in seen.values()]
    effects = [pair[1] for pair in seen.values()]
    latencies = [(effect - start) * 1000 for start, effect in seen.values()]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Latencies(
        p50_ms=cuts[49],
        p99_ms=cuts[98],
        max_ms=max(latencies),
        records=len(seen),
        rate=(len(sent) - 1) / max(max(sent) - min(sent), 1e-9),
        throughput=len(seen) / (max(effects) - min(sent)),
    )


def capacity(build: Build, target: Target, count: int) -> float:
    """Records/s the service sustains from the first record sent to the last one's effect,
    the publisher sending `count` records as fast as it can meanwhile."""
    return timed(build, target, count, None).throughput


def paced(build: Build, target: Target, rate: float, seconds: float) -> Latencies:
    """Latencies of the service with records published at `rate`/s for about `seconds`."""
    return timed(build, target, max(200, min(MAX_PACED_RECORDS, round(rate * seconds))), rate)


def parse_config(text: str) -> Config:
    batch, poll, fetch_wait = text.split(",")
    return Config(int(batch), float(poll), int(fetch_wait))


def parse_rate(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    if name not in SERVICES:
        raise argparse.ArgumentTypeError(f"{name}: one of {', '.join(SERVICES)}")
    return name, float(value)


def rows(
    found: Mapping[tuple[str, Config], Latencies],
    capacities: Mapping[str, float],
    databases: Mapping[str, str],
) -> list[Result]:
    """Per service, setting and percentile, one row anchored on the no-op run loop's."""
    results = []
    for (name, config), run in found.items():
        if name == "noop":
            continue
        anchor = found[("noop", config)]
        for label, value, anchor_value in (
            ("p50", run.p50_ms, anchor.p50_ms),
            ("p99", run.p99_ms, anchor.p99_ms),
        ):
            results.append(
                Result(
                    name=f"{NAMES[name]}: {label} publish-to-effect ({config.label()})",
                    benchmark="latency.py",
                    events_per_s=value,
                    unit="ms",
                    anchor=f"{NOOP}, {label}",
                    anchor_events_per_s=anchor_value,
                    records=run.records,
                    database=databases[name],
                    references={
                        "capacity, full speed": capacities[name],
                        "paced publish rate": run.rate,
                    },
                    details={
                        "percentile": label,
                        "p50_ms": round(run.p50_ms, 2),
                        "p99_ms": round(run.p99_ms, 2),
                        "max_ms": round(run.max_ms, 2),
                        "batch_size": config.batch_size,
                        "poll_timeout_seconds": config.poll_timeout_s,
                        "fetch_wait_max_ms": config.fetch_wait_ms,
                        "load": f"{LOAD:.0%} of capacity",
                        "anchor_paced_rate": round(anchor.rate),
                    },
                )
            )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="per paced run (5; 2)")
    parser.add_argument(
        "--config",
        type=parse_config,
        action="append",
        dest="configs",
        help="BATCH,POLL_S,FETCH_WAIT_MS, one paced run of every service each "
        f"(default: {','.join(map(str, DEFAULTS))} and {','.join(map(str, SMALL))}; "
        "--quick: the latter)",
    )
    parser.add_argument(
        "--rate",
        type=parse_rate,
        action="append",
        default=[],
        help="SERVICE=N: pace SERVICE at N records/s instead of half its measured capacity",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(SERVICES),
        default=list(SERVICES),
        help="the no-op loop always runs",
    )
    add_arguments(parser)
    args = parser.parse_args()
    seconds = args.seconds or (1.5 if args.quick else 5.0)
    configs: list[Config] = args.configs or ([SMALL] if args.quick else [DEFAULTS, SMALL])
    given: dict[str, float] = dict(args.rate)
    configure_logging(level="ERROR", fmt="json", service="bench")
    found: dict[tuple[str, Config], Latencies] = {}
    capacities: dict[str, float] = {}
    databases: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as directory, EmbeddedBroker() as broker:
        sink, smtp_port = smtp_sink()
        try:
            runs = Runs(broker.bootstrap_servers, Path(directory), smtp_port)
            for name in ["noop", *(n for n in args.only if n != "noop")]:
                if name in given:
                    capacities[name] = given[name] / LOAD
                else:
                    records = size(
                        None, args.quick, CAPACITY_RECORDS[name], QUICK_CAPACITY_RECORDS[name]
                    )
                    capacities[name] = capacity(SERVICES[name], runs.next(DEFAULTS), records)
                print(f"{NAMES[name]}: capacity {capacities[name]:,.0f} records/s", flush=True)
                for config in configs:
                    target = runs.next(config)
                    run = found[(name, config)] = paced(
                        SERVICES[name], target, capacities[name] * LOAD, seconds
                    )
                    databases[name] = (
                        "none" if name == "noop" else describe_url(target.database_url)
                    )
                    print(
                        f"  {config.label()}: {run.records:,} records at {run.rate:,.0f}/s, "
                        f"p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, max {run.max_ms:.1f} ms",
                        flush=True,
                    )
        finally:
            sink.terminate()
            sink.wait(10)
    report(rows(found, capacities, databases), args.json)


if __name__ == "__main__":
    main()
