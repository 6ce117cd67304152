"""The audit table's database side: month partitions, export and retention (see `audit`).

* `Partitions` makes sure, on PostgreSQL, that the month partition of every event of a batch
  exists before the batch's transaction starts. Creating a partition locks the parent table
  against every writer, so it is done in its own short transaction (under an advisory lock,
  so two instances never race on one name) rather than inside the batch's, where the lock
  would be held until the batch commits. Months made are remembered, except those more
  than `MIN_RETENTION_YEARS` old, which retention may drop while this process runs: a batch
  holding such old events (a replay) checks their months again.
* `export` streams a range of UTC days in time order (a server-side cursor on PostgreSQL).
* `prune` is the retention job: it drops the whole months older than the retention
  (`DROP TABLE` of their partitions on PostgreSQL, `DELETE` on SQLite) and, on PostgreSQL,
  makes this month's and next month's partitions ahead of their events.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Final, NamedTuple

from sqlalchemy import Engine, text
from sqlmodel import Session

from analytics_consumer.audit import COLUMNS, TABLE, Month, month_of_partition, retained_from
from analytics_consumer.days import day_range
from common import bulk
from common.db import transaction

MIN_RETENTION_YEARS: Final = 1
"""The shortest retention `prune` accepts: the audit trail is never emptied by a typo."""

_LOCK: Final = zlib.crc32(b"dreamscape.analytics_audit.partitions")
"""The advisory lock under which partitions are created and dropped."""


class Partitions:
    """The month partitions a store has made sure of (PostgreSQL; nothing to do on SQLite)."""

    def __init__(self, engine: Engine, *, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._postgres = bulk.dialect_of(engine) == "postgresql"
        self._now = now
        self._known: set[Month] = set()

    @property
    def needed(self) -> bool:
        """Whether there are partitions to make (PostgreSQL): if not, skip finding the months."""
        return self._postgres

    def ensure(self, months: Iterable[Month]) -> None:
        """Create the partitions of `months` that this process has not seen exist."""
        if not self._postgres:
            return
        stable = retained_from(self._now(), MIN_RETENTION_YEARS)
        missing = sorted(m for m in set(months) if m not in self._known or m < stable)
        if not missing:
            return
        with transaction(self._engine) as session:
            _create(session, missing)
        self._known.update(month for month in missing if month >= stable)


def _create(session: Session, months: Iterable[Month]) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    for month in months:
        session.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {month.partition()} PARTITION OF {TABLE} "
                f"FOR VALUES FROM ({month.start_ms()}) TO ({month.next().start_ms()})"
            )
        )


def export(engine: Engine, first_day: str, last_day: str) -> Iterator[tuple[Any, ...]]:
    """The audit rows (in `COLUMNS` order) of the UTC days `first_day`..`last_day` inclusive.

    Ordered by occurrence time, then eventId; read in chunks, so any range fits in memory.
    """
    start, end = day_range(first_day)[0], day_range(last_day)[1]
    query = text(
        f"SELECT {', '.join(COLUMNS)} FROM {TABLE} "  # noqa: S608 - names, not data
        "WHERE occurred_ms >= :start AND occurred_ms < :end ORDER BY occurred_ms, event_id"
    )
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=1000).execute(
            query, {"start": start, "end": end}
        )
        for row in result:
            yield tuple(row)


class Pruned(NamedTuple):
    """A month the retention job removed (or, in a dry run, would remove)."""

    month: str
    events: int


def prune(engine: Engine, *, years: int, now: datetime, dry_run: bool) -> list[Pruned]:
    """Remove the whole months older than `years` before `now`; the months, oldest first.

    A month goes once all of it is older than the retention (`audit.retained_from`). With
    `dry_run` nothing changes, and nothing is created.
    """
    if years < MIN_RETENTION_YEARS:
        raise ValueError(f"a retention under {MIN_RETENTION_YEARS} year is refused")
    keep_from = retained_from(now, years)
    with transaction(engine) as session:
        if bulk.dialect_of(engine) == "postgresql":
            return _drop_partitions(session, keep_from, now, dry_run=dry_run)
        return _delete_rows(session, keep_from, dry_run=dry_run)


def _drop_partitions(
    session: Session, keep_from: Month, now: datetime, *, dry_run: bool
) -> list[Pruned]:
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
    names = session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": TABLE},
    ).scalars()
    expired = sorted(
        (month, name)
        for name in names
        if (month := month_of_partition(name)) is not None and month < keep_from
    )
    pruned = []
    for month, name in expired:
        events = session.execute(text(f"SELECT count(*) FROM {name}")).scalar_one()  # noqa: S608
        pruned.append(Pruned(month.text(), int(events)))
        if not dry_run:
            session.execute(text(f"DROP TABLE {name}"))
    if not dry_run:
        this_month = Month.of(now)
        _create(session, [this_month, this_month.next()])
    return pruned


def _delete_rows(session: Session, keep_from: Month, *, dry_run: bool) -> list[Pruned]:
    bound = {"end": keep_from.start_ms()}
    counts = session.execute(
        text(
            "SELECT strftime('%Y-%m', occurred_ms / 1000, 'unixepoch') AS month, count(*) "  # noqa: S608
            f"FROM {TABLE} WHERE occurred_ms < :end GROUP BY month ORDER BY month"
        ),
        bound,
    ).all()
    if not dry_run:
        session.execute(text(f"DELETE FROM {TABLE} WHERE occurred_ms < :end"), bound)  # noqa: S608
    return [Pruned(month, int(events)) for month, events in counts]
