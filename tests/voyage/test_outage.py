"""PostgreSQL cut off while the voyage consumer runs: it waits, retries, and loses nothing.

The consumer reaches PostgreSQL through a `TcpProxy` the test cuts and restores; the test
watches the database over a direct connection. During the cut the run loop must treat the
database errors as transient (pause, back off, retry), dead-letter nothing, and apply
everything once the database is back.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session

from common.db import TRANSIENT_DB_ERRORS, make_engine, reachable
from common.lifecycle import RetryScheduled
from common.schema import connect
from common.topics import Topics
from dreamscape_dev.simulator import SimulationConfig, generate
from dreamscape_dev.testing.proxy import TcpProxy
from tests.integration.helpers import ObservedRunner, dlq_records, produce, wait_until
from tests.voyage.test_service import processed, statuses, voyage_runner
from voyage_consumer import store
from voyage_consumer.tables import SCHEMA

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

TIMEOUT_S = 30.0


def _transient_retries(consumer: ObservedRunner) -> list[RetryScheduled]:
    return [r for r in consumer.recorder.retries() if r.kind == "transient"]


def test_a_postgres_outage_is_waited_out_and_nothing_is_dead_lettered(
    postgres_url: str,
    topics: Topics,
    kafka_bootstrap_servers: str,
    tcp_proxy: Callable[[str, int], TcpProxy],
) -> None:
    """With PostgreSQL cut off the loop retries as transient; after the restore every event is applied and the DLQ is empty."""
    direct = make_url(postgres_url)
    assert direct.host is not None
    assert direct.port is not None
    proxy = tcp_proxy(direct.host, direct.port)
    proxied = direct.set(host=proxy.host, port=proxy.port).render_as_string(hide_password=False)
    engine = connect(proxied, SCHEMA)
    observer = make_engine(postgres_url)
    before = generate(SimulationConfig(flows=40, seed=1, topics=topics))
    during = generate(SimulationConfig(flows=40, seed=2, topics=topics))
    total = sum(before.expected.events_by_type.values())
    total += sum(during.expected.events_by_type.values())

    produce(kafka_bootstrap_servers, before.records)
    with voyage_runner(engine, topics, kafka_bootstrap_servers) as consumer:
        wait_until(lambda: processed(observer) > 0, TIMEOUT_S, "a first batch", abort=consumer.died)
        proxy.cut()
        assert not reachable(engine)
        produce(kafka_bootstrap_servers, during.records)
        wait_until(
            lambda: len(_transient_retries(consumer)) >= 2,
            TIMEOUT_S,
            "two transient retries while PostgreSQL is cut off",
            abort=consumer.died,
        )
        proxy.restore()
        wait_until(
            lambda: processed(observer) == total, TIMEOUT_S, "every event", abort=consumer.died
        )
        consumer.stop()

    assert reachable(engine)
    assert all(isinstance(r.error, TRANSIENT_DB_ERRORS) for r in _transient_retries(consumer))
    assert consumer.recorder.dead_lettered() == []
    assert dlq_records(kafka_bootstrap_servers, consumer.dlq_topic) == []
    assert statuses(observer) == before.expected.bookings | during.expected.bookings
    with Session(observer) as session:
        assert store.count_processed(session=session) == total
    engine.dispose()
    observer.dispose()
