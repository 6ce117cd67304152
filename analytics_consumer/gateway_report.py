"""Reading a payment gateway's settlement report (CSV) into money movements.

Our own format, one row per charge or refund, header required (column order free):

    id,type,amount,currency
    stripe_ch_3NqY7L2eZvKYlo2C0XYZ1234,charge,1250.00,EUR
    refund_xyz789abc,refund,1250.00,EUR

`id` is the transactionId of a payment.completed event or the refundId of a
payment.refunded event; `type` is `charge` or `refund`; `amount` is a positive decimal in
major units; `currency` is ISO 4217 (any case). Stripe's balance report columns are read
too: `source_id` (the charge or refund id; see `ID_COLUMNS`), `reporting_category`
(`charge`/`refund`; other categories such as `fee` or `payout` are counted as ignored),
`gross` (refunds negative there: the sign is dropped) and lower-case `currency`. Rows are
not filtered by date: the file is taken to be the gateway's report for the day compared.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, Literal

Kind = Literal["charge", "refund"]

ID_COLUMNS: Final = ("id", "transaction_id", "refund_id", "reference", "source_id")
"""The first of these present in the header holds the id to match."""
TYPE_COLUMNS: Final = ("type", "reporting_category", "kind")
AMOUNT_COLUMNS: Final = ("amount", "gross")
CURRENCY_COLUMNS: Final = ("currency",)
KINDS: Final[dict[str, Kind]] = {
    "charge": "charge",
    "payment": "charge",
    "refund": "refund",
}


class GatewayReportError(ValueError):
    """The file is not a gateway report we can read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Movement:
    """A charge or a refund, as recorded by one side."""

    kind: Kind
    reference: str
    amount: Decimal
    currency: str
    where: str
    """Where it comes from (`line 7`, `payment pay_abc`), for the person fixing it."""


@dataclass(frozen=True)
class GatewayReport:
    movements: list[Movement]
    ignored: int
    """Rows of other categories (fees, payouts...)."""


def read_gateway_report(path: Path) -> GatewayReport:
    """Read `path` (UTF-8, a BOM is fine); raises `GatewayReportError` or `OSError`."""
    return parse_gateway_report(path.read_text(encoding="utf-8-sig"), name=str(path))


def parse_gateway_report(content: str, *, name: str = "gateway report") -> GatewayReport:
    reader = csv.DictReader(io.StringIO(content))
    header = {(field or "").strip().lower(): field for field in reader.fieldnames or []}
    columns = {
        role: _pick(header, candidates, role, name)
        for role, candidates in (
            ("id", ID_COLUMNS),
            ("type", TYPE_COLUMNS),
            ("amount", AMOUNT_COLUMNS),
            ("currency", CURRENCY_COLUMNS),
        )
    }
    movements: list[Movement] = []
    ignored = 0
    for line, row in enumerate(reader, start=2):
        category = (row.get(columns["type"]) or "").strip().lower()
        kind = KINDS.get(category)
        if kind is None:
            ignored += 1
            continue
        reference = (row.get(columns["id"]) or "").strip()
        if not reference:
            raise GatewayReportError(f"{name}, line {line}: empty {columns['id']}")
        movements.append(
            Movement(
                kind,
                reference,
                _amount(row.get(columns["amount"]), f"{name}, line {line}"),
                (row.get(columns["currency"]) or "").strip().upper(),
                f"line {line}",
            )
        )
    return GatewayReport(movements, ignored)


def _pick(header: dict[str, str], candidates: tuple[str, ...], role: str, name: str) -> str:
    for candidate in candidates:
        if candidate in header:
            return header[candidate]
    raise GatewayReportError(f"{name}: no {role} column (expected one of {', '.join(candidates)})")


def _amount(text: str | None, where: str) -> Decimal:
    try:
        value = Decimal((text or "").strip().replace(",", ""))
    except InvalidOperation:
        raise GatewayReportError(f"{where}: amount {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise GatewayReportError(f"{where}: amount {text!r} is not a finite number")
    return abs(value)
