"""SQLite sees a bounded set of statement texts, whatever the batch sizes (issue 22, finding 9).

The sqlite3 driver keeps one prepared statement per distinct SQL text, 128 per connection,
evicting the oldest. A text that depends on the batch size (`VALUES (?,?),(?,?)...` with one
group per row, `IN (?, ?, ...)` with one placeholder per value) makes every new size a new
prepared statement, ever larger, and a steady stream, whose poll sizes vary, keeps
preparing and evicting them: the services' resident memory climbed with the events handled
(benchmarks/soak.py). Sizes are therefore cut into a fixed ladder, so the texts a service
can send are few and all fit in the driver's cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, event, select
from sqlmodel import Session

from common import bulk
from common.db import PROCESSED, ProcessedEvent, claim_events, create_schema, make_engine
from common.parsing import parse_event
from common.records import Inbound, Record
from common.schema import open_database
from common.settings import RunnerSettings
from common.topics import DEFAULT_TOPICS
from dreamscape_dev.simulator import SimulationConfig, generate
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import SCHEMA

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DRIVER_CACHE = 128
"""The sqlite3 module's default `cached_statements`: prepared statements kept per connection."""
SIZES = [*range(1, 70), 100, 127, 128, 129, 255, 333, 500, 999, 1000, 1001, 2500]
"""Every small size, and large ones around the ladder's steps."""


def texts_sent(engine: Engine) -> set[str]:
    """The distinct SQL texts `engine` hands the driver from now on."""
    texts: set[str] = set()

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        texts.add(statement)

    event.listen(engine, "before_cursor_execute", seen)
    return texts


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'texts.db'}")
    create_schema(engine, [ProcessedEvent])
    yield engine
    engine.dispose()


class TestBulk:
    def test_insert_returning_statement_texts_do_not_grow_with_batch_sizes(
        self, engine: Engine
    ) -> None:
        """Claiming batches of every size sends a handful of INSERT texts, and still returns
        each new eventId once, in the order given."""
        texts = texts_sent(engine)
        ids = (f"e{n}" for n in itertools.count())
        for size in SIZES:
            batch = [next(ids) for _ in range(size)]
            with Session(engine) as session:
                claimed = claim_events(session=session, consumer="c", event_ids=batch, now=NOW)
                session.commit()
            assert claimed == set(batch)
        inserts = {t for t in texts if t.startswith("INSERT")}
        assert len(inserts) <= 12, f"{len(inserts)} INSERT texts for {len(SIZES)} batch sizes"
        with Session(engine) as session:
            stored = session.execute(select(PROCESSED.c.event_id)).scalars().all()
        assert len(stored) == sum(SIZES)

    def test_insert_returning_skips_duplicates_across_the_ladder_steps(
        self, engine: Engine
    ) -> None:
        """A batch cut into several statements still claims an eventId once, whichever
        statement holds its second occurrence."""
        batch = [f"e{n}" for n in range(300)]
        with Session(engine) as session:
            first = claim_events(session=session, consumer="c", event_ids=batch[:150], now=NOW)
            again = claim_events(session=session, consumer="c", event_ids=batch, now=NOW)
            session.commit()
        assert first == set(batch[:150])
        assert again == set(batch[150:])

    def test_where_in_statement_texts_do_not_grow_with_the_number_of_values(
        self, engine: Engine
    ) -> None:
        """`IN` lists of every length become a few texts and select exactly the values asked."""
        with Session(engine) as session:
            claim_events(session=session, consumer="c", event_ids=map(str, range(3000)), now=NOW)
            session.commit()
        texts = texts_sent(engine)
        for size in SIZES:
            wanted = [str(n) for n in range(0, 2 * size, 2)]  # half of them are not stored
            found: list[str] = []
            with Session(engine) as session:
                for condition in bulk.where_in(
                    session=session, column=PROCESSED.c.event_id, values=wanted
                ):
                    found += session.execute(
                        select(PROCESSED.c.event_id).where(condition)
                    ).scalars()
            assert sorted(found) == sorted(v for v in wanted if int(v) < 3000)
        assert len(texts) <= 12, f"{len(texts)} SELECT texts for {len(SIZES)} list lengths"


class TestVoyage:
    def test_voyage_statement_texts_do_not_grow_with_batch_sizes(self, tmp_path: Path) -> None:
        """The voyage handler, given batches of every size, sends fewer distinct texts than
        the driver caches per connection: no prepared statement is ever evicted."""
        engine = open_database(SCHEMA, RunnerSettings(database_url=f"sqlite:///{tmp_path}/v.db"))
        handler = VoyageHandler(engine, VoyageMetrics(CollectorRegistry()))
        records = generate(SimulationConfig(flows=3000, seed=22, duplicate_rate=0.02)).records
        texts = texts_sent(engine)
        offsets = itertools.count()
        stream = iter(records)
        for size in SIZES[:-4]:
            batch = [
                Inbound(
                    Record(r.topic, 0, next(offsets), r.key, r.value, r.headers),
                    parse_event(r.value, r.topic, topics=DEFAULT_TOPICS),
                )
                for r in itertools.islice(stream, size)
            ]
            assert handler(batch) == {}
        engine.dispose()
        assert len(texts) < DRIVER_CACHE // 2, f"{len(texts)} distinct texts"
