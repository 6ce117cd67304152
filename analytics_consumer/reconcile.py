"""Daily reconciliation: the charges and refunds the events recorded versus the gateway's report.

Movements are matched by (type, id): a charge by the transactionId of its payment.completed
event, a refund by its refundId. Every difference is a discrepancy of one kind:

| kind                 | meaning                                                        |
|----------------------|----------------------------------------------------------------|
| `missing_in_gateway` | the events recorded it, the gateway report does not list it    |
| `missing_in_events`  | the gateway lists it, no event recorded it                     |
| `amount_mismatch`    | both have it, with different amounts (same currency)           |
| `currency_mismatch`  | both have it, in different currencies                          |
| `duplicate_in_gateway` | the gateway lists the same id more than once                 |
| `duplicate_in_events`  | two events recorded the same id (e.g. two completions)       |

`compare` is pure; `recorded_movements` reads the database (the day of a movement is the
UTC day of its completedAt / refundedAt).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from analytics_consumer import money
from analytics_consumer.days import day_range
from analytics_consumer.gateway_report import (
    GatewayReportError,
    Kind,
    Movement,
    read_gateway_report,
)

__all__ = [
    "Discrepancy",
    "GatewayReportError",
    "Reconciliation",
    "compare",
    "read_gateway_report",
    "recorded_movements",
]


@dataclass(frozen=True, slots=True)
class Discrepancy:
    kind: str
    type: Kind
    reference: str
    events: str | None
    """What the events recorded (`1250.00 EUR`), None when they did not."""
    gateway: str | None


@dataclass(frozen=True)
class Reconciliation:
    day: str | None
    recorded: int
    gateway_rows: int
    ignored_gateway_rows: int
    discrepancies: list[Discrepancy]

    def as_json(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "recorded_movements": self.recorded,
            "gateway_movements": self.gateway_rows,
            "ignored_gateway_rows": self.ignored_gateway_rows,
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
        lines = [
            f"Reconciliation of {self.day or 'all days'}: {self.recorded} recorded, "
            f"{self.gateway_rows} in the gateway report ({self.ignored_gateway_rows} rows ignored), "
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


def _shown(movement: Movement) -> str:
    return f"{money.text(movement.amount)} {movement.currency}"


def _by_key(movements: Iterable[Movement]) -> dict[tuple[Kind, str], list[Movement]]:
    found: dict[tuple[Kind, str], list[Movement]] = {}
    for movement in movements:
        found.setdefault((movement.kind, movement.reference), []).append(movement)
    return found


def compare(
    recorded: Sequence[Movement],
    gateway: Sequence[Movement],
    *,
    day: str | None = None,
    ignored: int = 0,
) -> Reconciliation:
    """Every discrepancy between the two sides, sorted by type and id."""
    ours, theirs = _by_key(recorded), _by_key(gateway)
    found: list[Discrepancy] = []
    for key in sorted(set(ours) | set(theirs)):
        kind, reference = key
        mine, other = ours.get(key, []), theirs.get(key, [])
        first_mine = _shown(mine[0]) if mine else None
        first_other = _shown(other[0]) if other else None
        if len(mine) > 1:
            found.append(
                Discrepancy("duplicate_in_events", kind, reference, first_mine, first_other)
            )
        if len(other) > 1:
            found.append(
                Discrepancy("duplicate_in_gateway", kind, reference, first_mine, first_other)
            )
        if not mine or not other:
            missing = "missing_in_events" if not mine else "missing_in_gateway"
            found.append(Discrepancy(missing, kind, reference, first_mine, first_other))
        elif mine[0].currency != other[0].currency:
            found.append(Discrepancy("currency_mismatch", kind, reference, first_mine, first_other))
        elif mine[0].amount != other[0].amount:
            found.append(Discrepancy("amount_mismatch", kind, reference, first_mine, first_other))
    return Reconciliation(day, len(recorded), len(gateway), ignored, found)


def recorded_movements(*, session: Session, day: str | None) -> list[Movement]:
    """The charges and refunds the events recorded, for one UTC day or all time."""
    lo, hi = day_range(day)
    movements: list[Movement] = []
    charges = session.execute(
        text(
            "SELECT payment_id, transaction_id, completed_units, completed_currency, completions "
            "FROM analytics_payment WHERE completed_ms >= :lo AND completed_ms < :hi"
        ),
        {"lo": lo, "hi": hi},
    )
    for payment_id, reference, units, currency, completions in charges:
        charge = Movement(
            "charge", reference, money.from_units(units), currency, f"payment {payment_id}"
        )
        movements += [charge] * max(1, int(completions))
    refunds = session.execute(
        text(
            "SELECT event_id, refund_id, units, currency FROM analytics_refund "
            "WHERE refunded_ms >= :lo AND refunded_ms < :hi"
        ),
        {"lo": lo, "hi": hi},
    )
    for event_id, reference, units, currency in refunds:
        movements.append(
            Movement("refund", reference, money.from_units(units), currency, f"event {event_id}")
        )
    return movements
