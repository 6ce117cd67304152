"""Apply a batch of facts inside one transaction: inbox, facts, re-derived rows, anomalies.

The order of the steps is what makes it safe:

1. lock the batch's bookings (PostgreSQL) so concurrent consumers serialise per booking;
2. claim the eventIds in the inbox; only the ones not seen before go on (a duplicate, at
   any offset and in any earlier batch, stops here and changes nothing);
3. load the stored facts of the bookings the new facts touch, store the new facts;
4. derive each touched booking from all its facts and upsert its rows;
5. bring the stored anomalies of those bookings in line with the derived ones.

Everything is written in the caller's transaction, so a crash at any point leaves either
all of a batch or none of it, and the redelivered batch redoes exactly that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from common.db import claim_events
from voyage_consumer import repository
from voyage_consumer.anomalies import Anomaly
from voyage_consumer.derivation import Derivation, derive
from voyage_consumer.facts import Fact


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch changed: reported (logs, metrics) only once it is committed."""

    new_facts: int
    duplicates: int
    derivations: tuple[Derivation, ...]
    new_anomalies: tuple[Anomaly, ...]
    resolved_anomalies: int


def apply_facts(
    *, session: Session, facts: Sequence[Fact], consumer: str, now: datetime
) -> Applied:
    """Apply `facts` (distinct eventIds) in `session`'s transaction; the caller commits."""
    repository.lock_bookings(session=session, booking_ids=sorted({f.booking_id for f in facts}))
    claimed = claim_events(
        session=session, consumer=consumer, event_ids=[f.event_id for f in facts], now=now
    )
    fresh = [f for f in facts if f.event_id in claimed]
    duplicates = len(facts) - len(fresh)
    if not fresh:
        return Applied(0, duplicates, (), (), 0)
    touched = sorted({f.booking_id for f in fresh})
    known = repository.load_facts(session=session, booking_ids=touched)
    repository.insert_facts(session=session, facts=fresh)
    for fact in fresh:
        known.setdefault(fact.booking_id, []).append(fact)
    derivations = tuple(d for b in touched if (d := derive(b, known[b])) is not None)
    repository.save_derivations(session=session, derivations=derivations)
    new, resolved = _sync_anomalies(session, touched, derivations)
    return Applied(len(fresh), duplicates, derivations, new, resolved)


def _sync_anomalies(
    session: Session, touched: Sequence[str], derivations: Sequence[Derivation]
) -> tuple[tuple[Anomaly, ...], int]:
    """Store the derived anomalies not stored yet, delete the stored ones no longer derived."""
    wanted = {a.key: a for d in derivations for a in d.anomalies}
    stored = repository.anomaly_keys(session=session, booking_ids=touched)
    new = tuple(a for key, a in wanted.items() if key not in stored)
    gone = stored - wanted.keys()
    repository.add_anomalies(session=session, anomalies=new)
    repository.remove_anomalies(session=session, keys=gone)
    return new, len(gone)
