"""analytics audit trail: `analytics_audit`, every accepted event with its envelope.

On PostgreSQL the table is range-partitioned by `occurred_ms` (declarative partitioning);
the month partitions are made by the service as events arrive and by `audit prune`
(`analytics_consumer.audit_trail`), so this revision creates none. On SQLite it is a plain
table. Downgrading drops it with its partitions, and with it the audit trail: export it
first (`analytics-consumer audit export`).

Revision ID: 0002_audit
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_audit"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_audit",
        sa.Column("occurred_ms", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.String(length=256), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=True),
        sa.Column("causation_id", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("kafka_partition", sa.Integer(), nullable=False),
        sa.Column("kafka_offset", sa.BigInteger(), nullable=False),
        sa.Column("record_key", sa.Text(), nullable=True),
        sa.Column("broker_ms", sa.BigInteger(), nullable=True),
        sa.Column("recorded_ms", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("occurred_ms", "event_id"),
        postgresql_partition_by="RANGE (occurred_ms)",
    )


def downgrade() -> None:
    op.drop_table("analytics_audit")
