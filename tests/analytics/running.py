"""The analytics service's runner on a thread of the test process, against the real broker.

It is the production spec (`analytics_consumer.service.build`) in the production run loop,
with its own Prometheus registry and a lifecycle recorder; only the settings are the fast
ones the run-loop tests use. "Done" is decided from the offsets the service stored in its
database, compared with what the test knows it produced, never from watermarks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from analytics_consumer.service import build
from analytics_consumer.settings import AnalyticsSettings
from common.errors import InvalidEvent
from common.kafka import KafkaConsumer, KafkaProducer
from common.lifecycle import BatchHandled, Bus
from common.parsing import parse_event
from common.records import OutboundRecord, TopicPartition
from common.runner import Runner
from common.topics import Topics
from dreamscape_dev.testing.running import RunnerThread
from tests.integration.helpers import Delivered, Recorder, runner_settings, wait_until


def analytics_settings(
    topics: Topics, bootstrap: str, database_url: str, group: str, **overrides: Any
) -> AnalyticsSettings:
    base = runner_settings(topics, bootstrap).model_dump()
    base["kafka"] = {**base["kafka"], "group.id": group}
    return AnalyticsSettings(**(base | {"database_url": database_url} | overrides))


class AnalyticsThread(RunnerThread):
    """The analytics service's spec in the run loop, on a thread, with its own registry."""

    def __init__(self, settings: AnalyticsSettings, name: str = "analytics") -> None:
        self.registry = CollectorRegistry()
        self.recorder = Recorder()
        self.spec = build(settings, self.registry)
        config = settings.consumer_config(self.spec.group_id)
        runner = Runner(
            self.spec,
            settings,
            lambda listener: KafkaConsumer(config, listener),
            KafkaProducer(settings.producer_config()),
            Bus([self.recorder]),
        )
        super().__init__(runner, name=name, stop_within_s=20)

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(f"dreamscape_analytics_{name}", labels)


def expected_positions(
    records: Sequence[OutboundRecord], delivered: Sequence[Delivered], topics: Topics
) -> dict[TopicPartition, int]:
    """Per partition, the offset after its last valid record: where the stored offset ends."""
    ends: dict[TopicPartition, int] = {}
    for record, where in zip(records, delivered, strict=True):
        try:
            parse_event(record.value, record.topic, topics=topics)
        except InvalidEvent:
            continue
        ends[where.tp] = max(ends.get(where.tp, 0), where.offset + 1)
    return ends


def wait_caught_up(
    stored: Callable[[], Mapping[TopicPartition, int]],
    ends: Mapping[TopicPartition, int],
    timeout_s: float,
    *aborts: Callable[[], str | None],
) -> None:
    """Wait until `stored()` (the database's offsets) reaches `ends` for every partition."""

    def done() -> bool:
        positions = stored()
        return all(positions.get(tp, 0) >= end for tp, end in ends.items())

    def abort() -> str | None:
        return next((reason for check in aborts if (reason := check()) is not None), None)

    wait_until(done, timeout_s, "the stored offsets to cover every produced record", abort=abort)


def handled_payments(recorder: Recorder, event_type: str) -> set[str]:
    """paymentIds of the `event_type` events one runner handled."""
    return {
        inbound.event.payload.payment_id
        for batch in recorder.of(BatchHandled)
        for inbound in batch.handled
        if inbound.event.event_type == event_type
    }
