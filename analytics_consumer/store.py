"""The analytics write path: one batch, one transaction, exactly once.

Per batch, in one database transaction:

1. the fence (`offsets`): advance each partition's stored offset from the one this instance
   expects; records the stored offsets already cover are skipped; a stale instance rolls back;
2. the business keys (`dedup`), the one dedup row per event: the batch's events (first
   occurrence of each eventId) claim them, and only those that claim a key now are counted.
   An event whose key it already holds is delivered again (at another offset: nothing to
   do); a fact stated again under another eventId (a redelivered webhook) is a duplicate,
   one stated with different content an anomaly, and neither is counted;
3. the new events' facts are added up in memory (`domain`) and written set-based
   (`Writer`, below);
4. every event accepted for the first time (counted or not: a business-key duplicate or
   anomaly is an accepted event too) is appended to the audit trail with its envelope and
   Kafka coordinates (`audit`), so it is there exactly once, as the figures are: the
   counted ones by COPY on PostgreSQL, the others with DO NOTHING, which tells a duplicate
   delivered again (its row is there) from a first one. On PostgreSQL the month partitions
   the rows need are made beforehand, in their own transaction (`audit_trail`).

Any failure rolls the whole transaction back, positions included, so a retry or a restart
starts from a state where effects and offsets agree.

The batch's writes (`Writer`): counters, payment facts, refunds and audit rows, one
statement per table (COPY for the counted events' audit rows on PostgreSQL). Rows are sorted by key before they are written so that two instances
touching the same rows (a payment whose halves they share) lock them in the same order and
cannot deadlock. Increments are atomic upserts (`n = n + excluded.n`); payment facts merge
with COALESCE (the first value seen wins) and compute the time to complete from the joined
row, so the result is the same whichever instance sees which half first, and whenever. The
statements go through `common.bulk`; every column here is text or an integer, so rows need
no encoding.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from analytics_consumer import audit, dedup
from analytics_consumer.audit_trail import Partitions
from analytics_consumer.days import day_text, epoch_ms
from analytics_consumer.domain import BatchDelta, Fact, RefundRow, extract, fold
from analytics_consumer.money import UnrepresentableAmountError, to_units
from analytics_consumer.offsets import OffsetBook, spans_of
from analytics_consumer.tables import AnalyticsDaily, AnalyticsPayment, AnalyticsRefund
from common import bulk
from common.business import Claimed, Verdict
from common.db import table_of, transaction
from common.errors import PermanentError
from common.events import PaymentEvent, PaymentRefundedPayload
from common.records import Inbound, TopicPartition
from common.topics import GROUP_ANALYTICS

_log = structlog.get_logger("analytics_consumer.store")

REJECTED_AMOUNT = "analytics:amount_not_representable"
"""DLQ error type of an event whose amount cannot be counted exactly (see `money`)."""


def validate_amount(event: PaymentEvent) -> None:
    """The run loop's pre-handler check: reject amounts this store cannot count exactly.

    Dead-lettering them before the batch's transaction matters here: that transaction also
    advances the offsets this service resumes from, and must never cover a record whose DLQ
    copy is not yet acknowledged.
    """
    payload = event.payload
    amount = (
        payload.refund_amount if isinstance(payload, PaymentRefundedPayload) else payload.amount
    )
    try:
        to_units(amount)
    except UnrepresentableAmountError as exc:
        raise PermanentError(str(exc), error_type=REJECTED_AMOUNT) from None


class AnalyticsStore:
    """Applies batches to the analytics database; one per process (its `writer` id)."""

    def __init__(
        self,
        engine: Engine,
        *,
        consumer: str = GROUP_ANALYTICS,
        writer: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        before_commit: Callable[[], None] = lambda: None,
        on_claimed: Callable[[Claimed], None] = lambda _claimed: None,
    ) -> None:
        self._engine = engine
        self._on_claimed = on_claimed
        self._consumer = consumer
        self._now = now
        self._before_commit = before_commit
        self._book = OffsetBook()
        self.writer = writer or uuid.uuid4().hex[:12]
        self._writer = Writer(bulk.dialect_of(engine), writer=self.writer)
        self._partitions = Partitions(engine, now=now)

    def starting_offsets(
        self, partitions: Sequence[TopicPartition]
    ) -> Mapping[TopicPartition, int]:
        """On assignment: resume from the offsets stored with the effects (see `offsets`).

        If the database cannot be read now, the consumer starts from Kafka's committed offset
        and the first batch adopts the stored one (records it covers are skipped then).
        """
        self._book.forget(partitions)
        try:
            with transaction(self._engine) as session:
                found = self._book.load(session, partitions)
        except DBAPIError as exc:
            _log.warning("analytics.starting_offsets_unavailable", error=str(exc.orig))
            self._book.forget(partitions)
            return {}
        _log.info(
            "analytics.resuming",
            offsets={f"{tp.topic}[{tp.partition}]": o for tp, o in found.items()},
        )
        return found

    def apply(self, batch: Sequence[Inbound]) -> None:
        """Count the batch's events not counted yet, with the offsets they reach, atomically.

        An amount that cannot be counted raises `PermanentError` and rolls the whole batch
        back: committing would advance the stored offsets past a record whose DLQ copy does
        not exist yet. The run loop then isolates the record and dead-letters it before the
        records after it are counted. (`validate_amount` catches such amounts before the
        batch; this is the backstop.)
        """
        spans = spans_of(inbound.record for inbound in batch)
        if self._partitions.needed:
            self._partitions.ensure(audit.occurred_months(inbound.event for inbound in batch))
        with transaction(self._engine) as session:
            counted = self._book.advance(session, spans)
            facts, accepted, rejected = _facts(batch, counted)
            if rejected:
                raise next(iter(rejected.values()))
            now = self._now()
            at = bulk.encoders(session).naive_time(now)
            claims = dedup.claim(
                session=session,
                consumer=self._consumer,
                events=[accepted[event_id].event for event_id in facts],
                at=at,
            )
            verdicts = claims.verdicts
            new = [(accepted[e], fact) for e, fact in facts.items() if verdicts[e] == "new"]
            self._writer.write(session, fold(fact for _, fact in new))
            recorded = epoch_ms(now)
            self._writer.append_audit(session, audit.rows(new, verdicts, recorded))
            others = [
                (accepted[e], fact)
                for e, fact in facts.items()
                if verdicts[e] in ("duplicate", "anomaly")
            ]
            first_time = self._writer.append_audit_once(
                session, audit.rows(others, verdicts, recorded)
            )
            dedup.record_anomalies(
                session=session, consumer=self._consumer, claims=claims, event_ids=first_time, at=at
            )
            self._before_commit()
        self._book.committed(spans, counted)
        self._on_claimed(_reported(claims, first_time))


def _reported(claims: dedup.Claims, first_time: set[str]) -> Claimed:
    """What `BusinessMetrics` counts: the new events, and the others accepted for the first time."""
    verdicts: dict[str, Verdict] = {}
    for event_id, verdict in claims.verdicts.items():
        if verdict == "new":
            verdicts[event_id] = "new"
        elif event_id in first_time and verdict != "seen":
            verdicts[event_id] = verdict
    return Claimed(verdicts, {e: claims.first_event[e] for e in first_time})


def _facts(
    batch: Sequence[Inbound], counted: Mapping[TopicPartition, int]
) -> tuple[dict[str, Fact], dict[str, Inbound], dict[Inbound, PermanentError]]:
    """Facts of the records to count (first occurrence per eventId), those records, and the
    rejected ones."""
    facts: dict[str, Fact] = {}
    accepted: dict[str, Inbound] = {}
    rejected: dict[Inbound, PermanentError] = {}
    # Keyed by plain (topic, partition) tuples, which a TopicPartition equals: each record then
    # looks its partition up without building one.
    starts: dict[tuple[str, int], int] = {tp: offset for tp, offset in counted.items()}
    for inbound in batch:
        record = inbound.record
        start = starts.get((record.topic, record.partition))
        if start is None or record.offset < start or inbound.event.event_id in facts:
            continue
        try:
            facts[inbound.event.event_id] = extract(inbound.event)
        except UnrepresentableAmountError as exc:
            rejected[inbound] = PermanentError(str(exc), error_type=REJECTED_AMOUNT)
        else:
            accepted[inbound.event.event_id] = inbound
    return facts, accepted, rejected


_DAILY: Final = table_of(AnalyticsDaily)
_PAYMENT: Final = table_of(AnalyticsPayment)
_REFUND: Final = table_of(AnalyticsRefund)
_AUDIT: Final = table_of(audit.AnalyticsAudit)

_COUNTERS: Final = ("day", "metric", "key", "writer", "n", "units")
_PAYMENTS: Final = (
    "payment_id",
    "method",
    "currency",
    "initiated_units",
    "initiated_ms",
    "completed_currency",
    "completed_units",
    "completed_ms",
    "transaction_id",
    "completions",
    "failed_ms",
    "first_refund_ms",
    "duration_ms",
)
_MERGED_OTHERWISE: Final = (
    "payment_id",
    "completions",
    "failed_ms",
    "first_refund_ms",
    "duration_ms",
)
_FIRST_WINS: Final = tuple(c for c in _PAYMENTS if c not in _MERGED_OTHERWISE)
"""Every other column keeps the first value any event gave it (COALESCE)."""
_REFUNDS: Final = RefundRow._fields
_ADD_COUNTS: Final = (
    "(day, metric, key, writer) DO UPDATE SET "
    "n = analytics_daily.n + excluded.n, units = analytics_daily.units + excluded.units"
)


class Writer:
    """Writes the deltas of one process (`writer`, the key of its own counter rows)."""

    def __init__(self, dialect: bulk.Dialect, *, writer: str) -> None:
        self._writer = writer
        self._postgres = dialect == "postgresql"
        self._merge_payments = _payment_merge(dialect)

    def write(self, session: Session, delta: BatchDelta) -> None:
        """Add the delta's counters, merge its payment facts, append its refunds."""
        if delta.counters:
            bulk.insert_rows(
                session=session,
                table=_DAILY,
                columns=_COUNTERS,
                rows=sorted(
                    (day_text(day), metric, key, self._writer, n, units)
                    for (day, metric, key), (n, units) in delta.counters.items()
                ),
                on_conflict=_ADD_COUNTS,
            )
        if delta.payments:
            bulk.insert_rows(
                session=session,
                table=_PAYMENT,
                columns=_PAYMENTS,
                rows=[delta.payments[key].row() for key in sorted(delta.payments)],
                on_conflict=self._merge_payments,
            )
        if delta.refunds:
            bulk.insert_rows(
                session=session,
                table=_REFUND,
                columns=_REFUNDS,
                rows=sorted(delta.refunds),
                on_conflict="DO NOTHING",
            )

    def append_audit(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append the audit rows of new events (`audit.rows`, sorted by key).

        Their business keys were claimed in this transaction, so no row of theirs can exist:
        on PostgreSQL the rows go in by COPY, measured 2.3x faster than an INSERT of the same
        rows as one JSON document (docs/performance.md); SQLite steps one prepared INSERT.
        """
        if not rows:
            return
        if self._postgres:
            _copy(session, audit.TABLE, audit.COLUMNS, rows)
            return
        bulk.insert_rows(session=session, table=_AUDIT, columns=audit.COLUMNS, rows=rows)

    def append_audit_once(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        """Append the audit rows of duplicates and anomalies; the eventIds that were not there.

        Such an event holds no business key of its own, so its audit row is what says it was
        accepted before: the same duplicate delivered again inserts nothing and is not
        reported again. Rare (a redelivered webhook), so a plain INSERT.
        """
        return set(
            bulk.insert_rows(
                session=session,
                table=_AUDIT,
                columns=audit.COLUMNS,
                rows=rows,
                on_conflict="DO NOTHING",
                returning="event_id",
            )
        )


def _copy(
    session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """`COPY table (columns) FROM STDIN` of `rows` on the session's PostgreSQL connection."""
    cursor = session.connection().connection.cursor()
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def _payment_merge(dialect: bulk.Dialect) -> str:
    old, new = "analytics_payment", "excluded"
    merge = [f"{c} = COALESCE({old}.{c}, {new}.{c})" for c in _FIRST_WINS]
    merge.append(f"completions = {old}.completions + {new}.completions")
    # The earliest of several failed attempts (and of several refunds), whatever the order
    # in which their batches arrive: it places the payment on a day and in the alert window.
    for column in ("failed_ms", "first_refund_ms"):
        merge.append(f"{column} = " + _least(dialect, f"{old}.{column}", f"{new}.{column}"))
    merge.append(
        f"duration_ms = COALESCE({old}.completed_ms, {new}.completed_ms)"
        f" - COALESCE({old}.initiated_ms, {new}.initiated_ms)"
    )
    return f"(payment_id) DO UPDATE SET {', '.join(merge)}"


def _least(dialect: bulk.Dialect, first: str, second: str) -> str:
    """The smaller of two nullable values, ignoring NULL (NULL only if both are).

    SQLite's two-argument `min()` returns NULL if either is; PostgreSQL's LEAST skips NULLs.
    """
    if dialect == "sqlite":
        return f"coalesce(min({first}, {second}), {first}, {second})"
    return f"LEAST({first}, {second})"
