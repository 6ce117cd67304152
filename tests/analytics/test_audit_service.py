"""The audit trail end to end: real broker, the analytics service in the run loop, export."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from analytics_consumer.cli import main
from common.errors import InvalidEvent
from common.parsing import parse_event
from common.records import OutboundRecord
from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from tests.analytics import independent
from tests.analytics.helpers import engine_for, stored_offsets
from tests.analytics.running import (
    AnalyticsThread,
    analytics_settings,
    expected_positions,
    wait_caught_up,
)
from tests.integration.helpers import Delivered, produce

pytestmark = pytest.mark.integration

TIMEOUT_S = 45.0


def _first_deliveries(
    records: list[OutboundRecord], delivered: list[Delivered], topics: Topics
) -> dict[str, tuple[OutboundRecord, Delivered]]:
    """Per valid eventId, its first record and where the broker put it."""
    first: dict[str, tuple[OutboundRecord, Delivered]] = {}
    for record, where in zip(records, delivered, strict=True):
        try:
            event = parse_event(record.value, record.topic, topics=topics)
        except InvalidEvent:
            continue
        first.setdefault(event.event_id, (record, where))
    return first


class TestAuditThroughTheService:
    def test_every_accepted_event_is_audited_once_where_the_broker_put_it_and_a_day_exports(
        self,
        kafka_bootstrap_servers: str,
        topics: Topics,
        database_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Published flows with duplicates and poison: one audit row per valid eventId with its record's bytes, offset and broker time; a day's export holds exactly that day's events."""
        config = SimulationConfig(
            flows=150, seed=33, duplicate_rate=0.05, reorder_rate=0.2, poison=3, topics=topics
        )
        records = generate(config).records
        delivered = produce(kafka_bootstrap_servers, records)
        group = f"analytics-{uuid.uuid4().hex[:8]}"
        settings = analytics_settings(topics, kafka_bootstrap_servers, database_url, group)
        engine = engine_for(database_url)
        ends = expected_positions(records, delivered, topics)
        with AnalyticsThread(settings) as service:
            wait_caught_up(lambda: stored_offsets(engine), ends, TIMEOUT_S, service.died)
            service.runner.stop()

        with engine.connect() as connection:
            rows = {
                row.event_id: row
                for row in connection.execute(text("SELECT * FROM analytics_audit"))
            }
        first = _first_deliveries(records, delivered, topics)
        assert set(rows) == set(first)
        for event_id, (record, where) in first.items():
            row = rows[event_id]
            assert (row.topic, row.kafka_partition, row.kafka_offset) == (
                where.topic,
                where.partition,
                where.offset,
            )
            assert row.broker_ms == where.timestamp_ms
            assert row.envelope == (record.value or b"").decode()
            assert row.record_key == (record.key or b"").decode()

        events = independent.distinct_events(records)
        day, _ = Counter(independent.day(e) for e in events).most_common(1)[0]
        monkeypatch.setenv("DATABASE_URL", database_url)
        out = tmp_path / "day.jsonl"
        assert main(["audit", "export", "--from", day, "--to", day, "--out", str(out)]) == 0
        lines: list[dict[str, Any]] = [json.loads(x) for x in out.read_text().splitlines()]
        assert sorted(line["eventId"] for line in lines) == sorted(
            e["eventId"] for e in events if independent.day(e) == day
        )
        times = [line["occurredAt"] for line in lines]
        assert times == sorted(times)
