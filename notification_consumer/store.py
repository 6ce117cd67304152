"""Database functions of the notification service; each takes a keyword-only `session`.

The caller owns the transaction (`common.db.transaction`). Look-ups take a whole batch and
run one query per table (`common.bulk.where_in`: one array on PostgreSQL, chunks under
SQLite's bound-parameter limit), so a batch of a thousand events costs a handful of round
trips, not thousands. Outcomes are one conflict-ignoring multi-row INSERT (`common.bulk`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, tuple_
from sqlmodel import Session, col, select

from common import bulk
from common.db import table_of
from common.events import PaymentCompleted, PaymentEvent, PaymentFailed, PaymentInitiated
from notification_consumer.domain import Knowledge, Outcome, PaymentSummary, Recipient
from notification_consumer.presence import is_gone
from notification_consumer.tables import (
    NotificationClaim,
    PaymentFact,
    SentNotification,
    UndeliveredEvent,
    UserContact,
)

_CONTACT: Final = table_of(UserContact)
_PAYMENT: Final = table_of(PaymentFact)
_SENT: Final = table_of(SentNotification)
_UNDELIVERED: Final = table_of(UndeliveredEvent)
_CLAIM: Final = table_of(NotificationClaim)

CLAIM_TTL: Final = timedelta(seconds=120)
"""After this, a claim whose member never recorded an outcome may be taken over even if its
member still looks alive: well above the longest a handler call takes (MAX_RECORDS_PER_CALL
sends on a slow relay). A member known gone (`presence.is_gone`) loses its claims at once."""


_PAYMENT_COLUMNS: Final = tuple(c.name for c in _PAYMENT.columns)
_MERGE_PAYMENT: Final = "(payment_id) DO UPDATE SET " + ", ".join(
    f"{c} = COALESCE(notification_payment.{c}, excluded.{c})"
    for c in _PAYMENT_COLUMNS
    if c != "payment_id"
)
"""The first word wins: a column keeps the value it has."""
_SUMMARY_COLUMNS: Final = tuple(_PAYMENT.c[f.name] for f in fields(PaymentSummary))
_TIMES: Final = ("initiated_at", "completed_at", "failed_at")


def remember_payments(*, session: Session, events: Sequence[PaymentEvent]) -> None:
    """Merge what `events` say into `notification_payment`; idempotent and order-independent.

    The first word wins: in the table, then in the batch's order. So the batch is folded
    into one row per payment here and merged by one upsert (`COALESCE(stored, new)` per
    column, rows sorted by paymentId so two members lock them in one order; concurrent
    members wait on each other's rows instead of colliding). Reading, merging and flushing
    each payment through the ORM cost this service a sixth of its time
    (docs/performance.md).
    """
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        payload = event.payload
        row = rows.get(payload.payment_id)
        if row is None:
            row = rows[payload.payment_id] = dict.fromkeys(_PAYMENT_COLUMNS)
            row |= {
                "payment_id": payload.payment_id,
                "booking_id": payload.booking_id,
                "user_id": payload.user_id,
            }
        for name, value in _said(event):
            if row[name] is None:
                row[name] = value
    encode = bulk.encoders(session)
    encoded = []
    for key in sorted(rows):
        row = rows[key]
        row["amount"] = encode.decimal(row["amount"])
        for name in _TIMES:
            row[name] = encode.time(row[name])
        encoded.append(tuple(row[c] for c in _PAYMENT_COLUMNS))
    bulk.insert_rows(
        session=session,
        table=_PAYMENT,
        columns=_PAYMENT_COLUMNS,
        rows=encoded,
        on_conflict=_MERGE_PAYMENT,
    )


def _said(event: PaymentEvent) -> Iterable[tuple[str, Any]]:
    """The payment's columns `event` gives a value for."""
    if isinstance(event, PaymentInitiated):
        return (
            ("amount", event.payload.amount),
            ("currency", event.payload.currency),
            ("payment_method", event.payload.payment_method),
            ("initiated_at", event.payload.initiated_at),
        )
    if isinstance(event, PaymentCompleted):
        return (
            ("amount", event.payload.amount),
            ("currency", event.payload.currency),
            ("completed_at", event.payload.completed_at),
            ("transaction_id", event.payload.transaction_id),
        )
    if isinstance(event, PaymentFailed):
        return (
            ("amount", event.payload.amount),
            ("currency", event.payload.currency),
            ("failed_at", event.payload.failed_at),
        )
    return ()


def knowledge(*, session: Session, events: Sequence[PaymentEvent]) -> Knowledge:
    """Everything `domain.plan` needs about `events`, read in one pass per table (after
    `remember_payments` in the same transaction, so their payments are known)."""
    event_ids = [e.event_id for e in events]
    notified: set[tuple[str, str]] = set()
    for condition in bulk.where_in(session=session, column=_SENT.c.event_id, values=event_ids):
        statement = select(SentNotification.event_id, SentNotification.kind).where(
            condition,
            SentNotification.status != "deferred",  # not final: a replay sends it
        )
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
        payments=payments(session=session, payment_ids=[e.payload.payment_id for e in events]),
        contacts=contacts(session=session, user_ids=[e.payload.user_id for e in events]),
    )


def payments(*, session: Session, payment_ids: Iterable[str]) -> dict[str, PaymentSummary]:
    """What is known of `payment_ids` (the merged `notification_payment` rows), by paymentId."""
    found: dict[str, PaymentSummary] = {}
    for condition in bulk.where_in(
        session=session, column=_PAYMENT.c.payment_id, values=payment_ids
    ):
        statement = select(_PAYMENT.c.payment_id, *_SUMMARY_COLUMNS).where(condition)
        found.update((row[0], PaymentSummary(*row[1:])) for row in session.execute(statement))
    return found


def contacts(*, session: Session, user_ids: Iterable[str]) -> dict[str, Recipient]:
    """The `user_contact` rows of `user_ids` that exist, as recipients."""
    found: dict[str, Recipient] = {}
    for condition in bulk.where_in(session=session, column=_CONTACT.c.user_id, values=user_ids):
        for row in session.exec(select(UserContact).where(condition)):
            found[row.user_id] = Recipient(row.email, row.display_name, row.locale)
    return found


def record_outcomes(*, session: Session, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Record `outcomes` in the ledger and release their send claims, in one transaction."""
    _insert_outcomes(session=session, outcomes=outcomes, now=now)
    release_claims(session=session, keys=[(o.event_id, o.kind) for o in outcomes])


def _insert_outcomes(*, session: Session, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Add the outcomes not recorded yet (a retried batch may hold some; the first final one stays)."""
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
        # The first final outcome stays; a `deferred` one gives way to what happened next,
        # and an `undeliverable` one to what `resend` achieved.
        on_conflict=(
            "(event_id, kind) DO UPDATE SET status = excluded.status, "
            "smtp_code = excluded.smtp_code, detail = excluded.detail, "
            "recorded_at = excluded.recorded_at "
            "WHERE sent_notification.status IN ('deferred', 'undeliverable')"
        ),
    )
    kept = [o for o in outcomes if o.event_json is not None]
    bulk.insert_rows(
        session=session,
        table=_UNDELIVERED,
        columns=("event_id", "kind", "event_json", "recorded_at"),
        rows=[(o.event_id, o.kind, o.event_json, at) for o in kept],
        on_conflict="(event_id, kind) DO NOTHING",
    )


def undelivered(
    *, session: Session, status: str, since: datetime | None = None
) -> list[tuple[str, str]]:
    """(kind, event JSON) of the notifications recorded with `status` (since `since`)."""
    statement = (
        select(UndeliveredEvent.kind, UndeliveredEvent.event_json)
        .join(
            SentNotification,
            (SentNotification.event_id == UndeliveredEvent.event_id)  # type: ignore[arg-type]
            & (SentNotification.kind == UndeliveredEvent.kind),
        )
        .where(SentNotification.status == status)
    )
    if since is not None:
        statement = statement.where(SentNotification.recorded_at >= since)
    return [(kind, text) for kind, text in session.exec(statement)]


def claim_sends(
    *, session: Session, keys: Sequence[tuple[str, str]], owner: str, now: datetime
) -> set[tuple[str, str]]:
    """Claim (eventId, kind) pairs for sending by `owner`; returns the ones it holds now.

    Held: newly claimed, claimed by `owner` already (a retry), or taken over from a member
    that is gone (its presence lock free) or whose claim is older than `CLAIM_TTL`. The
    others are being sent by another member.
    """
    at = bulk.encoders(session).time(now)
    wanted = sorted(set(keys))
    inserted = set(
        bulk.insert_rows(
            session=session,
            table=_CLAIM,
            columns=("event_id", "kind", "owner", "claimed_at"),
            rows=[(event_id, kind, owner, at) for event_id, kind in wanted],
            on_conflict="(event_id, kind) DO NOTHING",
            returning="event_id",
        )
    )
    held = {(e, k) for e, k in wanted if e in inserted}
    gone: dict[str, bool] = {}  # per other owner met: asked once per transaction
    for event_id, kind in wanted:
        if (event_id, kind) in held:
            continue
        claim = session.get(NotificationClaim, (event_id, kind), with_for_update=True)
        if claim is None:
            continue
        if claim.owner != owner and claim.claimed_at >= now - CLAIM_TTL:
            if claim.owner not in gone:
                gone[claim.owner] = is_gone(session, claim.owner)
            if not gone[claim.owner]:
                continue
        claim.owner, claim.claimed_at = owner, now
        held.add((event_id, kind))
    session.flush()
    return held


_RELEASE_CHUNK: Final = 500
"""Keys per DELETE: two parameters each, far below SQLite's and PostgreSQL's limits."""


def release_claims(*, session: Session, keys: Iterable[tuple[str, str]]) -> None:
    """Drop the claims of notifications whose outcome is recorded (in that transaction).

    One statement per chunk of keys: this runs for every recorded outcome, and a `get` and
    a `delete` per claim were the largest share of the service's own time in a profile
    (docs/performance.md).
    """
    pairs = tuple_(_CLAIM.c.event_id, _CLAIM.c.kind)
    wanted = list(keys)
    for start in range(0, len(wanted), _RELEASE_CHUNK):
        session.execute(delete(_CLAIM).where(pairs.in_(wanted[start : start + _RELEASE_CHUNK])))


def claim_of(*, session: Session, event_id: str, kind: str) -> NotificationClaim | None:
    return session.get(NotificationClaim, (event_id, kind))


def save_contact(*, session: Session, contact: UserContact) -> None:
    """Insert or replace one `user_contact` row (for tools and tests; the service only reads)."""
    session.merge(contact)


def outcome_of(*, session: Session, event_id: str, kind: str) -> SentNotification | None:
    """The recorded outcome of one notification, if any."""
    return session.get(SentNotification, (event_id, kind))
