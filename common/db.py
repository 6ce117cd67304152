"""The one way services reach their database: engine, transactions, transient errors, inbox.

SQLite by default (a file under `data/`), PostgreSQL through `DATABASE_URL` with psycopg 3.
SQLite runs in WAL mode with `synchronous=FULL`: a batch's transaction is on disk when
`commit()` returns, which is what "effects are durable" promises the run loop. The engine is
built in `main()` (never at import) and passed down; functions take a keyword-only `session`.

The inbox (`ProcessedEvent`) is the idempotent-consumer pattern: in the transaction of a
batch's effects, `claim_events` records the batch's eventIds and returns the ones not seen
before, and only those are applied; a duplicate at the same or another offset, or one racing
in another instance, changes nothing (the table's key decides which claim wins).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final, cast

from sqlalchemy import Engine, Table, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Field, Session, SQLModel, create_engine
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from common import bulk

#: SQLSTATEs (or their two-character classes) that mean the database, not the record, is
#: the problem: connection (08), insufficient resources (53), operator intervention (57P0x),
#: a read-only transaction (25006: what a demoted primary answers), serialization failures
#: and deadlocks (40001, 40P01), a lock not available (55P03), and missing tables, columns
#: or privileges (42P01, 42703, 42501: a migration or a grant not applied yet). Class 22
#: (data) and 23 (integrity) errors are caused by one record's values and stay its own.
OUTAGE_SQLSTATES: Final = frozenset(
    {"08", "53", "57P01", "57P02", "57P03", "57P04", "57P05", "25006", "40001", "40P01",
     "55P03", "42P01", "42703", "42501"}
)  # fmt: skip


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind a SQLAlchemy error, or None (SQLite, not a DB error)."""
    orig = getattr(error, "orig", None) if isinstance(error, DBAPIError) else None
    code = getattr(orig, "sqlstate", None)
    return code if isinstance(code, str) else None


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the database is unavailable or not ready, whatever its class."""
    code = sqlstate(error)
    return code is not None and (code in OUTAGE_SQLSTATES or code[:2] in OUTAGE_SQLSTATES)


class _OutageCheck(type):
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, BaseException) and is_outage(instance)


class DatabaseOutage(Exception, metaclass=_OutageCheck):  # noqa: N818  # a test, never raised
    """`isinstance(error, DatabaseOutage)` is `is_outage(error)`: a class for the run loop's table.

    `ConsumerSpec.transient_errors` is a tuple of types checked with `isinstance`; this one
    matches by SQLSTATE, so psycopg's `InternalError` for a read-only transaction or its
    `ProgrammingError` for a missing table count as outages without a second mechanism.
    """


TRANSIENT_DB_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    DatabaseOutage,  # matched by SQLSTATE, see the class
)
"""Database errors the run loop treats as "the database is unavailable": pause and retry.

SQLAlchemy raises `OperationalError` for lost connections, refused connections and a locked
SQLite file; `DatabaseOutage` adds, by SQLSTATE, what PostgreSQL reports under other classes
during a failover or before a migration. All of them are the deployment's problem rather than
the record's, so retrying (and alerting on retries) beats dead-lettering every record. Note
that psycopg reports a serialization failure or deadlock as `OperationalError` too.
"""


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` URLs use psycopg 3, the driver this project ships."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; creates the SQLite file's directory if needed.

    `hide_parameters`: a failed statement's message (logged, and copied into
    `dlq.error.message`) keeps its SQL and SQLSTATE but not the values bound to it, which
    carry user ids, refund reasons and error messages.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=echo,
        hide_parameters=True,  # errors reach logs and DLQ headers: no user data in them
        pool_pre_ping=True,
        pool_size=2,
        connect_args={"connect_timeout": 5},
    )


#: How long a new connection keeps asking for WAL mode while others hold the file (the
#: same bound as the busy timeout given to `sqlite3.connect`).
_WAL_SWITCH_SECONDS: Final = 30.0


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL, full sync and foreign keys on every new SQLite connection.

    Switching a new file to WAL needs its exclusive lock. Two connections asking at once
    (instances starting together on an empty file) deadlock, and SQLite answers one of
    them "database is locked" at once, without waiting on the busy timeout; so the switch
    is retried, and skipped when another connection already made it.
    """
    cursor = connection.cursor()
    for attempt in Retrying(
        retry=retry_if_exception(_sqlite_locked),
        stop=stop_after_delay(_WAL_SWITCH_SECONDS),
        wait=wait_random(0.005, 0.05),
        reraise=True,
    ):
        with attempt:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def create_schema(engine: Engine, models: Iterable[type[SQLModel]]) -> None:
    """Create the tables of `models` that do not exist yet (docs/operations.md, "Schema migrations")."""
    SQLModel.metadata.create_all(engine, tables=[table_of(model) for model in models])


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for set-based statements (`common.bulk`)."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def reachable(engine: Engine) -> bool:
    """Readiness check: can we run `SELECT 1`?"""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError:
        return False
    return True


class ProcessedEvent(SQLModel, table=True):
    """An eventId a consumer applied; written in the same transaction as the effect."""

    __tablename__ = "processed_event"

    consumer: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    processed_at: datetime


PROCESSED: Final = table_of(ProcessedEvent)


def claim_events(
    *, session: Session, consumer: str, event_ids: Iterable[str], now: datetime
) -> set[str]:
    """Record `event_ids` as applied by `consumer`; returns those it had not recorded yet.

    The caller applies only the returned ids, in the same transaction. One multi-row
    `INSERT ... ON CONFLICT DO NOTHING RETURNING` per batch (`common.bulk`): the primary key
    decides, so of two instances claiming one eventId at once exactly one gets it (the other
    waits for its commit). The ids go in sorted, so two claims lock them in the same order
    and cannot deadlock. On SQLite it is a write, so as a transaction's first statement it
    takes the database's write lock before anything is read. `now` is aware.
    """
    at = bulk.encoders(session).naive_time(now)
    claimed = bulk.insert_rows(
        session=session,
        table=PROCESSED,
        columns=("consumer", "event_id", "processed_at"),
        rows=[(consumer, event_id, at) for event_id in sorted(set(event_ids))],
        on_conflict="(consumer, event_id) DO NOTHING",
        returning="event_id",
    )
    return set(claimed)
