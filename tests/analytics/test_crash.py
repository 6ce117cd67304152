"""SIGKILL in the middle of a batch's transaction, then a restart: the totals are exact."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from tests.analytics import independent
from tests.analytics.helpers import engine_for, report, stored_offsets
from tests.analytics.running import expected_positions, wait_caught_up
from tests.integration.helpers import kill_mid_batch, process_env, produce, service_process

pytestmark = pytest.mark.integration

TIMEOUT_S = 45.0


class TestCrash:
    def test_a_consumer_killed_mid_aggregation_ends_with_identical_totals_after_a_restart(
        self, kafka_bootstrap_servers: str, topics: Topics, tmp_path: Path
    ) -> None:
        """An instance SIGKILLed with a batch written but not committed, restarted on the same database, ends with exactly the figures of the whole history."""
        config = SimulationConfig(
            flows=300, seed=44, duplicate_rate=0.05, reorder_rate=0.2, topics=topics
        )
        records = generate(config).records
        delivered = produce(kafka_bootstrap_servers, records)
        ends = expected_positions(records, delivered, topics)
        url = f"sqlite:///{tmp_path}/analytics.db"
        marker = tmp_path / "crashed"
        env = process_env(
            kafka_bootstrap_servers,
            topics,
            DATABASE_URL=url,
            KAFKA_GROUP_ID=f"analytics-{uuid.uuid4().hex[:8]}",
            BATCH_SIZE="40",
            KAFKA_FETCH_WAIT_MAX_MS="50",
        )
        crash = {"CRASH_AFTER_BATCHES": "5", "CRASH_MARKER_PATH": str(marker)}

        kill_mid_batch("tests.analytics.crash_analytics", env | crash, tmp_path, marker, TIMEOUT_S)

        engine = engine_for(url)
        expected = independent.figures(independent.distinct_events(records))
        partial = report(engine)
        assert partial["payments_initiated"] + partial["payments_completed"] > 0
        assert partial["events"] != expected["events"], "the crash came after the last batch"

        with service_process("analytics_consumer", env, tmp_path) as restarted:
            wait_caught_up(lambda: stored_offsets(engine), ends, TIMEOUT_S, restarted.died)
            restarted.signal(signal.SIGTERM)
            assert restarted.wait(20) == 0

        assert independent.comparable(report(engine)) == expected
