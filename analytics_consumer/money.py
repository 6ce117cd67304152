"""Exact money: amounts as integer units of 1/10,000, and how they are shown.

SQLite has no decimal type (SQLAlchemy's `Numeric` there is a binary float), so amounts are
stored and summed as 64-bit integers of 10^-4 of the currency's major unit on both
databases: exact, fast to add in SQL, and enough for every ISO 4217 currency (none has more
than four decimals). An amount with more decimals, or too large to sum safely, is rejected.

Shown amounts use the currency's own decimals (babel's ISO 4217 data: EUR 2, JPY 0, BHD 3),
so `1250.00` stays `1250.00`; a mean or a median between two amounts is rounded half-even to
those decimals. A total that somehow has more decimals than the currency is shown in full.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from babel.numbers import get_currency_precision

UNITS_PER_MAJOR: Final = 10_000
SCALE: Final = 4
MAX_UNITS: Final = 2**53
"""One amount at most ~9e11 major units, so that billions of them still sum in 64 bits."""


class UnrepresentableAmountError(ValueError):
    """The amount has more than four decimals or is absurdly large."""


def to_units(amount: Decimal) -> int:
    """`Decimal("1250.00")` → 12_500_000; raises `UnrepresentableAmountError` if not exact."""
    scaled = amount.scaleb(SCALE)
    if not scaled.is_finite():
        raise UnrepresentableAmountError(f"amount {amount} is not a finite number")
    units = int(scaled)
    if units != scaled:
        raise UnrepresentableAmountError(f"amount {amount} has more than {SCALE} decimals")
    if not 0 <= units < MAX_UNITS:
        raise UnrepresentableAmountError(f"amount {amount} is out of range")
    return units


def from_units(units: int) -> Decimal:
    """12_500_000 → `Decimal("1250.0000")`: exact, at the storage scale."""
    return Decimal(units).scaleb(-SCALE)


@functools.cache
def places(currency: str) -> int:
    """The currency's decimals per ISO 4217 (2 when babel does not know it)."""
    return int(get_currency_precision(currency))


def shown(units: int, currency: str) -> Decimal:
    """An exact total at the currency's decimals (more only if the total needs them)."""
    exact = from_units(units)
    quantum = Decimal(1).scaleb(-places(currency))
    rounded = exact.quantize(quantum)
    return rounded if rounded == exact else exact.normalize()


def rounded(value: Decimal, currency: str) -> Decimal:
    """`value` rounded half-even to the currency's decimals (means and medians)."""
    return value.quantize(Decimal(1).scaleb(-places(currency)), rounding=ROUND_HALF_EVEN)


def mean(total_units: int, count: int, currency: str) -> Decimal:
    """The average of `count` amounts summing to `total_units`, at the currency's decimals."""
    return rounded(from_units(total_units) / count, currency)


def median(lower_units: int, upper_units: int, currency: str) -> Decimal:
    """The median from the middle amount(s) of a sorted list (equal for an odd count)."""
    return rounded(from_units(lower_units + upper_units) / 2, currency)


def text(value: Decimal) -> str:
    """Plain decimal text, never scientific notation (`Decimal("1E+3")` → `"1000"`)."""
    return format(value, "f")
