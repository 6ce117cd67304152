"""The shared database helpers against real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from common.db import TRANSIENT_DB_ERRORS, make_engine, sqlstate
from common.failures import Decision, decide

pytestmark = pytest.mark.integration

#: A statement that fails for a reason unrelated to its bound value, on each backend.
FAILING = {
    "sqlite": "SELECT json(:v)",  # malformed JSON
    "postgresql": "SELECT length(:v) / 0",  # division by zero
}


class TestErrorsCarryNoData:
    def test_a_failed_statement_names_no_parameter_values(self, database_url: str) -> None:
        """A database error's text (what reaches logs and dlq.error.message) holds the SQL but not the values bound to it (issue 10, finding 17)."""
        engine = make_engine(database_url)
        secret = "user-4242-secret-refund-reason"
        try:
            with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
                conn.execute(sa.text(FAILING[engine.dialect.name]), {"v": secret})
        finally:
            engine.dispose()
        assert "SELECT" in str(caught.value)
        assert secret not in str(caught.value)


class TestOutageClassification:
    @pytest.mark.postgres
    def test_a_read_only_primary_is_an_outage_not_a_bad_record(self, postgres_url: str) -> None:
        """What a demoted primary answers to a write (SQLSTATE 25006, psycopg's InternalError) is retried by the run loop, never dead-lettered (issue 10, finding 3)."""
        engine = make_engine(postgres_url)
        table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
        table.metadata.create_all(engine)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                with pytest.raises(DBAPIError) as caught:
                    conn.execute(table.insert(), [{"id": 1}])
        finally:
            engine.dispose()
        assert sqlstate(caught.value) == "25006"
        assert decide(caught.value, TRANSIENT_DB_ERRORS) is Decision.RETRY

    @pytest.mark.postgres
    def test_a_missing_table_is_an_outage(self, postgres_url: str) -> None:
        """A table not created yet (a migration not applied: 42P01, a ProgrammingError) is retried, not blamed on the record."""
        engine = make_engine(postgres_url)
        try:
            with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
                conn.execute(sa.text("SELECT * FROM no_such_table"))
        finally:
            engine.dispose()
        assert decide(caught.value, TRANSIENT_DB_ERRORS) is Decision.RETRY

    @pytest.mark.postgres
    def test_a_value_postgres_cannot_store_is_that_records(self, postgres_url: str) -> None:
        """A data error (class 22: a value that does not fit its type) stays the record's: bounded retries, then the DLQ."""
        engine = make_engine(postgres_url)
        try:
            with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
                conn.execute(sa.text("SELECT CAST(:v AS integer)"), {"v": "not a number"})
        finally:
            engine.dispose()
        assert (sqlstate(caught.value) or "")[:2] == "22"
        assert decide(caught.value, TRANSIENT_DB_ERRORS) is Decision.RETRY_BOUNDED


class TestSqliteFirstOpen:
    def test_connections_opening_a_new_sqlite_file_together_all_succeed(
        self, tmp_path: Path
    ) -> None:
        """Instances opening one new SQLite file at the same moment all connect (CI flake of `test_instances_migrating_at_once_do_not_race[sqlite]`).

        Switching a new file to WAL needs its exclusive lock; two connections asking at
        once deadlock, and SQLite answers one of them "database is locked" at once,
        without waiting on the busy timeout. Twenty rounds of six make that near certain.
        """
        errors: list[BaseException] = []
        for round_ in range(20):
            url = f"sqlite:///{tmp_path / f'r{round_}.db'}"
            engines = [make_engine(url) for _ in range(6)]
            start = threading.Barrier(len(engines))

            def open_one(engine: sa.Engine, start: threading.Barrier = start) -> None:
                start.wait()
                try:
                    with engine.begin() as connection:
                        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
                        assert mode == "wal"
                        connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=open_one, args=(e,)) for e in engines]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            for engine in engines:
                engine.dispose()
        assert errors == []
