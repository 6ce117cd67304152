"""The verdicts: what the services ended with against what the simulator says they should.

The simulator computes its expectations from the bookings it drew, not from the records, so
agreement here means the services got the business right through duplicates, reordering and
poison. One rule is looser on purpose: a failure notice is stale only if the booking's later
completion is already known when it would be sent, and during a live stream it may not be
(docs/notification.md), so `payment_failed` emails may exceed the expectation, never fall short.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from dreamscape_dev.demo.figures import COPIES
from dreamscape_dev.simulator import Expectations


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def clean_exits(codes: Mapping[str, int]) -> Check:
    """Every service stopped on SIGTERM with exit code 0 (a clean, committed shutdown)."""
    ok = all(code == 0 for code in codes.values())
    return Check(
        "services exited 0 on SIGTERM", ok, ", ".join(f"{n} {c}" for n, c in codes.items())
    )


def status_counts(statuses: Mapping[str, str]) -> dict[str, int]:
    return dict(sorted(Counter(statuses.values()).items()))


def bookings(actual: Mapping[str, str], expected: Expectations) -> list[Check]:
    """Counts by status, then booking by booking."""
    want = status_counts(expected.bookings)
    got = status_counts(actual)
    wrong = sorted(b for b, s in expected.bookings.items() if actual.get(b) != s)
    extra = sorted(set(actual) - set(expected.bookings))
    return [
        _equal("bookings by status", got, want),
        Check(
            "each booking's status",
            not wrong and not extra,
            f"{len(expected.bookings) - len(wrong)} of {len(expected.bookings)} as expected"
            + (f"; wrong: {wrong[:3]}" if wrong else "")
            + (f"; unexpected: {extra[:3]}" if extra else ""),
        ),
    ]


def emails(
    sent: Mapping[str, int], ledger: Mapping[str, int], expected: Expectations
) -> list[Check]:
    """Receipts and refunds exactly; failure notices at least; the ledger matches the mail."""
    want = expected.emails_by_kind
    checks = [
        _equal(f"emails: {kind}", sent.get(kind, 0), want.get(kind, 0))
        for kind in ("receipt", "refund")
    ]
    failed, floor = sent.get("payment_failed", 0), want.get("payment_failed", 0)
    if failed < floor:
        detail = f"{failed} < {floor}"
    elif failed > floor:
        detail = (
            f"{failed} >= {floor} ({failed - floor} sent before the booking's payment completed)"
        )
    else:
        detail = f"{failed} >= {floor}"
    checks.append(Check("emails: payment_failed", failed >= floor, detail))
    checks.append(
        Check(
            "notification ledger = emails received",
            dict(ledger) == dict(sent),
            show(ledger) if dict(ledger) == dict(sent) else f"{show(ledger)} != {show(sent)}",
        )
    )
    return checks


def dead_letters(by_group: Mapping[str, Mapping[str, int]], expected: Expectations) -> list[Check]:
    """Each service dead-lettered exactly the poison records, by reason (letters written
    again for a redelivered record are shown, not counted as records)."""
    want = dict(sorted(expected.poison_by_reason.items()))
    found = []
    for group, counted in by_group.items():
        got = {reason: n for reason, n in counted.items() if reason != COPIES}
        again = f" ({counted[COPIES]} letter(s) written again)" if COPIES in counted else ""
        same = got == want
        detail = f"{sum(got.values())} records, by reason as published{again}"
        found.append(
            Check(f"DLQ {group}", same, detail if same else f"{show(got)} != {show(want)}")
        )
    return found


def analytics(report: Mapping[str, Any], expected: Expectations) -> list[Check]:
    """Distinct events by type, revenue and refunds, to the cent."""
    return [
        _equal(
            "analytics: events by type",
            dict(sorted((report.get("events") or {}).items())),
            dict(sorted(expected.events_by_type.items())),
        ),
        _equal("analytics: revenue", _money(report.get("revenue")), expected.revenue),
        _equal("analytics: refunded", _money(report.get("refunded_amount")), expected.refunded),
    ]


def _money(amounts: Mapping[str, str] | None) -> dict[str, Decimal]:
    return {currency: Decimal(text) for currency, text in sorted((amounts or {}).items())}


def _equal(name: str, got: object, want: object) -> Check:
    return Check(name, got == want, show(got) if got == want else f"{show(got)} != {show(want)}")


def show(value: object) -> str:
    """Counts and amounts as people write them: `confirmed 45, cancelled 5`, `EUR 12.50`."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)
