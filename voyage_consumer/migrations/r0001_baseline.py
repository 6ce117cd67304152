"""voyage baseline: the schema as the service created it before migrations existed.

Every table and index is created only if it is missing, so a database made by the earlier
`create_all` start-up is adopted as it is (and stamped), while an empty one is built whole.

Revision ID: 0001_baseline
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from common.columns import Money, UtcDateTime

revision = "0001_baseline"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "booking",
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("payment_id", sa.String(), nullable=False),
        sa.Column("transaction_id", sa.String(), nullable=True),
        sa.Column("confirmation_number", sa.String(), nullable=True),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("refunded_amount", Money(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('payment_pending', 'confirmed', 'payment_failed', 'partially_refunded', 'cancelled')",
            name="booking_status_valid",
        ),
        sa.PrimaryKeyConstraint("booking_id"),
        sqlite_with_rowid=False,
        if_not_exists=True,
    )
    op.create_table(
        "booking_anomaly",
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("detail", sa.String(), nullable=False),
        sa.Column("observed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("booking_id", "kind", "subject"),
        sqlite_with_rowid=False,
        if_not_exists=True,
    )
    op.create_table(
        "inventory_hold",
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('held', 'converted', 'released')", name="inventory_hold_status_valid"
        ),
        sa.PrimaryKeyConstraint("booking_id"),
        sqlite_with_rowid=False,
        if_not_exists=True,
    )
    op.create_table(
        "payment_fact",
        sa.Column("booking_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("payment_id", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("payment_method", sa.String(), nullable=True),
        sa.Column("transaction_id", sa.String(), nullable=True),
        sa.Column("error_code", sa.String(), nullable=True),
        sa.Column("error_message", sa.String(), nullable=True),
        sa.Column("refund_id", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('initiated', 'completed', 'failed', 'refunded')",
            name="payment_fact_kind_valid",
        ),
        sa.PrimaryKeyConstraint("booking_id", "event_id"),
        if_not_exists=True,
    )
    op.create_table(
        "processed_event",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("processed_event", if_exists=True)
    op.drop_table("payment_fact", if_exists=True)
    op.drop_table("inventory_hold", if_exists=True)
    op.drop_table("booking_anomaly", if_exists=True)
    op.drop_table("booking", if_exists=True)
