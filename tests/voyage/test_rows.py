"""The voyage rows are built field by field by name: each value lands in its own column (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from common import bulk
from voyage_consumer.facts import Fact
from voyage_consumer.store import fact_rows

ENCODERS = bulk.Encoders(
    decimal=lambda d: None if d is None else f"decimal:{d}",
    time=lambda t: None if t is None else f"time:{t.isoformat()}",
    naive_time=lambda t: None if t is None else f"naive:{t.isoformat()}",
)


def test_every_fact_field_goes_to_the_column_of_its_name() -> None:
    """A fact with a different value in every field gives a row whose column `name` holds field `name` (amount and time encoded)."""
    fact = Fact(
        event_id="evt_1",
        kind="refunded",
        booking_id="bk_1",
        payment_id="pay_1",
        user_id="usr_1",
        amount=Decimal("12.50"),
        currency="EUR",
        occurred_at=datetime(2025, 12, 18, 10, 30, tzinfo=UTC),
        payment_method="card",
        transaction_id="tx_1",
        error_code="E_CODE",
        error_message="error text",
        refund_id="rf_1",
        reason="reason text",
    )
    [(columns, [row])] = fact_rows([fact], ENCODERS).items()
    expected = fact._asdict() | {
        "amount": "decimal:12.50",
        "occurred_at": "time:2025-12-18T10:30:00+00:00",
    }
    assert dict(zip(columns, row, strict=True)) == expected


def test_a_field_left_empty_is_left_out_of_the_columns() -> None:
    """Facts are grouped by the columns they fill; an empty (None) field is not a column of its row, so it stays NULL."""
    base = Fact(
        "evt_1", "completed", "bk_1", "pay_1", "usr_1", Decimal("1.00"), "EUR",
        datetime(2025, 12, 18, 10, 30, tzinfo=UTC), transaction_id="tx_1",
    )  # fmt: skip
    failed = base._replace(
        event_id="evt_2", kind="failed", transaction_id=None, error_code="E", error_message="m"
    )
    groups = fact_rows([base, failed, base._replace(event_id="evt_3")], ENCODERS)
    assert {columns[8:]: len(rows) for columns, rows in groups.items()} == {
        ("transaction_id",): 2,
        ("error_code", "error_message"): 1,
    }
    for columns, rows in groups.items():
        assert all(None not in row and len(row) == len(columns) for row in rows)
