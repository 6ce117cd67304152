"""Daily reconciliation: the charges and refunds the events recorded versus the gateway's report.

Movements are matched by (type, key). The key depends on the report (`gateway_report`):

* `payment_intent` (a Stripe report with the `payment_intent_id` column): a charge by the
  transactionId of its payment.completed event, which the spec's webhook sets to the
  PaymentIntent id; a refund by the transactionId of the payment it refunds. Several partial
  refunds of one payment are normal, so refunds are compared as a total per PaymentIntent
  (a refund_failure counts negative).
* `id` (our format, or a Stripe report without `payment_intent_id`): a charge by
  transactionId, a refund by refundId, one movement each.

Every difference is a discrepancy of one kind:

| kind                   | meaning                                                            |
|------------------------|--------------------------------------------------------------------|
| `missing_in_gateway`   | the events recorded it, the gateway report does not list it        |
| `missing_in_events`    | the gateway lists it, no event recorded it                         |
| `amount_mismatch`      | both have it, with different amounts (same currency)               |
| `zero_decimal_scaled`  | an amount mismatch where the events' amount times 100 is the gateway's, in a zero-decimal currency (JPY...): the producer divided by 100 |
| `currency_mismatch`    | both have it, in different currencies                              |
| `duplicate_in_gateway` | the gateway lists the same charge more than once                   |
| `duplicate_in_events`  | two events recorded the same charge (e.g. two completions)         |

With a day, both sides are read `margin_ms` beyond each end of it, so that a charge captured
at 23:59:59 whose event says 00:00:02 matches; a discrepancy is reported on the day that holds
one of its movements (movements without a time count as inside the day).

`compare` is pure; `recorded_movements` reads the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import text
from sqlmodel import Session

from analytics_consumer import money
from analytics_consumer.days import day_range
from analytics_consumer.gateway_report import (
    GatewayReportError,
    Kind,
    MatchBy,
    Movement,
    read_gateway_report,
)

__all__ = [
    "DISCREPANCY_KINDS",
    "Discrepancy",
    "GatewayReportError",
    "Reconciliation",
    "compare",
    "read_gateway_report",
    "recorded_movements",
]

DISCREPANCY_KINDS: Final = (
    "missing_in_gateway",
    "missing_in_events",
    "amount_mismatch",
    "zero_decimal_scaled",
    "currency_mismatch",
    "duplicate_in_gateway",
    "duplicate_in_events",
)
OUTSIDE_DAY: Final = "outside_day"
"""The `ignored` category of gateway rows further than the margin from the day."""


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str
    type: Kind
    reference: str
    events: str | None
    """What the events recorded (`1250.00 EUR`, `350.00 EUR (2)` for 2 refunds), or None."""
    gateway: str | None


@dataclass(frozen=True)
class Reconciliation:
    day: str | None
    recorded: int
    gateway_rows: int
    discrepancies: list[Discrepancy]
    ignored: Mapping[str, int] = field(default_factory=dict)
    """Gateway rows not compared, by reporting category (and `outside_day`)."""
    match_by: MatchBy = "id"

    def by_kind(self) -> dict[str, int]:
        """Discrepancies per kind, every kind present (zero when none)."""
        counts = dict.fromkeys(DISCREPANCY_KINDS, 0)
        for discrepancy in self.discrepancies:
            counts[discrepancy.kind] += 1
        return counts

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "matched_by": self.match_by,
            "recorded_movements": self.recorded,
            "gateway_movements": self.gateway_rows,
            "ignored_gateway_rows": sum(self.ignored.values()),
            "ignored_by_category": dict(sorted(self.ignored.items())),
            "discrepancies": [
                {
                    "kind": d.kind,
                    "type": d.type,
                    "id": d.reference,
                    "events": d.events,
                    "gateway": d.gateway,
                }
                for d in self.discrepancies
            ],
        }

    def as_text(self) -> str:
        ignored = ", ".join(f"{k or 'blank'} {n}" for k, n in sorted(self.ignored.items()))
        lines = [
            f"Reconciliation of {self.day or 'all days'} (matched by {self.match_by}): "
            f"{self.recorded} recorded, {self.gateway_rows} in the gateway report "
            f"({sum(self.ignored.values())} rows ignored{': ' + ignored if ignored else ''}), "
            f"{len(self.discrepancies)} discrepancies"
        ]
        rows = [("kind", "type", "id", "events", "gateway")] + [
            (d.kind, d.type, d.reference, d.events or "-", d.gateway or "-")
            for d in self.discrepancies
        ]
        if self.discrepancies:
            widths = [max(len(row[i]) for row in rows) for i in range(5)]
            lines.append("")
            lines += [
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                for row in rows
            ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class _Side:
    amount: Decimal
    currency: str
    shown: str


def _side(movements: Sequence[Movement], *, total: bool) -> _Side:
    """One side of a key: the first movement, or for totals the sum (`350.00 EUR (2)`)."""
    first = movements[0]
    if not total:
        return _Side(first.amount, first.currency, f"{money.text(first.amount)} {first.currency}")
    amount = sum((m.amount for m in movements), Decimal(0))
    currencies = {m.currency for m in movements}
    currency = first.currency if len(currencies) == 1 else "/".join(sorted(currencies))
    count = f" ({len(movements)})" if len(movements) > 1 else ""
    return _Side(amount, currency, f"{money.text(amount)} {currency}{count}")


def _by_key(movements: Iterable[Movement]) -> dict[tuple[Kind, str], list[Movement]]:
    found: dict[tuple[Kind, str], list[Movement]] = {}
    for movement in movements:
        found.setdefault((movement.kind, movement.reference), []).append(movement)
    return found


def _within(movement: Movement, lo: int, hi: int) -> bool:
    return movement.at_ms is None or lo <= movement.at_ms < hi


def compare(
    recorded: Sequence[Movement],
    gateway: Sequence[Movement],
    *,
    day: str | None = None,
    match_by: MatchBy = "id",
    ignored: Mapping[str, int] | None = None,
    margin_ms: int = 0,
) -> Reconciliation:
    """Every discrepancy between the two sides, sorted by type and key."""
    lo, hi = day_range(day)
    ignored_rows = dict(ignored or {})
    if day is not None:
        kept = [m for m in gateway if _within(m, lo - margin_ms, hi + margin_ms)]
        if outside := len(gateway) - len(kept):
            ignored_rows[OUTSIDE_DAY] = ignored_rows.get(OUTSIDE_DAY, 0) + outside
        gateway = kept
        recorded = [m for m in recorded if _within(m, lo - margin_ms, hi + margin_ms)]
    ours, theirs = _by_key(recorded), _by_key(gateway)
    found: list[Discrepancy] = []
    for key in sorted(set(ours) | set(theirs)):
        mine, other = ours.get(key, []), theirs.get(key, [])
        if any(_within(m, lo, hi) for m in (*mine, *other)):
            found += _differences(key, mine, other, total=match_by == "payment_intent")
    in_day = sum(1 for m in recorded if _within(m, lo, hi))
    gateway_in_day = sum(1 for m in gateway if _within(m, lo, hi))
    return Reconciliation(day, in_day, gateway_in_day, found, ignored_rows, match_by)


def _differences(
    key: tuple[Kind, str], mine: Sequence[Movement], other: Sequence[Movement], *, total: bool
) -> list[Discrepancy]:
    kind, reference = key
    grouped = total and kind == "refund"
    ours = _side(mine, total=grouped) if mine else None
    theirs = _side(other, total=grouped) if other else None

    def discrepancy(name: str) -> Discrepancy:
        return Discrepancy(
            name,
            kind,
            reference,
            ours.shown if ours else None,
            theirs.shown if theirs else None,
        )

    found = []
    if not grouped and len(mine) > 1:
        found.append(discrepancy("duplicate_in_events"))
    if not grouped and len(other) > 1:
        found.append(discrepancy("duplicate_in_gateway"))
    if ours is None or theirs is None:
        present = ours or theirs
        if not (grouped and present is not None and present.amount == 0):
            found.append(discrepancy("missing_in_events" if ours is None else "missing_in_gateway"))
    elif ours.currency != theirs.currency:
        found.append(discrepancy("currency_mismatch"))
    elif ours.amount != theirs.amount:
        scaled = money.places(ours.currency) == 0 and ours.amount * 100 == theirs.amount
        found.append(discrepancy("zero_decimal_scaled" if scaled else "amount_mismatch"))
    return found


def recorded_movements(
    *, session: Session, day: str | None, match_by: MatchBy = "id", margin_ms: int = 0
) -> list[Movement]:
    """The charges and refunds the events recorded, for one UTC day (± margin) or all time.

    Keyed as `match_by` says; a refund whose payment has no transactionId (its completion was
    not recorded) keeps its refundId.
    """
    lo, hi = day_range(day)
    if day is not None:
        lo, hi = lo - margin_ms, hi + margin_ms
    movements: list[Movement] = []
    charges = session.execute(
        text(
            "SELECT payment_id, transaction_id, completed_units, completed_currency, "
            "completions, completed_ms "
            "FROM analytics_payment WHERE completed_ms >= :lo AND completed_ms < :hi"
        ),
        {"lo": lo, "hi": hi},
    )
    for payment_id, reference, units, currency, completions, at in charges:
        charge = Movement(
            "charge",
            reference,
            money.from_units(units),
            currency,
            f"payment {payment_id}",
            int(at),
        )
        movements += [charge] * max(1, int(completions))
    refunds = session.execute(
        text(
            "SELECT r.event_id, r.refund_id, p.transaction_id, r.units, r.currency, "
            "r.refunded_ms FROM analytics_refund r "
            "LEFT JOIN analytics_payment p ON p.payment_id = r.payment_id "
            "WHERE r.refunded_ms >= :lo AND r.refunded_ms < :hi"
        ),
        {"lo": lo, "hi": hi},
    )
    for event_id, refund_id, transaction_id, units, currency, at in refunds:
        reference = transaction_id if match_by == "payment_intent" and transaction_id else refund_id
        movements.append(
            Movement(
                "refund",
                reference,
                money.from_units(units),
                currency,
                f"event {event_id}",
                int(at),
            )
        )
    return movements
