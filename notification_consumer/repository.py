"""Database functions of the notification service; each takes a keyword-only `session`.

The caller owns the transaction (`common.db.transaction`). Look-ups take a whole batch and
run one query per table (in chunks that stay under SQLite's bound-parameter limit), so a
batch of a thousand events costs a handful of round trips, not thousands.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from common.events import PaymentCompleted, PaymentEvent, PaymentFailed, PaymentInitiated
from notification_consumer.models import PaymentFact, SentNotification, UserContact
from notification_consumer.notifications import Knowledge, Outcome, PaymentSummary, Recipient

T = TypeVar("T")
_CHUNK = 500


def _chunks(values: Iterable[T]) -> Iterator[list[T]]:
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), _CHUNK):
        yield distinct[start : start + _CHUNK]


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC: PostgreSQL returns aware times, SQLite naive UTC ones."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def remember_payments(*, session: Session, events: Sequence[PaymentEvent]) -> None:
    """Merge what `events` say into `notification_payment`; idempotent and order-independent."""
    facts: dict[str, PaymentFact] = {}
    for chunk in _chunks(e.payload.payment_id for e in events):
        statement = select(PaymentFact).where(col(PaymentFact.payment_id).in_(chunk))
        facts.update((fact.payment_id, fact) for fact in session.exec(statement))
    for event in events:
        payload = event.payload
        fact = facts.get(payload.payment_id)
        if fact is None:
            fact = PaymentFact(
                payment_id=payload.payment_id,
                booking_id=payload.booking_id,
                user_id=payload.user_id,
            )
            facts[payload.payment_id] = fact
            session.add(fact)
        _merge(fact, event)


def _merge(fact: PaymentFact, event: PaymentEvent) -> None:
    changes: dict[str, Any] = {}
    if isinstance(event, PaymentInitiated | PaymentCompleted | PaymentFailed):
        changes |= {"amount": str(event.payload.amount), "currency": event.payload.currency}
    if isinstance(event, PaymentInitiated):
        changes |= {
            "payment_method": event.payload.payment_method,
            "initiated_at": event.payload.initiated_at,
        }
    elif isinstance(event, PaymentCompleted):
        changes |= {
            "completed_at": event.payload.completed_at,
            "transaction_id": event.payload.transaction_id,
        }
    elif isinstance(event, PaymentFailed):
        changes |= {"failed_at": event.payload.failed_at}
    for name, value in changes.items():
        if getattr(fact, name) is None:  # first word wins: a replay changes nothing
            setattr(fact, name, value)


def knowledge(*, session: Session, events: Sequence[PaymentEvent]) -> Knowledge:
    """Everything `notifications.plan` needs about `events`, read in one pass per table."""
    event_ids = [e.event_id for e in events]
    notified: set[tuple[str, str]] = set()
    for chunk in _chunks(event_ids):
        statement = select(SentNotification.event_id, SentNotification.kind).where(
            col(SentNotification.event_id).in_(chunk)
        )
        notified.update((event_id, kind) for event_id, kind in session.exec(statement))
    paid: set[str] = set()
    for chunk in _chunks(e.payload.booking_id for e in events):
        paid_statement = select(PaymentFact.booking_id).where(
            col(PaymentFact.booking_id).in_(chunk), col(PaymentFact.completed_at).is_not(None)
        )
        paid.update(session.exec(paid_statement))
    return Knowledge(
        notified=frozenset(notified),
        paid_bookings=frozenset(paid),
        payments=_payments(session, [e.payload.payment_id for e in events]),
        contacts=contacts(session=session, user_ids=[e.payload.user_id for e in events]),
    )


def _payments(session: Session, payment_ids: list[str]) -> dict[str, PaymentSummary]:
    found: dict[str, PaymentSummary] = {}
    for chunk in _chunks(payment_ids):
        for fact in session.exec(select(PaymentFact).where(col(PaymentFact.payment_id).in_(chunk))):
            found[fact.payment_id] = PaymentSummary(
                payment_method=fact.payment_method,
                initiated_at=_utc(fact.initiated_at),
                amount=Decimal(fact.amount) if fact.amount is not None else None,
                currency=fact.currency,
                transaction_id=fact.transaction_id,
            )
    return found


def contacts(*, session: Session, user_ids: Iterable[str]) -> dict[str, Recipient]:
    """The `user_contact` rows of `user_ids` that exist, as recipients."""
    found: dict[str, Recipient] = {}
    for chunk in _chunks(user_ids):
        for row in session.exec(select(UserContact).where(col(UserContact.user_id).in_(chunk))):
            found[row.user_id] = Recipient(row.email, row.display_name, row.locale)
    return found


def record_outcomes(*, session: Session, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Add the outcomes not recorded yet (a retried batch may hold some already)."""
    existing: set[tuple[str, str]] = set()
    for chunk in _chunks(o.event_id for o in outcomes):
        statement = select(SentNotification.event_id, SentNotification.kind).where(
            col(SentNotification.event_id).in_(chunk)
        )
        existing.update((event_id, kind) for event_id, kind in session.exec(statement))
    for outcome in outcomes:
        if (outcome.event_id, outcome.kind) in existing:
            continue
        existing.add((outcome.event_id, outcome.kind))
        session.add(
            SentNotification(
                event_id=outcome.event_id,
                kind=outcome.kind,
                status=outcome.status,
                message_id=outcome.message_id,
                booking_id=outcome.booking_id,
                payment_id=outcome.payment_id,
                smtp_code=outcome.smtp_code,
                detail=outcome.detail,
                recorded_at=now,
            )
        )


def save_contact(*, session: Session, contact: UserContact) -> None:
    """Insert or replace one `user_contact` row (for tools and tests; the service only reads)."""
    session.merge(contact)


def outcome_of(*, session: Session, event_id: str, kind: str) -> SentNotification | None:
    """The recorded outcome of one notification, if any."""
    return session.get(SentNotification, (event_id, kind))
