"""Crash safety: a voyage consumer SIGKILLed mid-batch and restarted ends as if never killed.

The consumer runs as a real process (`python -m tests.voyage.crash_voyage`, the service with
a hook that hangs inside a batch's open transaction), is killed there, and is restarted as
`python -m voyage_consumer` in the same group on the same database. Its final database is
compared, table by table, with an uninterrupted reference run over the same records (the
handler applied in-process to an SQLite file): the crash may only cost redelivery.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, select
from sqlmodel import Session

from common.db import make_engine
from common.errors import InvalidEvent
from common.records import Inbound
from common.schema import connect
from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.builders import inbound
from tests.integration.helpers import (
    kill_mid_batch,
    process_env,
    produce,
    service_process,
    wait_until,
)
from tests.voyage.test_service import processed
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import ANOMALIES, BOOKINGS, FACTS, SCHEMA

pytestmark = pytest.mark.integration

TIMEOUT_S = 45.0


def content(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the voyage tables in key order (the facts are the inbox too)."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with Session(engine) as session:
        for table in (BOOKINGS, FACTS, ANOMALIES):
            ordered = select(table).order_by(*table.primary_key.columns)
            found[table.name] = [tuple(row) for row in session.execute(ordered)]
    return found


def reference(records: list[Any], topics: Topics, path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """The database an uninterrupted run over `records` leaves (valid records, in order)."""
    engine = connect(f"sqlite:///{path}", SCHEMA)
    handler = VoyageHandler(engine, VoyageMetrics(CollectorRegistry()))
    valid: list[Inbound] = []
    for record in records:
        try:
            valid.append(inbound(record, topics))
        except InvalidEvent:
            continue
    for start in range(0, len(valid), 100):
        assert handler(valid[start : start + 100]) == {}
    found = content(engine)
    engine.dispose()
    return found


def test_a_consumer_killed_mid_batch_ends_with_the_database_of_an_uninterrupted_run(
    database_url: str, topics: Topics, kafka_bootstrap_servers: str, tmp_path: Path
) -> None:
    """SIGKILL inside a batch's transaction, then a restart, leaves exactly the rows of a run that was never interrupted."""
    config = SimulationConfig(
        flows=200, seed=7, duplicate_rate=0.05, reorder_rate=0.3, poison=3, topics=topics
    )
    simulation = generate(config)
    total = sum(simulation.expected.events_by_type.values())
    produce(kafka_bootstrap_servers, simulation.records)
    marker, crash_after = tmp_path / "crashed", total // 2
    env = process_env(
        kafka_bootstrap_servers,
        topics,
        DATABASE_URL=database_url,
        KAFKA_GROUP_ID=f"voyage-crash-{uuid.uuid4().hex[:8]}",
        BATCH_SIZE="40",
        KAFKA_AUTO_COMMIT_INTERVAL_MS="100",
        KAFKA_FETCH_WAIT_MAX_MS="50",
    )
    crashing_env = env | {"CRASH_AFTER": str(crash_after), "CRASH_MARKER_PATH": str(marker)}

    kill_mid_batch("tests.voyage.crash_voyage", crashing_env, tmp_path, marker, TIMEOUT_S)
    observer = make_engine(database_url)
    committed = processed(observer)
    assert 0 < committed < crash_after, "the batch in hand at the kill was committed"

    with service_process("voyage_consumer", env, tmp_path) as restarted:
        wait_until(
            lambda: processed(observer) == total,
            TIMEOUT_S,
            f"all {total} events applied after the restart",
            abort=restarted.died,
        )
        restarted.signal(signal.SIGTERM)
        assert restarted.wait(10) == 0, restarted.tail()

    assert content(observer) == reference(simulation.records, topics, tmp_path / "ref.db")
    observer.dispose()
