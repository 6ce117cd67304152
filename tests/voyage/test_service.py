"""The voyage handler under the real run loop and broker, on SQLite and on PostgreSQL.

Records are produced to the test's own topics; a `Runner` consumes them on a thread of this
process with the voyage handler, exactly as `voyage-consumer` builds it. "Done" is decided
from the database (the inbox's count of applied eventIds) and the run loop's dead letters,
never from watermarks or sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from sqlmodel import Session

from common.db import TRANSIENT_DB_ERRORS
from common.schema import connect
from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.builders import spec_records
from tests.integration.helpers import (
    ObservedRunner,
    dlq_records,
    produce,
    runner_settings,
    wait_until,
)
from voyage_consumer import store
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import BOOKINGS, SCHEMA

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database with the voyage schema."""
    engine = connect(database_url, SCHEMA)
    yield engine
    engine.dispose()


def voyage_runner(engine: Engine, topics: Topics, bootstrap: str) -> ObservedRunner:
    """A run loop with the voyage handler, in its own consumer group."""
    return ObservedRunner(
        VoyageHandler(engine, VoyageMetrics(CollectorRegistry())),
        runner_settings(topics, bootstrap, batch_size=200),
        group=f"voyage-{uuid.uuid4().hex[:8]}",
        name="voyage-consumer",
        transient_errors=TRANSIENT_DB_ERRORS,
    )


def processed(engine: Engine) -> int:
    with Session(engine) as session:
        return store.count_processed(session=session)


def statuses(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.execute(select(BOOKINGS.c.booking_id, BOOKINGS.c.status))
        return {booking_id: status for booking_id, status in rows}


class TestSpecExamples:
    def test_the_four_printed_examples_cancel_booking_456def(
        self, engine: Engine, topics: Topics, kafka_bootstrap_servers: str
    ) -> None:
        """The spec's example events, byte for byte, on their four topics end with booking_456def cancelled and 1250.00 refunded."""
        produce(kafka_bootstrap_servers, spec_records(topics))
        with voyage_runner(engine, topics, kafka_bootstrap_servers) as consumer:
            wait_until(
                lambda: processed(engine) == 4,
                TIMEOUT_S,
                "the four examples applied",
                abort=consumer.died,
            )
            consumer.stop()
        assert consumer.recorder.dead_lettered() == []
        with Session(engine) as session:
            row = session.execute(select(BOOKINGS).where(BOOKINGS.c.booking_id == "booking_456def"))
            booking = row.mappings().one()
        assert booking["status"] == "cancelled"
        assert booking["refunded_amount"] == Decimal("1250.00")
        assert booking["inventory_hold"] == "released"


class TestSimulatedStream:
    def test_duplicates_reordering_and_poison_end_in_the_expected_statuses(
        self, engine: Engine, topics: Topics, kafka_bootstrap_servers: str
    ) -> None:
        """A simulated history with duplicates, cross-topic reordering and poison ends with exactly the simulator's booking statuses, and the poison in the DLQ."""
        config = SimulationConfig(
            flows=250, seed=42, duplicate_rate=0.05, reorder_rate=0.3, poison=10, topics=topics
        )
        simulation = generate(config)
        expected = simulation.expected
        distinct_events = sum(expected.events_by_type.values())
        produce(kafka_bootstrap_servers, simulation.records)
        with voyage_runner(engine, topics, kafka_bootstrap_servers) as consumer:
            wait_until(
                lambda: (
                    processed(engine) == distinct_events
                    and len(consumer.recorder.dead_lettered()) == config.poison
                ),
                TIMEOUT_S,
                f"{distinct_events} events applied and {config.poison} dead-lettered",
                abort=consumer.died,
            )
            consumer.stop()
        assert statuses(engine) == expected.bookings
        letters = dlq_records(kafka_bootstrap_servers, consumer.dlq_topic)
        assert len(letters) == config.poison
        reasons = [dict(r.headers)["dlq.error.type"] for r in letters]
        assert sorted(r.decode() for r in reasons if r) == sorted(
            reason for reason, n in expected.poison_by_reason.items() for _ in range(n)
        )
