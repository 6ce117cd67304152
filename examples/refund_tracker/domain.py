"""The pure core: what some refunds add to each currency's total. No I/O."""

from collections.abc import Iterable
from decimal import Decimal

from common.events import PaymentRefunded


def refunded(refunds: Iterable[PaymentRefunded]) -> dict[str, Decimal]:
    """The amount refunded per currency, exactly (`{}` for no refunds)."""
    amounts: dict[str, Decimal] = {}
    for refund in refunds:
        currency = refund.payload.currency
        amounts[currency] = amounts.get(currency, Decimal(0)) + refund.payload.refund_amount
    return amounts
