"""Database reads and writes, in the caller's transaction (`session`, keyword-only)."""

from collections.abc import Mapping
from decimal import Decimal

from sqlmodel import Session

from examples.refund_tracker.tables import RefundTotal


def add_to_totals(*, session: Session, amounts: Mapping[str, Decimal]) -> None:
    """Add `amounts` to the stored totals of their currencies."""
    for currency, amount in amounts.items():
        row = session.get(RefundTotal, currency) or RefundTotal(currency=currency)
        row.total = str(Decimal(row.total) + amount)
        session.add(row)
