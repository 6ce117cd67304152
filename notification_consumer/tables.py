"""The service's tables: who to write to, what we know of each payment, what was sent.

* `user_contact` is the recipients' directory (filled by whoever owns user data; this
  service only reads it).
* `notification_payment` keeps what earlier events said about a payment, so that later emails can
  say "paid by credit card on ..." and a failure for an already-paid booking is recognised
  as stale. It is keyed by paymentId and looked up by bookingId.
* `sent_notification` is the exactly-once ledger: one row per (eventId, kind) whose outcome
  is final (sent, failed, undeliverable), checked before sending, written after the SMTP
  server accepted or refused the message.

Amounts and times use the shared column types (`common.columns`): exact decimals and aware
UTC datetimes on both databases (revision `0002_money_amounts` moved amounts off text).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from common import business
from common.columns import Money, UtcDateTime
from common.schema import Schema


class UserContact(SQLModel, table=True):
    """Where and how to write to a user."""

    __tablename__ = "user_contact"

    user_id: str = Field(primary_key=True, max_length=256)
    email: str = Field(max_length=320)
    display_name: str | None = Field(default=None, max_length=256)
    locale: str | None = Field(default=None, max_length=35)


class PaymentFact(SQLModel, table=True):
    """What the events of one payment (one paymentId) told us so far."""

    __tablename__ = "notification_payment"

    payment_id: str = Field(primary_key=True, max_length=256)
    booking_id: str = Field(index=True, max_length=256)
    user_id: str = Field(max_length=256)
    amount: Decimal | None = Field(default=None, sa_type=Money)
    currency: str | None = Field(default=None, max_length=3)
    payment_method: str | None = Field(default=None, max_length=256)
    initiated_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    transaction_id: str | None = Field(default=None, max_length=256)
    failed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class SentNotification(SQLModel, table=True):
    """The final outcome of one notification: the exactly-once ledger."""

    __tablename__ = "sent_notification"

    event_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=32)
    status: str = Field(max_length=16)
    message_id: str = Field(max_length=256)
    booking_id: str = Field(max_length=256)
    payment_id: str = Field(max_length=256)
    smtp_code: int | None = None
    detail: str | None = Field(default=None, max_length=600)
    recorded_at: datetime = Field(sa_type=UtcDateTime)


class UndeliveredEvent(SQLModel, table=True):
    """The event of an `undeliverable` notification, kept for `notification-consumer resend`."""

    __tablename__ = "undelivered_event"

    event_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=32)
    event_json: str = Field(sa_type=Text)
    recorded_at: datetime = Field(sa_type=UtcDateTime)


class NotificationClaim(SQLModel, table=True):
    """A notification some member is sending now: claimed before the send, gone once recorded.

    Two members handling the same event at once (it was published to two partitions) would
    otherwise both send it. A claim whose member is gone (`presence`), or older than
    `repository.CLAIM_TTL`, may be taken over.
    """

    __tablename__ = "notification_claim"

    event_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=32)
    claimed_at: datetime = Field(sa_type=UtcDateTime)


MODELS: Final = (
    UserContact,
    PaymentFact,
    SentNotification,
    UndeliveredEvent,
    NotificationClaim,
    *business.MODELS,
)

SCHEMA: Final = Schema("notification", "notification_consumer.migrations", MODELS)
"""The notification database, built by the revisions in `notification_consumer/migrations`."""
