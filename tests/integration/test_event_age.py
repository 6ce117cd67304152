"""Event age and record age as a running service serves them, from a real broker's timestamps.

The record is produced with a broker (CreateTime) timestamp chosen by the test, 200 s in the
past, and an envelope timestamp 15 minutes in the past; the service process measures both
ages with the wall clock when the effect is durable. The buckets checked leave a margin of
more than a minute for the test's own run time.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from common.topics import GROUP_ANALYTICS, PAYMENT_COMPLETED, Topics
from dreamscape_dev.testing import builders
from dreamscape_dev.testing.broker import create_topics
from tests.deploy.observability import metrics_port, service_env, wait_scraped
from tests.integration.helpers import produce, service_process

EVENT_AGE_S = 900
RECORD_AGE_S = 200


def bucket(port: int, name: str, le: str) -> float | None:
    """The handled payment.completed sample of histogram `name` at bucket `le`, or None."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    wanted = {"event_type": PAYMENT_COMPLETED, "outcome": "handled", "le": le}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and wanted.items() <= sample.labels.items():
                return sample.value
    return None


@pytest.mark.integration
def test_a_service_serves_event_and_record_age_from_the_records_timestamps(
    kafka_bootstrap_servers: str, tmp_path: Path
) -> None:
    """An event 15 min old in a record the broker timestamped 200 s ago is one handled observation in event age (600, 1800] s and in record age (120, 300] s."""
    topics = Topics(prefix=f"t{uuid.uuid4().hex[:8]}-")
    group = f"{GROUP_ANALYTICS}-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap_servers, [*topics.payment_topics, topics.dlq(group)])
    env = service_env(
        kafka_bootstrap_servers, topics, group, tmp_path, ANALYTICS_REFRESH_SECONDS="0"
    )
    with service_process("analytics_consumer", env, tmp_path) as service:
        port = metrics_port(service)
        wait_scraped(
            service,
            port,
            "analytics to own its partitions",
            lambda samples: samples.get("dreamscape_consumer_assigned_partitions", 0) > 0,
        )
        now = time.time()
        at = datetime.fromtimestamp(now - EVENT_AGE_S, UTC)
        record = builders.outbound(builders.event(PAYMENT_COMPLETED, at=at), topics)
        broker_ms = int((now - RECORD_AGE_S) * 1000)
        [delivered] = produce(kafka_bootstrap_servers, [record], timestamp_ms=broker_ms)
        assert delivered.timestamp_ms == broker_ms  # the broker kept the producer's time
        wait_scraped(
            service,
            port,
            "analytics to observe the record's ages",
            lambda samples: samples.get("dreamscape_consumer_record_age_seconds_count", 0) >= 1,
        )
        event_age, record_age = (
            "dreamscape_consumer_event_age_seconds",
            "dreamscape_consumer_record_age_seconds",
        )
        assert bucket(port, event_age, "600.0") == 0
        assert bucket(port, event_age, "1800.0") == 1
        assert bucket(port, record_age, "120.0") == 0
        assert bucket(port, record_age, "300.0") == 1
