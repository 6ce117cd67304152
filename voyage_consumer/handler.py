"""The batch handler the run loop calls: events to facts, one transaction, then report.

The rules live in `domain`/`anomalies`, the SQL in `store`; what is decided here is the
order of a batch's steps and what the run loop sees.

`apply_facts` applies a batch inside one transaction; the order of its steps is what makes
it safe:

1. lock the batch's bookings (PostgreSQL; on SQLite, take the database's write lock) so
   concurrent consumers serialise per booking;
2. load the stored facts of those bookings: the facts are the inbox, so a batch's fact
   already among them (a duplicate, at any offset and in any earlier batch) stops here and
   changes nothing; the others are new, and the locks keep them so until the commit;
3. insert the new facts;
4. derive each booking a new fact touches from its stored facts and the new ones
   (`domain.decide`), and upsert its row;
5. bring the stored anomalies of those bookings in line with the derived ones.

Everything is written in the caller's transaction, so a crash at any point leaves either
all of a batch or none of it, and the redelivered batch redoes exactly that.

`VoyageHandler` is `ConsumerSpec.handle`:

* a record whose fact could never be stored is returned as a `PermanentError` (so it goes
  to the DLQ) and the rest of its batch is applied without it;
* database errors propagate: `common.db.TRANSIENT_DB_ERRORS` are declared transient in the
  `ConsumerSpec`, so the loop pauses and retries the whole batch until the database is back;
* logs and metrics about the batch are emitted only after its commit, so a batch that is
  retried is not counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine
from sqlmodel import Session

from common.db import transaction
from common.errors import PermanentError
from common.logs import record_context
from common.records import Inbound
from voyage_consumer import store
from voyage_consumer.anomalies import ANOMALY_KINDS, Anomaly
from voyage_consumer.domain import Derivation, decide
from voyage_consumer.facts import Fact, storage_problem, to_fact

_log = structlog.get_logger("voyage_consumer")


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch changed: reported (logs, metrics) only once it is committed."""

    new_facts: int
    duplicates: int
    derivations: tuple[Derivation, ...]
    """As `domain.decide` returns them: the rows, without the explanation of a paid booking."""
    new_anomalies: tuple[Anomaly, ...]
    resolved_anomalies: int


def apply_facts(*, session: Session, facts: Sequence[Fact]) -> Applied:
    """Apply `facts` (distinct eventIds) in `session`'s transaction; the caller commits."""
    bookings = sorted({f.booking_id for f in facts})
    store.lock_bookings(session=session, booking_ids=bookings)
    known = store.load_facts(session=session, booking_ids=bookings)
    stored = {(f.booking_id, f.event_id) for facts_of in known.values() for f in facts_of}
    fresh = [f for f in facts if (f.booking_id, f.event_id) not in stored]
    duplicates = len(facts) - len(fresh)
    if not fresh:
        return Applied(0, duplicates, (), (), 0)
    store.insert_facts(session=session, facts=fresh)
    for fact in fresh:
        known.setdefault(fact.booking_id, []).append(fact)
    touched = sorted({f.booking_id for f in fresh})
    derivations = tuple(d for b in touched if (d := decide(b, known[b])) is not None)
    store.save_derivations(session=session, derivations=derivations)
    new, resolved = _sync_anomalies(session, touched, derivations)
    return Applied(len(fresh), duplicates, derivations, new, resolved)


def _sync_anomalies(
    session: Session, touched: Sequence[str], derivations: Sequence[Derivation]
) -> tuple[tuple[Anomaly, ...], int]:
    """Store the derived anomalies not stored yet, delete the stored ones no longer derived."""
    wanted = {a.key: a for d in derivations for a in d.anomalies}
    stored = store.anomaly_keys(session=session, booking_ids=touched)
    new = tuple(a for key, a in wanted.items() if key not in stored)
    gone = stored - wanted.keys()
    store.add_anomalies(session=session, anomalies=new)
    store.remove_anomalies(session=session, keys=gone)
    return new, len(gone)


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

    def __init__(self, engine: Engine, metrics: VoyageMetrics) -> None:
        """No clock: every time voyage stores is an event's own."""
        self._engine = engine
        self._metrics = metrics

    def __call__(self, batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
        rejected: dict[Inbound, PermanentError] = {}
        facts: dict[str, Fact] = {}
        for inbound in batch:
            fact = to_fact(inbound.event)
            problem = storage_problem(fact) if _may_hold_nul(inbound.record.value) else None
            if problem is not None:
                rejected[inbound] = PermanentError(problem, error_type="unstorable_event")
            else:
                facts.setdefault(fact.event_id, fact)
        if facts:
            with transaction(self._engine) as session:
                applied = apply_facts(session=session, facts=list(facts.values()))
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


def _may_hold_nul(value: bytes | None) -> bool:
    """Whether a record's JSON could decode to a text with a NUL (`facts.storage_problem`).

    Only the escape `\\u0000` writes one (JSON allows no raw control character in a
    string), so a record without it, or a raw NUL, needs no look at every text field: one
    search of the bytes in C instead of eleven in Python, for almost every record.
    """
    return value is None or b"\\u0000" in value or b"\x00" in value


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
