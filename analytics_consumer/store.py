"""The analytics write path: one batch, one transaction, exactly once.

Per batch, in one database transaction:

1. the fence (`offsets`): advance each partition's stored offset from the one this instance
   expects; records the stored offsets already cover are skipped; a stale instance rolls back;
2. the inbox: the batch's eventIds (first occurrence only) are inserted, and only those the
   inbox did not hold are counted, so a duplicate at any offset counts once; then their
   business keys (`common.business`): a fact stated again under another eventId (a
   redelivered webhook) is collapsed, one stated with different content is an anomaly, and
   neither is counted;
3. the new events' facts are added up in memory (`aggregate`) and written set-based
   (`flush`);
4. every new event (counted or not: a business-key duplicate or anomaly is an accepted
   event too) is appended to the audit trail with its envelope and Kafka coordinates
   (`audit`), so it is there exactly once, as the figures are. On PostgreSQL the month
   partitions its rows need are made beforehand, in their own transaction (`audit_trail`).

Any failure rolls the whole transaction back, positions included, so a retry or a restart
starts from a state where effects and offsets agree.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from analytics_consumer import audit
from analytics_consumer.aggregate import Fact, extract, fold
from analytics_consumer.audit_trail import Partitions
from analytics_consumer.days import epoch_ms
from analytics_consumer.flush import Writer
from analytics_consumer.money import UnrepresentableAmountError, to_units
from analytics_consumer.offsets import OffsetBook, spans_of
from common import bulk
from common.business import Claimed, claim_facts
from common.db import claim_events, transaction
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
        self._partitions.ensure(audit.occurred_months(inbound.event for inbound in batch))
        with transaction(self._engine) as session:
            counted = self._book.advance(session, spans)
            facts, accepted, rejected = _facts(batch, counted)
            if rejected:
                raise next(iter(rejected.values()))
            now = self._now()
            new = claim_events(session=session, consumer=self._consumer, event_ids=facts, now=now)
            fresh = [(accepted[e], facts[e]) for e in facts if e in new]
            claimed = claim_facts(
                session=session,
                consumer=self._consumer,
                events=[inbound.event for inbound, _ in fresh],
                now=now,
            )
            self._writer.write(
                session, fold(fact for _, fact in fresh if claimed.applies(fact.event_id))
            )
            self._writer.append_audit(session, audit.rows(fresh, claimed.verdicts, epoch_ms(now)))
            self._before_commit()
        self._book.committed(spans, counted)
        self._on_claimed(claimed)


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
