"""The batch handler the run loop calls: events to facts, one transaction, then report.

Kept small on purpose: the rules live in `derivation`/`anomalies`, the SQL in `repository`,
the transaction's steps in `apply`. What is decided here is what the run loop sees:

* a record whose fact could never be stored is returned as a `PermanentError` (so it goes
  to the DLQ) and the rest of its batch is applied without it;
* database errors propagate: `common.db.TRANSIENT_DB_ERRORS` are declared transient in the
  `ConsumerSpec`, so the loop pauses and retries the whole batch until the database is back;
* logs and metrics about the batch are emitted only after its commit, so a batch that is
  retried is not counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import structlog
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine

from common.db import transaction
from common.errors import PermanentError
from common.logs import record_context
from common.records import Inbound
from voyage_consumer.anomalies import ANOMALY_KINDS
from voyage_consumer.apply import Applied, apply_facts
from voyage_consumer.facts import Fact, storage_problem, to_fact

CONSUMER: Final = "voyage-service"
"""The inbox's consumer name: fixed, so a new consumer group still skips applied events."""

_log = structlog.get_logger("voyage_consumer")


class VoyageMetrics:
    """The service's own counters, registered in the registry `/metrics` serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.anomalies = Counter(
            "voyage_anomalies_total",
            "Anomalies newly detected (double charge, amount mismatch, refund rejected)",
            ["kind"],
            registry=registry,
        )
        self.duplicates = Counter(
            "voyage_duplicate_events_total",
            "Events skipped because their eventId was already applied",
            registry=registry,
        )
        self.facts = Counter(
            "voyage_facts_applied_total", "Events applied as new facts", registry=registry
        )
        for kind in ANOMALY_KINDS:
            self.anomalies.labels(kind=kind)


class VoyageHandler:
    """`ConsumerSpec.handle` for the voyage service."""

    def __init__(
        self,
        engine: Engine,
        metrics: VoyageMetrics,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        consumer: str = CONSUMER,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._now = now
        self._consumer = consumer

    def __call__(self, batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
        rejected: dict[Inbound, PermanentError] = {}
        facts: dict[str, Fact] = {}
        for inbound in batch:
            fact = to_fact(inbound.event)
            problem = storage_problem(fact)
            if problem is not None:
                rejected[inbound] = PermanentError(problem, error_type="unstorable_event")
            else:
                facts.setdefault(fact.event_id, fact)
        if facts:
            with transaction(self._engine) as session:
                applied = apply_facts(
                    session=session,
                    facts=list(facts.values()),
                    consumer=self._consumer,
                    now=self._now(),
                )
            self._report(applied, batch, len(batch) - len(rejected) - len(facts))
        return rejected

    def _report(self, applied: Applied, batch: Sequence[Inbound], repeated_in_batch: int) -> None:
        self._metrics.facts.inc(applied.new_facts)
        self._metrics.duplicates.inc(applied.duplicates + repeated_in_batch)
        for anomaly in applied.new_anomalies:
            self._metrics.anomalies.labels(kind=anomaly.kind).inc()
            _log.warning(
                "booking.anomaly",
                **_context_of(anomaly.subject, batch),
                booking_id=anomaly.booking_id,
                kind=anomaly.kind,
                subject=anomaly.subject,
                detail=anomaly.detail,
            )
        if applied.resolved_anomalies:
            _log.info("booking.anomalies_resolved", count=applied.resolved_anomalies)


def _context_of(subject: str, batch: Sequence[Inbound]) -> dict[str, object]:
    """The record fields (topic, offset, eventId...) of the event in `batch` an anomaly is about.

    Only anomalies are logged per record, so the search runs only when one is found; an
    anomaly caused by a fact of an earlier batch has no record here and logs without them.
    """
    for inbound in batch:
        payload = inbound.event.payload
        if subject in (payload.payment_id, getattr(payload, "refund_id", None)):
            return record_context(inbound.record, inbound.event)
    return {}
