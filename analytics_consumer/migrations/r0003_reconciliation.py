"""analytics reconciliation runs: `analytics_reconciliation_run`, one row per `reconcile --record`.

The service exports the newest rows as gauges (`analytics_consumer.reconciliation_gauges`);
downgrading drops the run history only (the reconciliation itself reads the other tables).

Revision ID: 0003_reconciliation
Revises: 0002_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_reconciliation"
down_revision: str | None = "0002_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_reconciliation_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=True),
        sa.Column("report", sa.String(length=1024), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("matched_by", sa.String(length=16), nullable=True),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("gateway_rows", sa.BigInteger(), nullable=False),
        sa.Column("discrepancies", sa.BigInteger(), nullable=False),
        sa.Column("by_kind", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_analytics_reconciliation_run_finished_ms",
        "analytics_reconciliation_run",
        ["finished_ms"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_analytics_reconciliation_run_finished_ms", table_name="analytics_reconciliation_run"
    )
    op.drop_table("analytics_reconciliation_run")
