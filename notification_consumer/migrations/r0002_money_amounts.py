"""notification: payment amounts become exact decimals (`common.columns.Money`), not text.

On PostgreSQL `notification_payment.amount` turns from `VARCHAR(64)` into unscaled `NUMERIC`
(every stored value is a decimal the parser accepted, so the cast cannot fail, and `1250.00`
keeps its scale). SQLite has no decimal type: `Money` is text there already, so nothing
changes on disk.

Revision ID: 0002_money_amounts
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_money_amounts"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.alter_column(
        "notification_payment",
        "amount",
        type_=sa.Numeric(),
        existing_type=sa.String(length=64),
        existing_nullable=True,
        postgresql_using="amount::numeric",
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.alter_column(
        "notification_payment",
        "amount",
        type_=sa.String(length=64),
        existing_type=sa.Numeric(),
        existing_nullable=True,
        postgresql_using="amount::text",
    )
