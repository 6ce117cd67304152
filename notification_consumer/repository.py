"""Database functions of the notification service; each takes a keyword-only `session`.

The caller owns the transaction (`common.db.transaction`). Look-ups take a whole batch and
run one query per table (`common.bulk.where_in`: one array on PostgreSQL, chunks under
SQLite's bound-parameter limit), so a batch of a thousand events costs a handful of round
trips, not thousands. Outcomes are one conflict-ignoring multi-row INSERT (`common.bulk`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from sqlmodel import Session, col, select

from common import bulk
from common.db import table_of
from common.events import PaymentCompleted, PaymentEvent, PaymentFailed, PaymentInitiated
from notification_consumer.models import PaymentFact, SentNotification, UserContact
from notification_consumer.notifications import Knowledge, Outcome, PaymentSummary, Recipient

_CONTACT: Final = table_of(UserContact)
_PAYMENT: Final = table_of(PaymentFact)
_SENT: Final = table_of(SentNotification)


def _utc(value: datetime | None) -> datetime | None:
    """Aware UTC: PostgreSQL returns aware times, SQLite naive UTC ones."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def remember_payments(
    *, session: Session, events: Sequence[PaymentEvent]
) -> dict[str, PaymentFact]:
    """Merge what `events` say into `notification_payment`; idempotent and order-independent.

    Returns the merged facts of the events' payments by paymentId (for `knowledge`).
    """
    facts: dict[str, PaymentFact] = {}
    for condition in bulk.where_in(
        session=session, column=_PAYMENT.c.payment_id, values=(e.payload.payment_id for e in events)
    ):
        statement = select(PaymentFact).where(condition)
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
    return facts


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


def knowledge(
    *, session: Session, events: Sequence[PaymentEvent], payments: Mapping[str, PaymentFact]
) -> Knowledge:
    """Everything `notifications.plan` needs about `events`, read in one pass per table.

    `payments` is what `remember_payments` returned in this transaction: no need to read it back.
    """
    event_ids = [e.event_id for e in events]
    notified: set[tuple[str, str]] = set()
    for condition in bulk.where_in(session=session, column=_SENT.c.event_id, values=event_ids):
        statement = select(SentNotification.event_id, SentNotification.kind).where(condition)
        notified.update((event_id, kind) for event_id, kind in session.exec(statement))
    paid: set[str] = set()
    for condition in bulk.where_in(
        session=session, column=_PAYMENT.c.booking_id, values=(e.payload.booking_id for e in events)
    ):
        paid_statement = select(PaymentFact.booking_id).where(
            condition, col(PaymentFact.completed_at).is_not(None)
        )
        paid.update(session.exec(paid_statement))
    return Knowledge(
        notified=frozenset(notified),
        paid_bookings=frozenset(paid),
        payments=_summaries(payments, (e.payload.payment_id for e in events)),
        contacts=contacts(session=session, user_ids=[e.payload.user_id for e in events]),
    )


def _summaries(
    facts: Mapping[str, PaymentFact], payment_ids: Iterable[str]
) -> dict[str, PaymentSummary]:
    found: dict[str, PaymentSummary] = {}
    for payment_id in payment_ids:
        fact = facts[payment_id]
        found[payment_id] = PaymentSummary(
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
    for condition in bulk.where_in(session=session, column=_CONTACT.c.user_id, values=user_ids):
        for row in session.exec(select(UserContact).where(condition)):
            found[row.user_id] = Recipient(row.email, row.display_name, row.locale)
    return found


def record_outcomes(*, session: Session, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Add the outcomes not recorded yet (a retried batch may hold some; the first one stays)."""
    at = bulk.encoders(session).time(now)
    bulk.insert_rows(
        session=session,
        table=_SENT,
        columns=(
            "event_id",
            "kind",
            "status",
            "message_id",
            "booking_id",
            "payment_id",
            "smtp_code",
            "detail",
            "recorded_at",
        ),
        rows=[
            (
                o.event_id,
                o.kind,
                o.status,
                o.message_id,
                o.booking_id,
                o.payment_id,
                o.smtp_code,
                o.detail,
                at,
            )
            for o in outcomes
        ],
        on_conflict="(event_id, kind) DO NOTHING",
    )


def save_contact(*, session: Session, contact: UserContact) -> None:
    """Insert or replace one `user_contact` row (for tools and tests; the service only reads)."""
    session.merge(contact)


def outcome_of(*, session: Session, event_id: str, kind: str) -> SentNotification | None:
    """The recorded outcome of one notification, if any."""
    return session.get(SentNotification, (event_id, kind))
