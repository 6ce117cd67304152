"""Prometheus metrics of the run loop, fed as a lifecycle subscriber.

Metrics subscribe to the lifecycle events (`common.lifecycle`) so the loop has no metrics
code. They live in a registry passed in, never the global one, so each test (and each
service in a process) gets its own. `BatchHandled` arrives many times per second: it is
counted with one local tally and one `inc(n)` per event type, on labelled children cached
once, instead of a `.labels()` lookup per record.

Event age and record age (`*_age_seconds{event_type,outcome}`) are observed where an
outcome becomes durable, which is where the runner may store the record's offset: at
`BatchHandled` (the handler returned, its transaction committed) and at `RecordDeadLettered`
(the broker acknowledged the letter). Event age counts from the envelope's `timestamp`
(when the payment happened, by the producer's clock), record age from the record's Kafka
timestamp (CreateTime: when it was produced; LogAppendTime if the topic says so): event age
minus record age is the producer's delay, record age is ours. Ages are read against the
injected clock once per lifecycle event; an age below zero (a clock ahead of ours) counts
as 0, so a histogram's sum never decreases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from common.fast_histogram import Child, FastHistogram
from common.lifecycle import (
    BatchHandled,
    ConsumerError,
    LagMeasured,
    LifecycleEvent,
    OffsetsCommitted,
    PartitionsChanged,
    RecordDeadLettered,
    RetryScheduled,
    TopicMissing,
)
from common.records import Inbound, Record, TopicPartition
from common.topics import EVENT_TYPES

UNKNOWN_EVENT_TYPE: Final = "unknown"
"""The event_type label of a dead-lettered record whose value did not parse."""

BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
BATCH_DURATION_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

AGE_BUCKETS: Final = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
"""Event and record age buckets: le=60 and le=120 are the objectives' thresholds (alerts.yml)."""

_PREFIX: Final = "dreamscape_consumer_"


class RuntimeMetrics:
    """The consumer runtime's metrics in `registry`; call the instance with lifecycle events.

    Label sets that are known up front (event types, retry kinds, commit reasons) start at
    zero, so rates are defined from the first scrape. Lag is published per partition while
    the partition is reported and assigned; an unknown (negative) lag is not published.
    """

    def __init__(
        self, registry: CollectorRegistry, service: str, *, now: Callable[[], float] = time.time
    ) -> None:
        self._service = service
        self._now = now
        self._records = _counter(
            registry, "records", "Records by outcome.", "event_type", "outcome"
        )
        self._dead_letters = _counter(
            registry, "dead_letters", "Records dead-lettered.", "error_type"
        )
        self._retries = _counter(registry, "retries", "Retries scheduled, by error kind.", "kind")
        self._commits = _counter(registry, "commits", "Successful offset commits.", "reason")
        self._topic_missing = _counter(registry, "topic_missing", "Missing topic reports.", "topic")
        self._errors = _counter(registry, "errors", "Client errors not about one record.", "fatal")
        self._lag = _gauge(registry, "lag", "Consumer lag in records.", "topic", "partition")
        self._batch_duration = _histogram(
            registry, "batch_duration_seconds", "Handler time per batch.", BATCH_DURATION_BUCKETS
        ).labels(service)
        self._batch_size = _histogram(
            registry, "batch_size", "Records per handled batch.", BATCH_SIZE_BUCKETS
        ).labels(service)
        self._last_commit = _gauge(
            registry, "last_commit_timestamp_seconds", "Unix time of the last commit."
        ).labels(service)
        self._assigned_gauge = _gauge(
            registry, "assigned_partitions", "Partitions assigned to this consumer."
        ).labels(service)
        self._event_age = _age_histogram(
            registry,
            "event_age_seconds",
            "From the event's envelope timestamp to its durable outcome.",
        )
        self._record_age = _age_histogram(
            registry,
            "record_age_seconds",
            "From the record's Kafka timestamp to its durable outcome.",
        )
        self._record_children: dict[tuple[str, str], Counter] = {}
        self._age_children: dict[tuple[str, str], tuple[Child, Child]] = {}
        self._assigned: set[TopicPartition] = set()
        self._lagging: set[TopicPartition] = set()
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        for event_type in EVENT_TYPES:
            self._record_child(event_type, "handled")
            self._record_child(event_type, "dead_lettered")
            self._age_child(event_type, "handled")
        self._record_child(UNKNOWN_EVENT_TYPE, "dead_lettered")
        _touch(self._retries, self._service, ("transient", "unexpected", "deferred"))
        _touch(self._commits, self._service, ("periodic", "revoke", "shutdown"))
        _touch(self._errors, self._service, ("true", "false"))

    def __call__(self, event: LifecycleEvent) -> None:
        match event:  # the per-batch event first: it is by far the most frequent
            case BatchHandled():
                self._batch_handled(event)
            case RecordDeadLettered():
                self._dead_lettered(event)
            case RetryScheduled():
                self._retries.labels(self._service, event.kind).inc()
            case OffsetsCommitted():
                self._commits.labels(self._service, event.reason).inc()
                self._last_commit.set(self._now())
            case LagMeasured():
                self._lag_measured(event)
            case PartitionsChanged():
                self._partitions_changed(event)
            case TopicMissing():
                self._topic_missing.labels(self._service, event.topic).inc()
            case ConsumerError():
                self._errors.labels(self._service, "true" if event.fatal else "false").inc()
            case _:  # OffsetsStored, LoopStopped
                pass

    def _batch_handled(self, event: BatchHandled) -> None:
        counts: dict[str, int] = {}
        now = self._now()
        for inbound in event.handled:
            event_type = inbound.event.event_type
            counts[event_type] = counts.get(event_type, 0) + 1
            self._observe_ages(inbound.record, inbound, event_type, "handled", now)
        for handled_type, count in counts.items():
            self._record_child(handled_type, "handled").inc(count)
        self._batch_duration.observe(event.duration_s)
        self._batch_size.observe(len(event.handled))

    def _dead_lettered(self, event: RecordDeadLettered) -> None:
        inbound = event.inbound
        event_type = inbound.event.event_type if inbound is not None else UNKNOWN_EVENT_TYPE
        self._record_child(event_type, "dead_lettered").inc()
        self._dead_letters.labels(self._service, event.error_type).inc()
        self._observe_ages(event.record, inbound, event_type, "dead_lettered", self._now())

    def _observe_ages(
        self, record: Record, inbound: Inbound | None, event_type: str, outcome: str, now: float
    ) -> None:
        """Event age (when the envelope parsed) and record age (when the client gave a time)."""
        event_age, record_age = self._age_child(event_type, outcome)
        if inbound is not None:
            event_age.observe(max(0.0, now - inbound.event.timestamp.timestamp()))
        if record.timestamp_ms is not None:
            record_age.observe(max(0.0, now - record.timestamp_ms / 1000))

    def _age_child(self, event_type: str, outcome: str) -> tuple[Child, Child]:
        key = (event_type, outcome)
        children = self._age_children.get(key)
        if children is None:
            labels = (self._service, event_type, outcome)
            children = (self._event_age.labels(*labels), self._record_age.labels(*labels))
            self._age_children[key] = children
        return children

    def _record_child(self, event_type: str, outcome: str) -> Counter:
        key = (event_type, outcome)
        child = self._record_children.get(key)
        if child is None:
            child = self._records.labels(self._service, event_type, outcome)
            self._record_children[key] = child
        return child

    def _lag_measured(self, event: LagMeasured) -> None:
        known = {tp for tp, lag in event.lag.items() if lag >= 0}
        self._forget_lag(self._lagging - known)
        for tp in known:
            self._lag.labels(self._service, tp.topic, str(tp.partition)).set(event.lag[tp])
        self._lagging = known

    def _partitions_changed(self, event: PartitionsChanged) -> None:
        if event.change == "assigned":
            self._assigned.update(event.partitions)
        else:  # "revoked" or "lost"
            self._assigned.difference_update(event.partitions)
            self._forget_lag(self._lagging.intersection(event.partitions))
        self._assigned_gauge.set(len(self._assigned))

    def _forget_lag(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in list(partitions):
            self._lag.remove(self._service, tp.topic, str(tp.partition))
            self._lagging.discard(tp)


def _counter(registry: CollectorRegistry, name: str, doc: str, *labels: str) -> Counter:
    """A counter named `dreamscape_consumer_<name>_total` labelled by service and `labels`."""
    return Counter(_PREFIX + name, doc, ["service", *labels], registry=registry)


def _gauge(registry: CollectorRegistry, name: str, doc: str, *labels: str) -> Gauge:
    """A gauge named `dreamscape_consumer_<name>` labelled by service and `labels`."""
    return Gauge(_PREFIX + name, doc, ["service", *labels], registry=registry)


def _histogram(
    registry: CollectorRegistry, name: str, doc: str, buckets: Sequence[float]
) -> Histogram:
    """A histogram named `dreamscape_consumer_<name>` labelled by service."""
    return Histogram(_PREFIX + name, doc, ["service"], registry=registry, buckets=buckets)


def _age_histogram(registry: CollectorRegistry, name: str, doc: str) -> FastHistogram:
    """A histogram `dreamscape_consumer_<name>` of ages by service, event type and outcome.

    Observed twice per record: a `FastHistogram`, a fraction of `Histogram.observe`'s cost.
    """
    return FastHistogram(
        _PREFIX + name, doc, ["service", "event_type", "outcome"], AGE_BUCKETS, registry
    )


def _touch(counter: Counter, service: str, values: Iterable[str]) -> None:
    """Create the label sets `(service, value)` at zero."""
    for value in values:
        counter.labels(service, value)
