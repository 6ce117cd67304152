"""`common.bulk` and `common.db.claim_events` against real databases (SQLite, then PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from common import bulk
from common.db import (
    PROCESSED,
    ProcessedEvent,
    claim_events,
    create_schema,
    make_engine,
    transaction,
)

pytestmark = pytest.mark.integration

_METADATA = sa.MetaData()
ITEMS = sa.Table(
    "bulk_item",
    _METADATA,
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("amount", sa.String(64).with_variant(sa.Numeric(asdecimal=True), "postgresql")),
    sa.Column("seen_at", sa.DateTime(timezone=True)),
    sa.Column("noted_at", sa.DateTime()),
)
"""Money the way the services keep it exact: NUMERIC on PostgreSQL, text on SQLite."""
COLUMNS = ("item_id", "label")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    _METADATA.create_all(engine)
    create_schema(engine, [ProcessedEvent])
    yield engine
    engine.dispose()


def insert(engine: Engine, rows: list[tuple[Any, ...]], **options: Any) -> list[Any]:
    with transaction(engine) as session:
        return bulk.insert_rows(session=session, table=ITEMS, columns=COLUMNS, rows=rows, **options)


def labels(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return {k: v for k, v in connection.execute(sa.select(ITEMS.c.item_id, ITEMS.c.label))}


def claim(engine: Engine, consumer: str, event_ids: list[str]) -> set[str]:
    with transaction(engine) as session:
        return claim_events(session=session, consumer=consumer, event_ids=event_ids, now=T0)


class TestInsertRows:
    def test_conflicting_rows_are_skipped_and_the_stored_ones_kept(self, engine: Engine) -> None:
        """With `DO NOTHING`, a row whose key is stored leaves the stored row as it was."""
        insert(engine, [("a", "first"), ("b", "first")])
        insert(engine, [("b", "second"), ("c", "second")], on_conflict="DO NOTHING")
        assert labels(engine) == {"a": "first", "b": "first", "c": "second"}

    def test_without_on_conflict_a_duplicate_key_raises(self, engine: Engine) -> None:
        """Without `on_conflict` a stored key is an IntegrityError, and nothing is written."""
        insert(engine, [("a", "first")])
        with pytest.raises(IntegrityError):
            insert(engine, [("z", "second"), ("a", "second")])
        assert labels(engine) == {"a": "first"}

    def test_upsert_overwrites_the_other_columns(self, engine: Engine) -> None:
        """`update_all` makes the insert an upsert: stored keys get the new values."""
        insert(engine, [("a", "first"), ("b", "first")])
        insert(
            engine,
            [("b", "second"), ("c", "second")],
            on_conflict=bulk.update_all(COLUMNS, ["item_id"]),
        )
        assert labels(engine) == {"a": "first", "b": "second", "c": "second"}

    def test_returning_gives_only_the_keys_inserted(self, engine: Engine) -> None:
        """With `returning`, rows skipped by the conflict clause return nothing."""
        insert(engine, [("a", "first"), ("b", "first")])
        rows = [("b", "second"), ("c", "second"), ("d", "second")]
        new = insert(engine, rows, on_conflict="(item_id) DO NOTHING", returning="item_id")
        assert sorted(new) == ["c", "d"]

    def test_decimals_come_back_exactly(self, engine: Engine) -> None:
        """Amounts encoded with `Encoders.decimal` keep every digit and their scale; None stays NULL."""
        amounts: list[Decimal | None] = [Decimal("1250.00"), Decimal("0.10"), Decimal("-0.0001")]
        amounts += [Decimal("12345678901234567890.123456789"), None]
        with transaction(engine) as session:
            encode = bulk.encoders(session).decimal
            bulk.insert_rows(
                session=session,
                table=ITEMS,
                columns=("item_id", "label", "amount"),
                rows=[(str(i), "x", encode(a)) for i, a in enumerate(amounts)],
            )
        with engine.connect() as connection:
            stored = {
                k: v for k, v in connection.execute(sa.select(ITEMS.c.item_id, ITEMS.c.amount))
            }
        back = [None if stored[str(i)] is None else Decimal(stored[str(i)]) for i in range(5)]
        assert [str(a) for a in back] == [str(a) for a in amounts]

    def test_aware_datetimes_are_stored_as_the_same_instant(self, engine: Engine) -> None:
        """`Encoders.time` and `Encoders.naive_time` store an aware time of any offset as that instant."""
        at = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
        with transaction(engine) as session:
            encode = bulk.encoders(session)
            bulk.insert_rows(
                session=session,
                table=ITEMS,
                columns=("item_id", "label", "seen_at", "noted_at"),
                rows=[("a", "x", encode.time(at), encode.naive_time(at)), ("b", "x", None, None)],
            )
        with engine.connect() as connection:
            query = sa.select(ITEMS.c.item_id, ITEMS.c.seen_at, ITEMS.c.noted_at)
            stored = {row[0]: row[1:] for row in connection.execute(query)}
        seen, noted = stored["a"]
        assert (seen if seen.tzinfo else seen.replace(tzinfo=UTC)) == at
        assert noted == datetime(2026, 3, 1, 12, 30, 15, 123456)
        assert stored["b"] == (None, None)

    def test_returning_beyond_sqlites_parameter_limit_takes_several_statements(
        self, engine: Engine
    ) -> None:
        """12,000 rows of three values (36,000 parameters, over SQLite's 32,766) all go in and come back."""
        rows = [(f"k{i:05}", "x", str(i)) for i in range(12_000)]
        with transaction(engine) as session:
            new = bulk.insert_rows(
                session=session,
                table=ITEMS,
                columns=("item_id", "label", "amount"),
                rows=rows,
                on_conflict="DO NOTHING",
                returning="item_id",
            )
        assert sorted(new) == [row[0] for row in rows]
        assert len(labels(engine)) == 12_000

    def test_empty_input_runs_no_statement(self, engine: Engine) -> None:
        """No rows return an empty list without touching the database (even a missing table)."""
        missing = sa.Table("no_such_table", sa.MetaData(), sa.Column("k", sa.String()))
        with transaction(engine) as session:
            assert bulk.insert_rows(session=session, table=missing, columns=["k"], rows=[]) == []
            assert (
                bulk.insert_rows(
                    session=session, table=missing, columns=["k"], rows=[], returning="k"
                )
                == []
            )


class TestWhereIn:
    def test_finds_every_match_across_chunks(self, engine: Engine) -> None:
        """More values than one SQLite IN list holds, with duplicates, find each stored row once."""
        insert(engine, [(f"k{i:05}", "x") for i in range(0, 3000, 2)])
        wanted = [f"k{i:05}" for i in range(2500)] * 2
        found: list[str] = []
        with transaction(engine) as session:
            for condition in bulk.where_in(session=session, column=ITEMS.c.item_id, values=wanted):
                found += session.execute(sa.select(ITEMS.c.item_id).where(condition)).scalars()
        assert sorted(found) == [f"k{i:05}" for i in range(0, 2500, 2)]

    def test_no_values_give_no_condition(self, engine: Engine) -> None:
        """An empty list of values yields no condition, so no query is run."""
        with transaction(engine) as session:
            assert list(bulk.where_in(session=session, column=ITEMS.c.item_id, values=[])) == []


class TestClaimEvents:
    def test_returns_only_the_ids_not_claimed_before(self, engine: Engine) -> None:
        """A second claim of overlapping ids returns only those the first did not record."""
        assert claim(engine, "svc", ["e1", "e2"]) == {"e1", "e2"}
        assert claim(engine, "svc", ["e2", "e3"]) == {"e3"}

    def test_each_consumer_has_its_own_inbox(self, engine: Engine) -> None:
        """An id claimed by one consumer is still new to another."""
        claim(engine, "svc", ["e1"])
        assert claim(engine, "other", ["e1"]) == {"e1"}

    def test_an_id_repeated_in_one_claim_is_claimed_once(self, engine: Engine) -> None:
        """Duplicates within one call are one claim, and the call does not fail."""
        assert claim(engine, "svc", ["e1", "e1", "e2", "e1"]) == {"e1", "e2"}
        with engine.connect() as connection:
            count = sa.select(sa.func.count()).select_from(PROCESSED)
            assert connection.execute(count).scalar_one() == 2

    def test_a_rolled_back_claim_is_not_kept(self, engine: Engine) -> None:
        """Claims belong to the caller's transaction: after a rollback the ids are new again."""
        with transaction(engine) as session:
            claim_events(session=session, consumer="svc", event_ids=["e1"], now=T0)
            session.rollback()
        assert claim(engine, "svc", ["e1"]) == {"e1"}

    def test_records_the_time_of_the_claim(self, engine: Engine) -> None:
        """`processed_at` is `now` as naive UTC, whatever the offset `now` was given in."""
        now = datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
        with transaction(engine) as session:
            claim_events(session=session, consumer="svc", event_ids=["e1"], now=now)
        with engine.connect() as connection:
            stored = connection.execute(sa.text("SELECT processed_at FROM processed_event"))
            value = stored.scalar_one()
        assert str(value).startswith("2026-03-01 12:00:00")

    def test_no_ids_claim_nothing(self, engine: Engine) -> None:
        """An empty batch claims nothing and returns an empty set."""
        assert claim(engine, "svc", []) == set()

    def test_more_ids_than_sqlite_binds_in_one_statement(self, engine: Engine) -> None:
        """15,000 ids (45,000 parameters on SQLite) are all claimed, then all seen."""
        ids = [f"e{i:05}" for i in range(15_000)]
        assert claim(engine, "svc", ids) == set(ids)
        assert claim(engine, "svc", ids) == set()
