"""The runtime's Prometheus metrics, fed with lifecycle events."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from common.lifecycle import (
    BatchHandled,
    ConsumerError,
    LagMeasured,
    LoopStopped,
    OffsetsCommitted,
    OffsetsStored,
    PartitionsChanged,
    RecordDeadLettered,
    RetryScheduled,
    TopicMissing,
)
from common.metrics import RuntimeMetrics
from common.records import Record, TopicPartition
from common.topics import EVENT_TYPES
from dreamscape_dev.testing.builders import inbound

SERVICE = "analytics"
_, COMPLETED, FAILED, REFUNDED = EVENT_TYPES
TP0 = TopicPartition("dreamscape.payment.completed", 0)
TP1 = TopicPartition("dreamscape.payment.completed", 1)
TP2 = TopicPartition("dreamscape.payment.failed", 0)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> RuntimeMetrics:
    return RuntimeMetrics(registry, SERVICE, now=lambda: 1_766_000_000.5)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"dreamscape_consumer_{name}", {"service": SERVICE, **labels})


def lag(registry: CollectorRegistry, tp: TopicPartition) -> float | None:
    return value(registry, "lag", topic=tp.topic, partition=str(tp.partition))


class TestRuntimeMetrics:
    def test_batch_counts_records_by_event_type(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """A batch adds its records to the handled counter of each event type."""
        metrics(
            BatchHandled([inbound(COMPLETED), inbound(FAILED), inbound(COMPLETED)], duration_s=0.02)
        )
        metrics(BatchHandled([inbound(COMPLETED)], duration_s=0.01))
        handled = {"outcome": "handled"}
        assert value(registry, "records_total", event_type="payment.completed", **handled) == 3
        assert value(registry, "records_total", event_type="payment.failed", **handled) == 1
        assert value(registry, "records_total", event_type="payment.refunded", **handled) == 0

    def test_batch_observes_duration_and_size(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Each batch is one observation of its handler time and of its size."""
        metrics(BatchHandled([inbound(COMPLETED)] * 3, duration_s=0.02))
        metrics(BatchHandled([inbound(COMPLETED)] * 600, duration_s=0.5))
        assert value(registry, "batch_duration_seconds_count") == 2
        assert value(registry, "batch_duration_seconds_sum") == pytest.approx(0.52)
        assert value(registry, "batch_size_sum") == 603
        assert value(registry, "batch_size_bucket", le="5.0") == 1
        assert value(registry, "batch_size_bucket", le="1000.0") == 2

    def test_dead_letters_count_by_event_type_and_error(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Dead letters count by event type ("unknown" when unparsed) and by error type."""
        item = inbound(REFUNDED)
        metrics(RecordDeadLettered(item.record, item, "permanent", "no", 1, "dlq"))
        raw = Record("dreamscape.payment.completed", 0, 9, key=None, value=b"{")
        metrics(RecordDeadLettered(raw, None, "not_json", "bad", 1, "dlq"))
        metrics(RecordDeadLettered(raw, None, "not_json", "bad", 1, "dlq"))
        dead = {"outcome": "dead_lettered"}
        assert value(registry, "records_total", event_type="payment.refunded", **dead) == 1
        assert value(registry, "records_total", event_type="unknown", **dead) == 2
        assert value(registry, "dead_letters_total", error_type="not_json") == 2
        assert value(registry, "dead_letters_total", error_type="permanent") == 1

    def test_retries_count_by_kind(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Each scheduled retry counts once under its kind, whatever the number of records."""
        records = [inbound(COMPLETED).record, inbound(COMPLETED).record]
        metrics(RetryScheduled(records, "transient", OSError("down"), 1, 0.5))
        metrics(RetryScheduled(records, "transient", OSError("down"), 2, 1.0))
        assert value(registry, "retries_total", kind="transient") == 2
        assert value(registry, "retries_total", kind="unexpected") == 0

    def test_commit_records_time_and_reason(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """A commit sets the last-commit time from the clock and counts under its reason."""
        assert value(registry, "last_commit_timestamp_seconds") == 0
        metrics(OffsetsCommitted({TP0: 10}, "periodic"))
        metrics(OffsetsCommitted({TP0: 12}, "shutdown"))
        assert value(registry, "last_commit_timestamp_seconds") == 1_766_000_000.5
        assert value(registry, "commits_total", reason="periodic") == 1
        assert value(registry, "commits_total", reason="shutdown") == 1
        assert value(registry, "commits_total", reason="revoke") == 0

    def test_lag_follows_the_latest_report(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Lag is set per partition; partitions missing from the next report disappear."""
        metrics(LagMeasured({TP0: 5, TP1: 7}))
        metrics(LagMeasured({TP0: 2, TP2: 0}))
        assert lag(registry, TP0) == 2
        assert lag(registry, TP1) is None
        assert lag(registry, TP2) == 0

    def test_unknown_lag_is_not_published(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """A negative lag (the client does not know yet) removes the series instead of -1."""
        metrics(LagMeasured({TP0: 5}))
        metrics(LagMeasured({TP0: -1}))
        assert lag(registry, TP0) is None

    def test_assignment_tracks_partitions_and_drops_their_lag(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Assigned partitions are counted; revoked or lost ones lose their lag series."""
        metrics(PartitionsChanged("assigned", [TP0, TP1]))
        metrics(PartitionsChanged("assigned", [TP2]))
        metrics(LagMeasured({TP0: 1, TP1: 1, TP2: 1}))
        assert value(registry, "assigned_partitions") == 3
        metrics(PartitionsChanged("revoked", [TP1]))
        metrics(PartitionsChanged("lost", [TP2]))
        assert value(registry, "assigned_partitions") == 1
        assert (lag(registry, TP0), lag(registry, TP1), lag(registry, TP2)) == (1, None, None)

    def test_missing_topics_and_client_errors_are_counted(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Missing-topic reports count per topic; client errors count by fatality."""
        metrics(TopicMissing("dreamscape.payment.failed"))
        metrics(TopicMissing("dreamscape.payment.failed"))
        metrics(ConsumerError("_TRANSPORT", "down", fatal=False))
        assert value(registry, "topic_missing_total", topic="dreamscape.payment.failed") == 2
        assert value(registry, "errors_total", fatal="false") == 1
        assert value(registry, "errors_total", fatal="true") == 0

    def test_other_events_change_nothing(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Stored offsets and the loop's stop leave every sample as it was."""
        before = generate_latest(registry)
        metrics(OffsetsStored({TP0: 3}))
        metrics(LoopStopped("signal"))
        assert generate_latest(registry) == before

    def test_metrics_stay_out_of_the_global_registry(self, registry: CollectorRegistry) -> None:
        """Two instances in their own registries coexist and leave the global one untouched."""
        RuntimeMetrics(registry, SERVICE)
        RuntimeMetrics(CollectorRegistry(), SERVICE)
        labels = {"service": SERVICE}
        assert REGISTRY.get_sample_value("dreamscape_consumer_assigned_partitions", labels) is None
