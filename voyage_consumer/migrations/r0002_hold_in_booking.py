"""voyage: the inventory hold becomes a column of the booking row; the facts are the inbox.

Before, every event wrote four rows: an inbox row (`processed_event`), its fact, and its
booking's `booking` and `inventory_hold` upserts. The hold is a function of the booking's
status, written at the same moment with the same time, so it moves into the booking row
(filled from the status, as the service derived it) and its table goes. The inbox needs no
DDL: the service now claims an event by inserting its fact (`payment_fact`'s key), and
`processed_event` is left as it is, no longer written.

Dropping `inventory_hold` is a contract step: the consumers of the previous release write
that table, so stop them before this revision runs (docs/voyage.md, rolling out a schema
change).

Revision ID: 0002_hold_in_booking
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from common.columns import UtcDateTime

revision = "0002_hold_in_booking"
down_revision: str | None = "0001_baseline"
branch_labels = None
depends_on = None

_HOLD_OF_STATUS = (
    "CASE status WHEN 'payment_pending' THEN 'held'"
    " WHEN 'confirmed' THEN 'converted' WHEN 'partially_refunded' THEN 'converted'"
    " ELSE 'released' END"
)
"""`voyage_consumer.domain.HOLD_BY_STATUS`, frozen as it was when this revision was written."""


def upgrade() -> None:
    op.add_column(
        "booking",
        sa.Column(
            "inventory_hold",
            sa.String(),
            sa.CheckConstraint(
                "inventory_hold IN ('held', 'converted', 'released')",
                name="booking_inventory_hold_valid",
            ),
            nullable=False,
            server_default="held",  # SQLite adds a NOT NULL column only with a default
        ),
    )
    op.execute(f"UPDATE booking SET inventory_hold = {_HOLD_OF_STATUS}")  # noqa: S608
    if op.get_context().dialect.name == "postgresql":
        op.alter_column("booking", "inventory_hold", server_default=None)
    op.drop_table("inventory_hold")


def downgrade() -> None:
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
    )
    op.execute(
        "INSERT INTO inventory_hold (booking_id, status, updated_at)"
        " SELECT booking_id, inventory_hold, updated_at FROM booking"
    )
    op.drop_column("booking", "inventory_hold")
