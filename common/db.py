"""The one way services reach their database: engine, transactions, transient errors, inbox.

SQLite by default (a file under `data/`), PostgreSQL through `DATABASE_URL` with psycopg 3.
SQLite runs in WAL mode with `synchronous=FULL`: a batch's transaction is on disk when
`commit()` returns, which is what "effects are durable" promises the run loop. The engine is
built in `main()` (never at import) and passed down; functions take a keyword-only `session`.

The inbox (`ProcessedEvent`) is the idempotent-consumer pattern: a service records the
eventIds it applied in the same transaction as their effects, so a duplicate at the same or
another offset changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlmodel import Field, Session, SQLModel, create_engine, select

TRANSIENT_DB_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)
"""Database errors the run loop treats as "the database is unreachable": pause and retry.

SQLAlchemy raises `OperationalError` for lost connections, refused connections, a locked
SQLite file, and also for a missing table: all of them are the deployment's problem rather
than the record's, so retrying (and alerting on retries) beats dead-lettering every record.
"""


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` URLs use psycopg 3, the driver this project ships."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for `url`; creates the SQLite file's directory if needed."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=2,
        connect_args={"connect_timeout": 5},
    )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_schema(engine: Engine, models: Iterable[type[SQLModel]]) -> None:
    """Create the tables of `models` that do not exist yet (see README: schema changes)."""
    tables = [model.__table__ for model in models]  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine, tables=tables)


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


def already_processed(*, session: Session, consumer: str, event_ids: Iterable[str]) -> set[str]:
    """The subset of `event_ids` this consumer has already applied (one query per batch)."""
    ids = list(set(event_ids))
    found: set[str] = set()
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        statement = select(ProcessedEvent.event_id).where(
            ProcessedEvent.consumer == consumer,
            ProcessedEvent.event_id.in_(chunk),  # type: ignore[attr-defined]
        )
        found.update(session.exec(statement))
    return found


def mark_processed(
    *, session: Session, consumer: str, event_ids: Iterable[str], now: datetime
) -> None:
    """Record `event_ids` as applied by `consumer` (in the caller's transaction)."""
    session.add_all(
        ProcessedEvent(consumer=consumer, event_id=e, processed_at=now) for e in event_ids
    )
