"""Reading a payment gateway's report (CSV) into money movements.

Two shapes are read, told apart by the header (column order is free, names any case):

* **Stripe's itemized reports** (a `reporting_category` and a `gross` column):
  `balance_change_from_activity.itemized.N` (Balance report) and
  `payout_reconciliation.itemized.N` (Payout reconciliation), as downloaded from the
  Dashboard or the Reporting API. Amounts are in major units (`1250.00` EUR, `120000` JPY),
  currencies lower-case, refunds negative. `reporting_category` `charge` is a charge,
  `refund` a refund and `refund_failure` a refund given back (a negative refund); every other
  category (`fee`, `payout`, `dispute`...) is counted by category and not compared. When the
  report has the optional `payment_intent_id` column, charges and refunds are keyed by their
  PaymentIntent, which is what the spec's webhook publishes as `transactionId`; without it
  (Stripe's default column set) by `source_id` (`ch_...`, `re_...`). The amount is
  `customer_facing_amount` in `customer_facing_currency` when present (what the customer was
  charged, as the PaymentIntent has it), else `gross` in `currency` (the settlement
  currency). `created_utc` (`YYYY-MM-DD HH:MM:SS`, UTC) places the row in time.
* **Our own format**, one row per charge or refund, keyed by id:

      id,type,amount,currency
      pi_3QaC1x2eZvKYlo2C0p1,charge,1250.00,EUR
      refund_xyz789abc,refund,250.00,EUR

  `id` is the transactionId of a payment.completed event or the refundId of a
  payment.refunded event; `type` is `charge` (or `payment`) or `refund`; `amount` a decimal
  in major units (the sign is dropped); `currency` ISO 4217 in any case.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final, Literal

from analytics_consumer.days import epoch_ms

Kind = Literal["charge", "refund"]
MatchBy = Literal["payment_intent", "id"]
"""How movements are keyed: by PaymentIntent id, or by the charge's or refund's own id."""

ID_COLUMNS: Final = ("id", "transaction_id", "refund_id", "reference")
TYPE_COLUMNS: Final = ("type", "kind")
AMOUNT_COLUMNS: Final = ("amount",)
CURRENCY_COLUMNS: Final = ("currency",)
KINDS: Final[dict[str, Kind]] = {"charge": "charge", "payment": "charge", "refund": "refund"}

STRIPE_CATEGORIES: Final[dict[str, tuple[Kind, int]]] = {
    "charge": ("charge", 1),
    "refund": ("refund", 1),
    "refund_failure": ("refund", -1),
}
"""Stripe reporting categories compared, as (kind, sign of the movement)."""
STRIPE_TIME: Final = "%Y-%m-%d %H:%M:%S"

_Rows = Iterator[dict[str, str]]


class GatewayReportError(ValueError):
    """The file is not a gateway report we can read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Movement:
    """A charge or a refund, as recorded by one side."""

    kind: Kind
    reference: str
    amount: Decimal
    """Major units; a refund given back (Stripe's refund_failure) is a negative refund."""
    currency: str
    where: str
    """Where it comes from (`line 7`, `payment pay_abc`), for the person fixing it."""
    at_ms: int | None = None
    """When it happened (epoch ms), if the side says; None is taken as within the day."""


@dataclass(frozen=True)
class GatewayReport:
    movements: list[Movement]
    ignored: Mapping[str, int] = field(default_factory=dict)
    """Rows not compared, by reporting category (fees, payouts, disputes...)."""
    match_by: MatchBy = "id"


def read_gateway_report(path: Path) -> GatewayReport:
    """Read `path` (UTF-8, a BOM is fine); raises `GatewayReportError` or `OSError`."""
    return parse_gateway_report(path.read_text(encoding="utf-8-sig"), name=str(path))


def parse_gateway_report(content: str, *, name: str = "gateway report") -> GatewayReport:
    reader = csv.DictReader(io.StringIO(content))
    header = {(f or "").strip().lower(): f for f in reader.fieldnames or []}
    rows = ({k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in reader)
    if "reporting_category" in header and "gross" in header:
        return _stripe(header, rows, name)
    return _ours(header, rows, name)


def _ours(header: Mapping[str, str], rows: _Rows, name: str) -> GatewayReport:
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
    ignored: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        category = row.get(columns["type"], "").lower()
        kind = KINDS.get(category)
        if kind is None:
            ignored[category] = ignored.get(category, 0) + 1
            continue
        where = f"{name}, line {line}"
        movements.append(
            Movement(
                kind,
                _required(row, columns["id"], where),
                abs(_amount(row.get(columns["amount"]), where)),
                row.get(columns["currency"], "").upper(),
                f"line {line}",
            )
        )
    return GatewayReport(movements, ignored, "id")


def _stripe(header: Mapping[str, str], rows: _Rows, name: str) -> GatewayReport:
    match_by: MatchBy = "payment_intent" if "payment_intent_id" in header else "id"
    if "source_id" not in header and match_by == "id":
        raise GatewayReportError(f"{name}: a Stripe report needs source_id or payment_intent_id")
    _pick(header, ("currency",), "currency", name)
    movements: list[Movement] = []
    ignored: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        category = row.get("reporting_category", "").lower()
        if category not in STRIPE_CATEGORIES:
            ignored[category] = ignored.get(category, 0) + 1
            continue
        kind, sign = STRIPE_CATEGORIES[category]
        where = f"{name}, line {line}"
        reference = row.get("payment_intent_id") or _required(row, "source_id", where)
        if row.get("customer_facing_amount") and row.get("customer_facing_currency"):
            amount_text, currency = row["customer_facing_amount"], row["customer_facing_currency"]
        else:
            amount_text, currency = row.get("gross", ""), row.get("currency", "")
        movements.append(
            Movement(
                kind,
                reference,
                sign * abs(_amount(amount_text, where, stripe=True)),
                currency.upper(),
                f"line {line}",
                _time(row.get("created_utc"), where),
            )
        )
    return GatewayReport(movements, ignored, match_by)


def _pick(header: Mapping[str, str], candidates: tuple[str, ...], role: str, name: str) -> str:
    for candidate in candidates:
        if candidate in header:
            return candidate
    raise GatewayReportError(f"{name}: no {role} column (expected one of {', '.join(candidates)})")


def _required(row: Mapping[str, str], column: str, where: str) -> str:
    value = row.get(column, "")
    if not value:
        raise GatewayReportError(f"{where}: empty {column}")
    return value


def _amount(text: str | None, where: str, *, stripe: bool = False) -> Decimal:
    """A decimal; `1,250.00` in our format, while Stripe's `decimal_separator=","` gives `1250,00`."""
    cleaned = (text or "").strip()
    cleaned = cleaned.replace(",", ".") if stripe else cleaned.replace(",", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise GatewayReportError(f"{where}: amount {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise GatewayReportError(f"{where}: amount {text!r} is not a finite number")
    return value


def _time(text: str | None, where: str) -> int | None:
    if not text:
        return None
    try:
        moment = datetime.strptime(text, STRIPE_TIME).replace(tzinfo=UTC)
    except ValueError:
        raise GatewayReportError(
            f"{where}: created_utc {text!r} is not YYYY-MM-DD HH:MM:SS"
        ) from None
    return epoch_ms(moment)
