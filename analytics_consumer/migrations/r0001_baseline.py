"""analytics baseline: the schema as the service created it before migrations existed.

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
        "analytics_daily",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=256), nullable=False),
        sa.Column("writer", sa.String(length=32), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "metric", "key", "writer"),
        if_not_exists=True,
    )
    op.create_table(
        "analytics_offset",
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "kafka_partition"),
        if_not_exists=True,
    )
    op.create_table(
        "analytics_payment",
        sa.Column("payment_id", sa.String(length=256), nullable=False),
        sa.Column("method", sa.String(length=256), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("initiated_units", sa.BigInteger(), nullable=True),
        sa.Column("initiated_ms", sa.BigInteger(), nullable=True),
        sa.Column("completed_currency", sa.String(length=3), nullable=True),
        sa.Column("completed_units", sa.BigInteger(), nullable=True),
        sa.Column("completed_ms", sa.BigInteger(), nullable=True),
        sa.Column("transaction_id", sa.String(length=256), nullable=True),
        sa.Column("completions", sa.BigInteger(), nullable=False),
        sa.Column("failed_ms", sa.BigInteger(), nullable=True),
        sa.Column("first_refund_ms", sa.BigInteger(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("payment_id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_analytics_payment_completed_ms",
        "analytics_payment",
        ["completed_ms"],
        unique=False,
        if_not_exists=True,
        sqlite_where=sa.text("completed_ms IS NOT NULL"),
        postgresql_where=sa.text("completed_ms IS NOT NULL"),
    )
    op.create_index(
        "ix_analytics_payment_failed_ms",
        "analytics_payment",
        ["failed_ms"],
        unique=False,
        if_not_exists=True,
        sqlite_where=sa.text("failed_ms IS NOT NULL"),
        postgresql_where=sa.text("failed_ms IS NOT NULL"),
    )
    op.create_index(
        "ix_analytics_payment_first_refund_ms",
        "analytics_payment",
        ["first_refund_ms"],
        unique=False,
        if_not_exists=True,
        sqlite_where=sa.text("first_refund_ms IS NOT NULL"),
        postgresql_where=sa.text("first_refund_ms IS NOT NULL"),
    )
    op.create_index(
        "ix_analytics_payment_initiated_ms",
        "analytics_payment",
        ["initiated_ms"],
        unique=False,
        if_not_exists=True,
        sqlite_where=sa.text("initiated_ms IS NOT NULL"),
        postgresql_where=sa.text("initiated_ms IS NOT NULL"),
    )
    op.create_table(
        "analytics_refund",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("refund_id", sa.String(length=256), nullable=False),
        sa.Column("payment_id", sa.String(length=256), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("refunded_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_analytics_refund_refunded_ms",
        "analytics_refund",
        ["refunded_ms"],
        unique=False,
        if_not_exists=True,
    )
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
        "processed_event",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("processed_event", if_exists=True)
    op.drop_table("business_fact", if_exists=True)
    op.drop_table("business_anomaly", if_exists=True)
    op.drop_index("ix_analytics_refund_refunded_ms", table_name="analytics_refund", if_exists=True)
    op.drop_table("analytics_refund", if_exists=True)
    op.drop_index(
        "ix_analytics_payment_initiated_ms",
        table_name="analytics_payment",
        sqlite_where=sa.text("initiated_ms IS NOT NULL"),
        postgresql_where=sa.text("initiated_ms IS NOT NULL"),
        if_exists=True,
    )
    op.drop_index(
        "ix_analytics_payment_first_refund_ms",
        table_name="analytics_payment",
        sqlite_where=sa.text("first_refund_ms IS NOT NULL"),
        postgresql_where=sa.text("first_refund_ms IS NOT NULL"),
        if_exists=True,
    )
    op.drop_index(
        "ix_analytics_payment_failed_ms",
        table_name="analytics_payment",
        sqlite_where=sa.text("failed_ms IS NOT NULL"),
        postgresql_where=sa.text("failed_ms IS NOT NULL"),
        if_exists=True,
    )
    op.drop_index(
        "ix_analytics_payment_completed_ms",
        table_name="analytics_payment",
        sqlite_where=sa.text("completed_ms IS NOT NULL"),
        postgresql_where=sa.text("completed_ms IS NOT NULL"),
        if_exists=True,
    )
    op.drop_table("analytics_payment", if_exists=True)
    op.drop_table("analytics_offset", if_exists=True)
    op.drop_table("analytics_daily", if_exists=True)
