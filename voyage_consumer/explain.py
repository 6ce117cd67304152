"""Human-readable account of a derivation: which facts decided the booking's status, and why.

Pure text from a `Derivation` and its facts; `voyage-consumer status` prints it. Support
staff answer "why is this booking cancelled?" from this output rather than from SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from voyage_consumer.domain import Attempt, Derivation
from voyage_consumer.facts import Fact


def when(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as the events write it."""
    return moment.isoformat().replace("+00:00", "Z")


def fact_line(fact: Fact) -> str:
    """One fact on one line: time, kind, payment, amount, the kind's own detail, eventId."""
    detail = {
        "initiated": fact.payment_method,
        "completed": f"transaction {fact.transaction_id}",
        "failed": f"{fact.error_code}: {fact.error_message}",
        "refunded": f"{fact.refund_id}: {fact.reason}",
    }[fact.kind]
    return (
        f"{when(fact.occurred_at)}  {fact.kind:<9}  {fact.payment_id}  "
        f"{fact.amount} {fact.currency}  {detail}  (event {fact.event_id})"
    )


def _attempt_line(attempt: Attempt) -> str:
    seen = [
        name
        for name, fact in (
            ("initiated", attempt.initiated),
            ("completed", attempt.completed),
            ("failed", attempt.failed),
        )
        if fact is not None
    ]
    return f"{attempt.payment_id}: started {when(attempt.started_at)}, seen {', '.join(seen)}"


def _refunds(title: str, refunds: Iterable[Fact]) -> list[str]:
    listed = [f"{r.refund_id} {r.amount} {r.currency} at {when(r.occurred_at)}" for r in refunds]
    return [f"{title}: {'; '.join(listed)}"] if listed else []


def explain(derivation: Derivation) -> list[str]:
    """The steps of the derivation, one line each, in the order the rules apply."""
    d, booking = derivation, derivation.booking
    lines = ["attempts, by start:", *(f"  {_attempt_line(a)}" for a in d.attempts)]
    if d.winner is None:
        latest = d.attempts[-1]
        outcome = "failed" if latest.failed else "has no outcome yet"
        lines.append(f"no payment completed; the latest attempt {latest.payment_id} {outcome}")
    else:
        w = d.winner
        others = [a.payment_id for a in d.attempts if a.completed and a.completed is not w]
        lines.append(
            f"{w.payment_id} completed at {when(w.occurred_at)} for {w.amount} {w.currency}"
            + (f" (earliest of completed {', '.join([w.payment_id, *others])})" if others else "")
            + f" → pays for the booking, confirmation {booking.confirmation_number}"
        )
        if any(a.completed is w and a.failed for a in d.attempts):
            lines.append(f"a failure of {w.payment_id} is ignored: a completion is never undone")
        lines += _refunds("refunds applied, by refundedAt", d.applied_refunds)
        lines += _refunds("refunds rejected (see anomalies)", d.rejected_refunds)
        lines += _refunds("refunds of a double-charged payment", d.other_refunds)
        lines.append(f"refunded {booking.refunded_amount} of {booking.amount} {booking.currency}")
    lines += _refunds("refunds waiting for their payment's completion", d.pending_refunds)
    lines.append(f"→ status {booking.status}, inventory {d.hold}")
    return lines
