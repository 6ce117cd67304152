"""One business fact, one effect: the identity of what an event states, across eventIds.

The inbox (`common.db.claim_events`) stops the *same event* from applying twice. It cannot
stop the same *fact* published twice with different eventIds, which is what a gateway's
redelivered webhook produces: the spec's webhook handler builds a fresh envelope, and a
fresh `completedAt`, on every call. So every event also has a business key:

* `(eventType, paymentId)` for initiated and completed: a payment starts and completes once;
* `(paymentId, errorCode, errorMessage)` for failed: each *attempt* fails once, and a
  customer who tries another card fails again under the same paymentId with another
  error (docs/business-keys.md says what this key cannot tell apart);
* `refundId` for refunded: a payment can be refunded several times, each refund once.

and a fingerprint of its content: the payload without its own occurrence time (`*At`, which
a redelivery restamps), amounts compared as numbers (`1250.0` is `1250.00`). Claiming the
keys of a batch (`claim_facts`, in the transaction of its effects) tells each event apart:

* `new`: the first event stating this fact (or the same event again): apply it;
* `duplicate`: another eventId, same content: a redelivery; collapsed (counted in a metric);
* `anomaly`: another eventId, different content under the same key (a refund of the same
  refundId with another amount): recorded in `business_anomaly`, logged, counted, and not
  applied: the first word stands.

Failures were keyed `(eventType, paymentId)` before; `claim_facts` still reads a row stored
under that legacy key, so a failure first seen before the upgrade and redelivered after it
is a duplicate, not a new attempt.
"""

from __future__ import annotations

import collections
import hashlib
import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

import structlog
from prometheus_client import CollectorRegistry, Counter
from sqlmodel import Field, Session, SQLModel, select

from common import bulk
from common.db import table_of
from common.events import PaymentEvent, PaymentFailed, PaymentRefunded

Verdict = Literal["new", "duplicate", "anomaly"]

#: Payload fields that say *when* the fact happened, restamped by a redelivery.
_OCCURRENCE_TIMES: Final = frozenset({"initiated_at", "completed_at", "failed_at", "refunded_at"})


def business_key(event: PaymentEvent) -> str:
    """`refund:<refundId>`, `payment.failed:<paymentId>:<attempt>`, else `<eventType>:<paymentId>`.

    `<attempt>` is 16 hex digits of SHA-256 over errorCode and errorMessage: with
    identifiers of at most 256 characters (`common.events`) every key fits the 300 of
    the column, however long the message.
    """
    if isinstance(event, PaymentRefunded):
        return f"refund:{event.payload.refund_id}"
    if isinstance(event, PaymentFailed):
        payload = event.payload
        attempt = f"{payload.error_code}\x1f{payload.error_message}".encode()
        return f"{event.event_type}:{payload.payment_id}:{hashlib.sha256(attempt).hexdigest()[:16]}"
    return f"{event.event_type}:{event.payload.payment_id}"


def legacy_key(event: PaymentEvent) -> str | None:
    """The key a failure was stored under before issue 21 (`payment.failed:<paymentId>`)."""
    if isinstance(event, PaymentFailed):
        return f"{event.event_type}:{event.payload.payment_id}"
    return None


_QUOTED: Final = json.encoder.encode_basestring_ascii
"""The C function `json.dumps` quotes every string with (ensure_ascii)."""


def fingerprint(event: PaymentEvent) -> str:
    """SHA-256 of the payload's content, without its occurrence time; amounts as numbers.

    The text hashed is exactly `json.dumps(content, sort_keys=True, separators=(",", ":"))`,
    and must stay so: fingerprints are stored, and a redelivery after an upgrade has to match
    (tests/unit/test_business.py pins them). It is written out here because every field is a
    string once amounts are canonical, and `dumps` spent 4 µs a call building its encoder;
    the fields to write, their order and their quoted names are planned once per payload
    type (`_plan_of`), which halved what is left (one is computed per event).
    """
    payload = event.payload
    values, heads = _PLANS.get(type(payload)) or _plan_of(type(payload))
    parts = []
    for head, value in zip(heads, values(payload), strict=True):
        if type(value) is str:
            parts.append(head + _QUOTED(value))
        elif isinstance(value, Decimal):  # `common.events.Amount`; bounded (MAX_MAJOR_UNITS)
            parts.append(head + _QUOTED(format(value.normalize(), "f")))
        else:  # no payload field is anything else today
            raise TypeError(f"cannot fingerprint {head[:-1]}: {type(value).__name__}")
    return hashlib.sha256(("{" + ",".join(parts) + "}").encode()).hexdigest()


_Plan = tuple[Callable[[Any], tuple[Any, ...]], tuple[str, ...]]
"""A payload type's fingerprinted values, in sorted field order, and `"name":` of each."""
_PLANS: dict[type[Any], _Plan] = {}


def _plan_of(payload_type: type[Any]) -> _Plan:
    names = [n for n in sorted(payload_type.__struct_fields__) if n not in _OCCURRENCE_TIMES]
    getter = operator.attrgetter(*names)
    values = getter if len(names) > 1 else lambda payload: (getter(payload),)
    plan: _Plan = (values, tuple(f"{_QUOTED(name)}:" for name in names))
    _PLANS[payload_type] = plan
    return plan


class BusinessFact(SQLModel, table=True):
    """The first event (per consumer) that stated a business fact, and its fingerprint."""

    __tablename__ = "business_fact"

    consumer: str = Field(primary_key=True, max_length=64)
    key: str = Field(primary_key=True, max_length=300)
    fingerprint: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    first_seen: datetime


class BusinessAnomaly(SQLModel, table=True):
    """An event that stated a known business fact with different content (not applied)."""

    __tablename__ = "business_anomaly"

    consumer: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=64)
    key: str = Field(max_length=300)
    first_event_id: str = Field(max_length=64)
    detected_at: datetime


MODELS: Final = (BusinessFact, BusinessAnomaly)
_FACT: Final = table_of(BusinessFact)
_ANOMALY: Final = table_of(BusinessAnomaly)


@dataclass(frozen=True, slots=True)
class Claimed:
    """What `claim_facts` found for each event of a batch (by eventId)."""

    verdicts: Mapping[str, Verdict]
    first_event: Mapping[str, str] = field(default_factory=dict)
    """For duplicates and anomalies: the eventId that stated the fact first."""

    def applies(self, event_id: str) -> bool:
        return self.verdicts.get(event_id) == "new"

    def of(self, verdict: Verdict) -> list[str]:
        return [e for e, v in self.verdicts.items() if v == verdict]


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """Where a batch's business keys stand once claimed (`claim_keys`), for a verdict per event."""

    keys: list[str]
    """Each event's key, in the batch's order."""
    first: dict[str, PaymentEvent]
    """Per key, the batch's first event stating it."""
    prints: dict[str, str]
    """Per key, the fingerprint of that first event."""
    inserted: set[str]
    """The keys claimed by this transaction."""
    known: dict[str, tuple[str, str]]
    """Per key, (fingerprint, first eventId) as held now: claimed here or before."""
    legacy: dict[str, tuple[str, str]]
    """Per key of a failure, what its legacy key holds (`legacy_key`), whatever the content."""

    def print_of(self, key: str, event: PaymentEvent) -> str:
        """`event`'s fingerprint, computed once for the first event of each key."""
        return self.prints[key] if self.first[key] is event else fingerprint(event)


def claim_keys(
    *, session: Session, consumer: str, events: Sequence[PaymentEvent], at: Any
) -> KeyClaim:
    """Claim the business keys of `events` for `consumer`, in the caller's transaction.

    One `INSERT ... ON CONFLICT DO NOTHING RETURNING` for the keys (sorted, so concurrent
    claims lock in one order); one SELECT for the keys already held, only if some were; one
    more for the legacy keys of failures, only if the batch has failures. A failure whose
    content is already held under its legacy key (claimed before issue 21) carries that row's
    first eventId to its new key. `at` is `first_seen`, encoded for the database. What the
    claim means for each event is the caller's: `claim_facts`, analytics' `dedup.claim`.
    """
    keys = [business_key(event) for event in events]
    first: dict[str, PaymentEvent] = {}
    for key, event in zip(keys, events, strict=True):
        first.setdefault(key, event)
    prints = {key: fingerprint(event) for key, event in first.items()}
    stated = {key: (prints[key], event.event_id) for key, event in first.items()}
    legacy = _held_under_legacy_keys(session, consumer, first)
    stated |= {key: held for key, held in legacy.items() if held[0] == prints[key]}
    inserted = set(
        bulk.insert_rows(
            session=session,
            table=_FACT,
            columns=("consumer", "key", "fingerprint", "event_id", "first_seen"),
            rows=[(consumer, k, *stated[k], at) for k in sorted(first)],
            on_conflict="(consumer, key) DO NOTHING",
            returning="key",
        )
    )
    known = {key: stated[key] for key in inserted}
    if len(inserted) < len(first):
        known |= held_facts(session, consumer, [k for k in first if k not in inserted])
    return KeyClaim(keys, first, prints, inserted, known, legacy)


def claim_facts(
    *, session: Session, consumer: str, events: Sequence[PaymentEvent], now: datetime
) -> Claimed:
    """Claim the business keys of `events` for `consumer` (`claim_keys`); anomalies are recorded.

    An event whose key it already holds under its own eventId (a retry) is `new` again.
    """
    at = bulk.encoders(session).naive_time(now)
    claim = claim_keys(session=session, consumer=consumer, events=events, at=at)
    verdicts: dict[str, Verdict] = {}
    firsts: dict[str, str] = {}
    anomalies: list[tuple[str, str, str]] = []
    for key, event in zip(claim.keys, events, strict=True):
        stored_print, stored_id = claim.known[key]
        if event.event_id == stored_id:
            verdicts[event.event_id] = "new"
            continue
        firsts[event.event_id] = stored_id
        if claim.print_of(key, event) == stored_print:
            verdicts[event.event_id] = "duplicate"
        else:
            verdicts[event.event_id] = "anomaly"
            anomalies.append((event.event_id, key, stored_id))
    if anomalies:
        bulk.insert_rows(
            session=session,
            table=_ANOMALY,
            columns=("consumer", "event_id", "key", "first_event_id", "detected_at"),
            rows=[(consumer, e, k, f, at) for e, k, f in sorted(anomalies)],
            on_conflict="(consumer, event_id) DO NOTHING",
        )
    return Claimed(verdicts, firsts)


class BusinessMetrics:
    """`dreamscape_business_facts_total{service, verdict}`, and one log line per anomaly."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self._service = service
        self._counter = Counter(
            "dreamscape_business_facts",
            "Events by what they state: a new fact, a duplicate of one, or an anomaly",
            ["service", "verdict"],
            registry=registry,
        )
        for verdict in ("new", "duplicate", "anomaly"):
            self._counter.labels(service, verdict)
        self._log = structlog.get_logger("common.business")

    def __call__(self, claimed: Claimed) -> None:
        for verdict, n in collections.Counter(claimed.verdicts.values()).items():
            self._counter.labels(self._service, verdict).inc(n)
        for event_id in claimed.of("anomaly"):
            self._log.warning(
                "business.anomaly",
                event_id=event_id,
                first_event_id=claimed.first_event[event_id],
                detail="same business key as an earlier event, different content: not applied",
            )


def _held_under_legacy_keys(
    session: Session, consumer: str, first: Mapping[str, PaymentEvent]
) -> dict[str, tuple[str, str]]:
    """Per key of a failure, (fingerprint, first eventId) held under its legacy key.

    A failure claimed before issue 21 is held as `payment.failed:<paymentId>`; the same
    content redelivered now carries over that row's first eventId to its new key (so it is a
    `duplicate`). Another content under the legacy key is another attempt: nothing carried.
    One SELECT, and only for batches with failures.
    """
    legacy = {k: old for k, e in first.items() if (old := legacy_key(e)) is not None}
    if not legacy:
        return {}
    held = held_facts(session, consumer, set(legacy.values()))
    return {key: held[old] for key, old in legacy.items() if old in held}


def held_facts(session: Session, consumer: str, keys: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(fingerprint, first eventId) of the keys `consumer` already holds."""
    found: dict[str, tuple[str, str]] = {}
    for condition in bulk.where_in(session=session, column=_FACT.c.key, values=keys):
        statement = select(BusinessFact.key, BusinessFact.fingerprint, BusinessFact.event_id).where(
            BusinessFact.consumer == consumer, condition
        )
        for key, print_, event_id in session.exec(statement):
            found[key] = (print_, event_id)
    return found
