"""notification baseline: the schema as the service created it before migrations existed.

Every table and index is created only if it is missing, so a database made by the earlier
`create_all` start-up is adopted as it is (and stamped), while an empty one is built whole.

Revision ID: 0001_baseline
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "business_anomaly",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("first_event_id", sa.String(length=64), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        if_not_exists=True,
    )
    op.create_table(
        "business_fact",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "key"),
        if_not_exists=True,
    )
    op.create_table(
        "notification_claim",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "kind"),
        if_not_exists=True,
    )
    op.create_table(
        "notification_payment",
        sa.Column("payment_id", sa.String(length=256), nullable=False),
        sa.Column("booking_id", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("amount", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("payment_method", sa.String(length=256), nullable=True),
        sa.Column("initiated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transaction_id", sa.String(length=256), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("payment_id"),
        if_not_exists=True,
    )
    op.create_index(
        op.f("ix_notification_payment_booking_id"),
        "notification_payment",
        ["booking_id"],
        unique=False,
        if_not_exists=True,
    )
    op.create_table(
        "sent_notification",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=256), nullable=False),
        sa.Column("booking_id", sa.String(length=256), nullable=False),
        sa.Column("payment_id", sa.String(length=256), nullable=False),
        sa.Column("smtp_code", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=600), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "kind"),
        if_not_exists=True,
    )
    op.create_table(
        "undelivered_event",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_json", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "kind"),
        if_not_exists=True,
    )
    op.create_table(
        "user_contact",
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.PrimaryKeyConstraint("user_id"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("user_contact", if_exists=True)
    op.drop_table("undelivered_event", if_exists=True)
    op.drop_table("sent_notification", if_exists=True)
    op.drop_index(
        op.f("ix_notification_payment_booking_id"),
        table_name="notification_payment",
        if_exists=True,
    )
    op.drop_table("notification_payment", if_exists=True)
    op.drop_table("notification_claim", if_exists=True)
    op.drop_table("business_fact", if_exists=True)
    op.drop_table("business_anomaly", if_exists=True)
