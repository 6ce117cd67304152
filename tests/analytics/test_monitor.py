"""Live alerts and gauges: the monitor reads the database, exports, and logs what changed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from analytics_consumer.alerts import AlertRules
from analytics_consumer.gauges import AnalyticsGauges
from analytics_consumer.monitor import Monitor
from dreamscape_dev.simulator import SimulationConfig
from tests.analytics.helpers import apply_all, engine_for, store_for
from tests.analytics.streams import as_inbound, in_batches, simulated

pytestmark = pytest.mark.integration


class Lines:
    """A stand-in logger keeping (level, event, fields) per call."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append(("warning", event, fields))

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append(("info", event, fields))

    def events(self, name: str) -> list[str]:
        return [fields["alert"] for _, event, fields in self.lines if event == name]


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestMonitor:
    def test_alerts_are_raised_then_cleared_as_the_window_of_event_time_moves(
        self, sqlite_url: str
    ) -> None:
        """A failure-heavy day raises high_failure_rate once (logged, exported); a later clean day, once due, clears it."""
        engine = engine_for(sqlite_url)
        lines, ticks, registry = Lines(), Ticks(), CollectorRegistry()
        rules = AlertRules(window_ms=86_400_000)
        monitor = Monitor(
            engine, rules, AnalyticsGauges(registry), interval_s=60, clock=ticks, log=lines
        )
        failing = as_inbound(simulated(_day_of_flows(seed=7, failure_rate=0.5, day=18)))
        clean = as_inbound(simulated(_day_of_flows(seed=8, failure_rate=0.0, day=20)))
        store = store_for(engine, failing + clean)

        apply_all(store, in_batches(failing, 100))
        monitor.after_batch()
        assert "high_failure_rate" in lines.events("alert.raised")
        active = registry.get_sample_value(
            "dreamscape_analytics_alert_active", {"alert": "high_failure_rate"}
        )
        assert active == 1

        apply_all(store, in_batches(clean, 100))
        monitor.after_batch()  # not due yet: nothing read, nothing logged
        assert "high_failure_rate" not in lines.events("alert.cleared")
        ticks.now += 60
        monitor.after_batch()
        assert "high_failure_rate" in lines.events("alert.cleared")
        assert lines.events("alert.raised").count("high_failure_rate") == 1
        active = registry.get_sample_value(
            "dreamscape_analytics_alert_active", {"alert": "high_failure_rate"}
        )
        assert active == 0

    def test_a_failed_read_is_counted_and_logged_not_raised(self, tmp_path: Any) -> None:
        """When the database cannot be read the monitor logs, counts, and lets the batch stand."""
        engine = engine_for(f"sqlite:///{tmp_path}/gone.db")
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE analytics_payment")
        lines, registry = Lines(), CollectorRegistry()
        Monitor(
            engine, AlertRules(), AnalyticsGauges(registry), interval_s=0, log=lines
        ).after_batch()
        assert [event for _, event, _ in lines.lines] == ["analytics.refresh_failed"]
        assert registry.get_sample_value("dreamscape_analytics_refresh_errors_total") == 1


def _day_of_flows(*, seed: int, failure_rate: float, day: int) -> SimulationConfig:
    """A day of flows with no retries, refunds or abandonment: only the failure rate varies."""
    return SimulationConfig(
        flows=150,
        seed=seed,
        failure_rate=failure_rate,
        retry_rate=0.0,
        refund_rate=0.0,
        abandon_rate=0.0,
        days=1,
        start=datetime(2025, 12, day, 0, tzinfo=UTC),
    )
