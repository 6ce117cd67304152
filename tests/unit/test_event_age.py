"""Event age and record age: how old an event is when its outcome becomes durable.

`RuntimeMetrics` observes both histograms when a batch's effects are durable (`BatchHandled`)
and when a dead letter is acknowledged (`RecordDeadLettered`), against its injected clock.
The last class runs the real run loop over the fake consumer of test_runner_decisions.py, so
the lifecycle points the ages are measured at are the runner's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from prometheus_client import CollectorRegistry, Histogram

from common.errors import PermanentError
from common.fast_histogram import FastHistogram
from common.lifecycle import BatchHandled, RecordDeadLettered
from common.metrics import AGE_BUCKETS, RuntimeMetrics
from common.records import Inbound, Record
from common.topics import EVENT_TYPES
from dreamscape_dev.testing.builders import encode, event, inbound
from tests.unit.test_runner_decisions import TOPIC, Harness, record

SERVICE = "notification-consumer"
INITIATED, COMPLETED, FAILED, _ = EVENT_TYPES
EVENT_AT = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
NOW = EVENT_AT.timestamp() + 45.5
"""The fake clock: 45.5 s after the events' envelope timestamp."""
BROKER_MS = int((EVENT_AT.timestamp() + 40) * 1000)
"""A broker timestamp 40 s after the event: record age 5.5 s at NOW."""


def aged(event_type: str, *, at: datetime = EVENT_AT, broker_ms: int | None = BROKER_MS) -> Inbound:
    """A parsed record of `event_type` whose envelope says `at`, with broker time `broker_ms`."""
    parsed = inbound(event(event_type, at=at))
    return Inbound(msgspec.structs.replace(parsed.record, timestamp_ms=broker_ms), parsed.event)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(f"dreamscape_consumer_{name}", {"service": SERVICE, **labels})


def bucket(registry: CollectorRegistry, name: str, le: float, **labels: str) -> float | None:
    return sample(registry, f"{name}_bucket", le=str(float(le)), **labels)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> RuntimeMetrics:
    return RuntimeMetrics(registry, SERVICE, now=lambda: NOW)


class TestEventAge:
    """event_age_seconds and record_age_seconds, fed with lifecycle events."""

    def test_a_handled_batch_observes_each_records_event_and_record_age(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Each handled record adds now minus its envelope timestamp and now minus its broker timestamp."""
        metrics(BatchHandled([aged(COMPLETED), aged(COMPLETED), aged(FAILED)], duration_s=0.1))
        handled = {"event_type": "payment.completed", "outcome": "handled"}
        assert sample(registry, "event_age_seconds_count", **handled) == 2
        assert sample(registry, "event_age_seconds_sum", **handled) == pytest.approx(91.0)
        assert bucket(registry, "event_age_seconds", 30, **handled) == 0
        assert bucket(registry, "event_age_seconds", 60, **handled) == 2
        assert sample(registry, "record_age_seconds_sum", **handled) == pytest.approx(11.0)
        assert bucket(registry, "record_age_seconds", 5, **handled) == 0
        assert bucket(registry, "record_age_seconds", 10, **handled) == 2
        failed = {"event_type": "payment.failed", "outcome": "handled"}
        assert sample(registry, "event_age_seconds_count", **failed) == 1

    def test_an_old_event_lands_above_the_two_minute_bucket(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """An event five minutes old is counted under le=300 but not under le=60 or le=120."""
        metrics(BatchHandled([aged(COMPLETED, at=EVENT_AT - timedelta(minutes=5))], 0.1))
        handled = {"event_type": "payment.completed", "outcome": "handled"}
        assert bucket(registry, "event_age_seconds", 60, **handled) == 0
        assert bucket(registry, "event_age_seconds", 120, **handled) == 0
        assert bucket(registry, "event_age_seconds", 300, **handled) == 0
        assert bucket(registry, "event_age_seconds", 600, **handled) == 1
        assert sample(registry, "event_age_seconds_sum", **handled) == pytest.approx(345.5)

    def test_a_dead_letter_observes_both_ages_under_its_outcome(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """An acknowledged dead letter of a parsed event counts under outcome dead_lettered."""
        item = aged(INITIATED)
        metrics(RecordDeadLettered(item.record, item, "permanent", "no", 1, "dlq"))
        dead = {"event_type": "payment.initiated", "outcome": "dead_lettered"}
        assert sample(registry, "event_age_seconds_sum", **dead) == pytest.approx(45.5)
        assert sample(registry, "record_age_seconds_sum", **dead) == pytest.approx(5.5)
        handled = {"event_type": "payment.initiated", "outcome": "handled"}
        assert sample(registry, "event_age_seconds_count", **handled) == 0

    def test_an_unparsed_dead_letter_has_only_a_record_age(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """A letter whose value did not parse has no envelope time: only its record age counts, as unknown."""
        raw = Record(TOPIC, 0, 9, key=None, value=b"{", timestamp_ms=BROKER_MS)
        metrics(RecordDeadLettered(raw, None, "not_json", "bad", 1, "dlq"))
        dead = {"event_type": "unknown", "outcome": "dead_lettered"}
        assert sample(registry, "record_age_seconds_sum", **dead) == pytest.approx(5.5)
        assert sample(registry, "event_age_seconds_count", **dead) == 0

    def test_a_record_without_broker_timestamp_has_only_an_event_age(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """A record the client gave no timestamp to is observed in event age only."""
        metrics(BatchHandled([aged(COMPLETED, broker_ms=None)], duration_s=0.1))
        handled = {"event_type": "payment.completed", "outcome": "handled"}
        assert sample(registry, "event_age_seconds_count", **handled) == 1
        assert sample(registry, "record_age_seconds_count", **handled) == 0

    def test_an_event_from_a_clock_ahead_counts_as_age_zero(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """A timestamp later than now (producer clock skew) is observed as 0 s, so the sum never decreases."""
        metrics(BatchHandled([aged(COMPLETED, at=EVENT_AT + timedelta(seconds=50))], 0.1))
        handled = {"event_type": "payment.completed", "outcome": "handled"}
        assert sample(registry, "event_age_seconds_sum", **handled) == 0
        assert bucket(registry, "event_age_seconds", 0.1, **handled) == 1

    def test_the_handled_series_start_at_zero_with_the_objective_buckets(
        self, registry: CollectorRegistry, metrics: RuntimeMetrics
    ) -> None:
        """Before any event each event type's handled histograms exist at zero, with le=60 and le=120 buckets."""
        assert {60.0, 120.0} <= set(AGE_BUCKETS)
        for event_type in EVENT_TYPES:
            handled = {"event_type": event_type, "outcome": "handled"}
            assert bucket(registry, "event_age_seconds", 60, **handled) == 0
            assert bucket(registry, "record_age_seconds", 120, **handled) == 0


def fail_on(offset: int) -> Callable[[Sequence[Inbound]], None]:
    """A handler rejecting the record at `offset` for good and accepting the others."""

    def handle(batch: Sequence[Inbound]) -> None:
        if any(i.record.offset == offset for i in batch):
            raise PermanentError("no such booking")

    return handle


class TestAgesFromTheRunLoop:
    """The run loop's own lifecycle events feed the ages at the fake clock's time."""

    def test_handled_and_dead_lettered_records_are_observed_once_each(self) -> None:
        """Two records handled and one dead-lettered by the runner give two handled and one dead-lettered observation, aged from their timestamps."""
        value = encode(event(INITIATED, at=EVENT_AT))
        records = [
            msgspec.structs.replace(record(n, value), timestamp_ms=BROKER_MS) for n in range(3)
        ]
        harness = Harness(
            fail_on(1),
            [records],
            wall_clock=lambda: EVENT_AT + timedelta(minutes=1),
        )
        registry = CollectorRegistry()
        harness.bus.subscribe(RuntimeMetrics(registry, SERVICE, now=lambda: NOW))
        harness.run()
        handled = {"event_type": "payment.initiated", "outcome": "handled"}
        dead = {"event_type": "payment.initiated", "outcome": "dead_lettered"}
        assert sample(registry, "event_age_seconds_count", **handled) == 2
        assert sample(registry, "event_age_seconds_sum", **handled) == pytest.approx(91.0)
        assert sample(registry, "record_age_seconds_sum", **handled) == pytest.approx(11.0)
        assert sample(registry, "event_age_seconds_count", **dead) == 1
        assert sample(registry, "record_age_seconds_sum", **dead) == pytest.approx(5.5)


class TestFastHistogram:
    """The hot-path histogram writes what prometheus_client's Histogram writes."""

    def test_its_exposition_is_the_histograms_for_the_same_observations(self) -> None:
        """Bucket, count and sum samples equal prometheus_client's Histogram's for the same values (le 60 and 120 included)."""
        ours, theirs = CollectorRegistry(), CollectorRegistry()
        fast = FastHistogram("age_seconds", "Age.", ["kind"], AGE_BUCKETS, ours)
        slow = Histogram("age_seconds", "Age.", ["kind"], registry=theirs, buckets=AGE_BUCKETS)
        for value in (0.0, 0.1, 0.3, 60.0, 60.5, 119.0, 120.0, 4000.0):
            fast.labels("a").observe(value)
            slow.labels("a").observe(value)
        fast.labels("b")
        slow.labels("b")

        def samples(
            registry: CollectorRegistry,
        ) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
            return {
                (s.name, tuple(sorted(s.labels.items())), s.value)
                for family in registry.collect()
                for s in family.samples
                if not s.name.endswith("_created")
            }

        assert samples(ours) == samples(theirs)
        assert ours.get_sample_value("age_seconds_bucket", {"kind": "a", "le": "60.0"}) == 4

    def test_a_wrong_number_of_label_values_is_refused(self) -> None:
        """labels() with fewer values than label names raises ValueError, as Histogram does."""
        fast = FastHistogram("age_seconds", "Age.", ["a", "b"], AGE_BUCKETS, CollectorRegistry())
        with pytest.raises(ValueError, match="takes labels"):
            fast.labels("x")
