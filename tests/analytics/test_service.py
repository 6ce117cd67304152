"""The analytics service end to end: real broker, real run loop, real database."""

from __future__ import annotations

import uuid

import pytest

from common.topics import PAYMENT_COMPLETED, PAYMENT_INITIATED, Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from tests.analytics import independent
from tests.analytics.helpers import engine_for, report, stored_offsets
from tests.analytics.running import (
    AnalyticsThread,
    analytics_settings,
    expected_positions,
    handled_payments,
    wait_caught_up,
)
from tests.integration.helpers import produce, wait_until

pytestmark = pytest.mark.integration

TIMEOUT_S = 45.0


def _group() -> str:
    return f"analytics-{uuid.uuid4().hex[:8]}"


class TestEndToEnd:
    def test_a_published_history_gives_the_exact_figures_and_gauges(
        self, kafka_bootstrap_servers: str, topics: Topics, sqlite_url: str
    ) -> None:
        """Simulated flows with duplicates, swapped events and poison, consumed through the run loop, give exactly the independently computed figures, also on /metrics."""
        config = SimulationConfig(
            flows=300, seed=21, duplicate_rate=0.05, reorder_rate=0.2, poison=5, topics=topics
        )
        records = generate(config).records
        delivered = produce(kafka_bootstrap_servers, records)
        settings = analytics_settings(
            topics,
            kafka_bootstrap_servers,
            sqlite_url,
            _group(),
            analytics_refresh_seconds=0,
            alert_window_seconds=30 * 86_400,
        )
        engine = engine_for(sqlite_url)
        ends = expected_positions(records, delivered, topics)
        with AnalyticsThread(settings) as service:
            wait_caught_up(lambda: stored_offsets(engine), ends, TIMEOUT_S, service.died)
            service.runner.stop()
        events = independent.distinct_events(records)
        expected = independent.figures(events)
        assert independent.comparable(report(engine)) == expected
        assert len(service.recorder.dead_lettered()) == 5

        assert (
            service.gauge("events", event_type=PAYMENT_INITIATED) == expected["payments_initiated"]
        )
        assert service.gauge("rate_percent", rate="failure") == expected["failure_rate"]
        assert service.gauge("revenue", currency="EUR") == float(expected["revenue"]["EUR"])
        assert service.gauge("alert_active", alert="high_failure_rate") == 1
        assert service.gauge("alert_active", alert="high_refund_rate") in (0, 1)


class TestScaleOut:
    @pytest.mark.postgres
    def test_two_instances_sharing_postgresql_report_what_one_instance_does(
        self,
        kafka_bootstrap_servers: str,
        topics: Topics,
        postgres_url: str,
        sqlite_url: str,
    ) -> None:
        """Two instances in one group split the partitions over one PostgreSQL database and end with the same report as a single instance, joining payments whose halves they saw apart."""
        group = _group()
        shared = analytics_settings(topics, kafka_bootstrap_servers, postgres_url, group)
        single = analytics_settings(topics, kafka_bootstrap_servers, sqlite_url, _group())
        config = SimulationConfig(
            flows=400, seed=33, duplicate_rate=0.05, reorder_rate=0.3, topics=topics
        )
        records = generate(config).records
        pg, lite = engine_for(postgres_url), engine_for(sqlite_url)

        with AnalyticsThread(shared, "first") as first:
            wait_until(first.recorder.assigned_at_some_point, TIMEOUT_S, "a first assignment")
            with AnalyticsThread(shared, "second") as second:
                wait_until(
                    lambda: (
                        bool(second.recorder.assignment()) and len(first.recorder.assignment()) < 12
                    ),
                    TIMEOUT_S,
                    "the partitions to be split between the two instances",
                    abort=second.died,
                )
                split = (first.recorder.assignment(), second.recorder.assignment())
                assert not split[0] & split[1]
                assert len(split[0] | split[1]) == 12
                delivered = produce(kafka_bootstrap_servers, records)
                ends = expected_positions(records, delivered, topics)
                with AnalyticsThread(single, "single") as alone:
                    wait_caught_up(
                        lambda: stored_offsets(pg), ends, TIMEOUT_S, first.died, second.died
                    )
                    wait_caught_up(lambda: stored_offsets(lite), ends, TIMEOUT_S, alone.died)

        assert report(pg) == report(lite)
        assert independent.comparable(report(pg)) == independent.figures(
            independent.distinct_events(records)
        )
        apart = (
            handled_payments(first.recorder, PAYMENT_INITIATED)
            & handled_payments(second.recorder, PAYMENT_COMPLETED)
        ) | (
            handled_payments(second.recorder, PAYMENT_INITIATED)
            & handled_payments(first.recorder, PAYMENT_COMPLETED)
        )
        assert apart, "no payment had its two halves consumed by different instances"
