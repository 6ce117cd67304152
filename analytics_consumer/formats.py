"""How a figure reads: counts, amounts, percentages and durations as an operator sees them. Pure.

The dashboard (`dashboard`) and the text report (`report.report_text`) both format through
here, so a figure reads the same on the page and in the terminal. The JSON report does not:
it keeps machine values (`report.report_json`).

* Counts have thousands separators: `7,058,690`.
* Amounts are shown at the currency's own decimals (`money.places`: EUR 2, JPY 0, BHD 3)
  with separators, then the ISO code: `1,250.00 EUR`, `7,058,690 JPY`.
* Percentages keep the two decimals the figures are rounded to: `14.31%`.
* Durations use at most two units, the larger first, rounded to the smaller one shown:
  `850 ms`, `12.5 s`, `2 min 5 s`, `3 h 12 min`, `9 d 13 h`; whole units drop the zero
  (`2 min`, not `2 min 0 s`).
* A figure without a value (a rate with a zero denominator, a percentile of nothing) is
  `DASH`.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from analytics_consumer import money

DASH: Final = "\u2013"
"""Shown for a figure that has no value yet."""

SEPARATOR: Final = " \u00b7 "
"""Between the items of a one-line list (amounts in several currencies)."""

_SECOND: Final = 1000
_MINUTE: Final = 60 * _SECOND
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_UNITS: Final = ((_DAY, "d"), (_HOUR, "h"), (_MINUTE, "min"), (_SECOND, "s"))

ALERT_UNITS: Final = {
    "high_failure_rate": "percent",
    "high_refund_rate": "percent",
    "processing_delay": "seconds",
    "unusual_amounts": "count",
    "gateway_unavailable": "percent",
}
"""How each alert's value and threshold read; an alert not listed shows its plain number."""


def count(n: int | None) -> str:
    """`7058690` → `"7,058,690"`."""
    return DASH if n is None else f"{n:,}"


def number(value: Decimal) -> str:
    """A decimal with separators, never in scientific notation: `Decimal("1E+3")` → `"1,000"`."""
    return format(value, ",f")


def money_value(value: Decimal | None, currency: str) -> str:
    """An amount already at its decimals (a mean, a median) with its code: `"1,250.00 EUR"`."""
    return DASH if value is None else f"{number(value)} {currency}"


def amount(units: int | None, currency: str) -> str:
    """A total in storage units (see `money`) at the currency's decimals: `"7,058,690 JPY"`."""
    return DASH if units is None else money_value(money.shown(units, currency), currency)


def amounts(by_currency: Mapping[str, int]) -> str:
    """Totals in several currencies on one line, by code: `"1,250.00 EUR · 7,000 JPY"`."""
    return SEPARATOR.join(amount(u, c) for c, u in sorted(by_currency.items())) or DASH


def percent(value: Decimal | float | None) -> str:
    """A percentage as computed (two decimals for rates): `Decimal("14.31")` → `"14.31%"`."""
    if value is None:
        return DASH
    return f"{number(value)}%" if isinstance(value, Decimal) else f"{value:g}%"


def share(part: int, whole: int) -> str:
    """`part` of `whole` as a percentage with one decimal: `(45, 100)` → `"45.0%"`."""
    return DASH if whole == 0 else f"{part / whole:.1%}"


def duration(ms: int | None) -> str:
    """A duration in milliseconds for a person: `825_911_929` → `"9 d 13 h"`."""
    if ms is None:
        return DASH
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    if ms < _SECOND:
        return f"{sign}{ms} ms"
    if round(ms / _SECOND, 1) < 60:
        return f"{sign}{ms / _SECOND:.1f} s"
    for index, (size, name) in enumerate(_UNITS[:-1]):
        smaller, smaller_name = _UNITS[index + 1]
        whole = (ms + smaller // 2) // smaller  # rounded to the smaller unit shown
        if whole * smaller >= size:
            major, minor = divmod(whole, size // smaller)
            return f"{sign}{major} {name}" + (f" {minor} {smaller_name}" if minor else "")
    raise AssertionError("unreachable: a minute or more always has a unit")  # pragma: no cover


def seconds(value: Decimal | float | None) -> str:
    """A duration given in seconds (the report's and the alerts' unit), as `duration` reads it."""
    return DASH if value is None else duration(round(Decimal(value) * _SECOND))


def duration_range(low_ms: int, high_ms: int | None) -> str:
    """A histogram bucket `[low, high)`: `5-10 s`, `1-2 min`, `30 s-1 min`, `≥ 3 min` (en dashes)."""
    if high_ms is None:
        return f"\u2265 {_whole(low_ms)}"
    if low_ms == 0:
        return f"< {_whole(high_ms)}"
    low, high = _whole(low_ms), _whole(high_ms)
    low_number, _, low_unit = low.partition(" ")
    _, _, high_unit = high.partition(" ")
    if low_unit == high_unit and " " not in low_unit:
        return f"{low_number}\u2013{high}"
    return f"{low}\u2013{high}"


def _whole(ms: int) -> str:
    """A bucket bound: `5 s`, not `5.0 s`."""
    text = duration(ms)
    return text.replace(".0 s", " s")


def alert_value(name: str, value: Decimal) -> str:
    """An alert's value or threshold in its unit (`ALERT_UNITS`), with the decimals it has:
    `Decimal("825911.929")` seconds → `"9 d 13 h"`, `Decimal(5)` percent → `"5%"`."""
    unit = ALERT_UNITS.get(name)
    if unit == "percent":
        return percent(value)
    if unit == "seconds":
        return seconds(value)
    if unit == "count":
        return count(int(value))
    return number(value)
