"""Exactly once by business key alone: one dedup row per counted event, none per eventId.

The analytics used to claim every eventId in common's inbox (`processed_event`) and then
its business key (`common.business`): two rows per event, each a random key in its index.
Here the business key is the only claim, so an event writes at most one dedup row:

* `new`: the key was free and is now held under this eventId: count the event, audit it;
* `seen`: the key is already held under this very eventId (or its legacy key is): the
  event was counted by an earlier transaction and is delivered again (at another offset,
  by a producer's retry): nothing to do. The inbox's job, done by the business key's row;
* `duplicate` / `anomaly`: the key is held under another eventId, with the same content or
  not (`common.business`): not counted, audited as such, an anomaly recorded. Such an
  event has no dedup row of its own; its audit row is the record that it was accepted
  once, and `store` inserts it with DO NOTHING ... RETURNING, so the same duplicate
  delivered again adds nothing (and is not reported again).

The claim itself is `common.business.claim_keys`, the one `claim_facts` makes for the other
services, so the rows are the ones the previous release wrote (a fact claimed before the
upgrade is recognised after it, failures under their legacy key too); only the verdicts
differ, `seen` being analytics' own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlmodel import Session

from common import bulk
from common.business import BusinessAnomaly, claim_keys
from common.db import table_of
from common.events import PaymentEvent

Verdict = Literal["new", "seen", "duplicate", "anomaly"]


_ANOMALY: Final = table_of(BusinessAnomaly)
_ANOMALY_COLUMNS: Final = ("consumer", "event_id", "key", "first_event_id", "detected_at")


@dataclass(frozen=True, slots=True)
class Claims:
    """What the business keys made of a batch's events (by eventId)."""

    verdicts: Mapping[str, Verdict]
    first_event: Mapping[str, str]
    """For duplicates and anomalies: the eventId that stated the fact first."""
    keys: Mapping[str, str]
    """For anomalies: their business key (recorded with them)."""


def claim(*, session: Session, consumer: str, events: Sequence[PaymentEvent], at: Any) -> Claims:
    """Claim the business keys of `events` (distinct eventIds) in the caller's transaction
    (`common.business.claim_keys`); `at` is `first_seen`, encoded for the database."""
    claimed = claim_keys(session=session, consumer=consumer, events=events, at=at)
    verdicts: dict[str, Verdict] = {}
    firsts: dict[str, str] = {}
    anomalous: dict[str, str] = {}
    for key, event in zip(claimed.keys, events, strict=True):
        event_id = event.event_id
        stored_print, stored_id = claimed.known[key]
        if event_id == stored_id:  # its own key: new now, or counted by an earlier batch
            legacy = claimed.legacy.get(key)
            before = key not in claimed.inserted or (legacy is not None and legacy[1] == event_id)
            verdicts[event_id] = "seen" if before else "new"
            continue
        firsts[event_id] = stored_id
        if claimed.print_of(key, event) == stored_print:
            verdicts[event_id] = "duplicate"
        else:
            verdicts[event_id] = "anomaly"
            anomalous[event_id] = key
    return Claims(verdicts, firsts, anomalous)


def record_anomalies(
    *, session: Session, consumer: str, claims: Claims, event_ids: Iterable[str], at: Any
) -> None:
    """Record the anomalies among `event_ids` (those accepted for the first time)."""
    rows = [
        (consumer, event_id, claims.keys[event_id], claims.first_event[event_id], at)
        for event_id in sorted(event_ids)
        if claims.verdicts.get(event_id) == "anomaly"
    ]
    bulk.insert_rows(
        session=session,
        table=_ANOMALY,
        columns=_ANOMALY_COLUMNS,
        rows=rows,
        on_conflict="(consumer, event_id) DO NOTHING",
    )
