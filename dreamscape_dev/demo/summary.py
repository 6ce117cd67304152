"""The end of a run as one value: printed as tables, saved as `summary.json`, shown on index.html.

`summary.json` is the machine-readable twin of what the demo prints, so tests (and anyone
scripting the demo) read figures rather than parse console text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from dreamscape_dev.demo.checks import Check, status_counts
from dreamscape_dev.simulator import Expectations


@dataclass(frozen=True)
class Summary:
    flows: int
    seed: int
    expected: Expectations
    bookings: Mapping[str, str]
    """booking_id → status, as voyage stored it."""
    emails_by_kind: Mapping[str, int]
    ledger_by_kind: Mapping[str, int]
    dlq_by_reason: Mapping[str, Mapping[str, int]]
    analytics: Mapping[str, Any]
    checks: list[Check]
    exit_codes: Mapping[str, int]
    caught_up_seconds: float

    @property
    def ok(self) -> bool:
        """Every check passed (clean exits are one of them)."""
        return all(c.ok for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        exp = self.expected
        return {
            "ok": self.ok,
            "flows": self.flows,
            "seed": self.seed,
            "records": {
                "published": exp.total_records,
                "valid": exp.valid_records,
                "duplicates": exp.duplicates,
                "poison": exp.total_records - exp.valid_records,
            },
            "bookings_by_status": status_counts(self.bookings),
            "emails_by_kind": dict(self.emails_by_kind),
            "ledger_by_kind": dict(self.ledger_by_kind),
            "dlq_by_reason": {g: dict(r) for g, r in self.dlq_by_reason.items()},
            "analytics": dict(self.analytics),
            "expected": {
                "bookings_by_status": status_counts(exp.bookings),
                "emails_by_kind": dict(sorted(exp.emails_by_kind.items())),
                "dlq_by_reason": dict(sorted(exp.poison_by_reason.items())),
                "events_by_type": dict(sorted(exp.events_by_type.items())),
                "revenue": {c: str(a) for c, a in exp.revenue.items()},
                "refunded": {c: str(a) for c, a in exp.refunded.items()},
            },
            "checks": [c.as_json() for c in self.checks],
            "exit_codes": dict(self.exit_codes),
            "caught_up_seconds": round(self.caught_up_seconds, 1),
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n", encoding="utf-8")

    def text(self) -> str:
        """The tables the demo prints at the end."""
        return "\n".join(
            [
                *self._bookings(),
                "",
                *self._emails(),
                "",
                *self._dlq(),
                "",
                *analytics_lines(self.analytics),
                "",
                *check_lines(self.checks),
            ]
        )

    def _bookings(self) -> list[str]:
        got, want = status_counts(self.bookings), status_counts(self.expected.bookings)
        rows = [
            (s, f"{got.get(s, 0):,}", f"{want.get(s, 0):,}") for s in sorted(set(got) | set(want))
        ]
        return table("Bookings by status (voyage database)", ("got", "expected"), rows)

    def _emails(self) -> list[str]:
        want = self.expected.emails_by_kind
        kinds = sorted(set(self.emails_by_kind) | set(want))
        rows = [
            (
                k,
                f"{self.emails_by_kind.get(k, 0):,}",
                f"{self.ledger_by_kind.get(k, 0):,}",
                (">= " if k == "payment_failed" else "") + f"{want.get(k, 0):,}",
            )
            for k in kinds
        ]
        return table("Emails by kind (received over SMTP)", ("got", "ledger", "expected"), rows)

    def _dlq(self) -> list[str]:
        groups = list(self.dlq_by_reason)
        want = self.expected.poison_by_reason
        reasons = sorted(set(want).union(*(set(r) for r in self.dlq_by_reason.values())))
        rows = [
            (r, *(f"{self.dlq_by_reason[g].get(r, 0):,}" for g in groups), f"{want.get(r, 0):,}")
            for r in reasons
        ]
        short = tuple(g.removesuffix("-service") for g in groups)
        return table("Dead-letter topics by reason", (*short, "expected"), rows)


def table(title: str, columns: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    """A title line, a header row, then one row per label with right-aligned figures."""
    label = max([22, *(len(r[0]) + 4 for r in rows)])
    widths = [max([len(c), *(len(r[i + 1]) for r in rows)]) + 2 for i, c in enumerate(columns)]
    head = " " * label + "".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))
    body = [
        f"  {r[0]}".ljust(label) + "".join(v.rjust(w) for v, w in zip(r[1:], widths, strict=True))
        for r in rows
    ]
    return [title, head, *body]


def money(amounts: Mapping[str, str] | None) -> str:
    """`{"EUR": "1250.00", "JPY": "48200"}` → `EUR 1,250.00 · JPY 48,200`."""
    return " · ".join(f"{c} {Decimal(a):,}" for c, a in sorted((amounts or {}).items())) or "-"


def _rate(value: object) -> str:
    return "-" if value is None else f"{value} %"


def analytics_lines(report: Mapping[str, Any]) -> list[str]:
    """The analytics headline figures and alerts."""
    alerts = report.get("alerts") or []
    lines = [
        "Analytics (analytics-consumer report)",
        f"  payments    {report.get('payments_initiated', 0):,} initiated, "
        f"{report.get('payments_completed', 0):,} completed, "
        f"{report.get('payments_failed', 0):,} failed, "
        f"{report.get('payments_refunded', 0):,} refunded",
        f"  rates       success {_rate(report.get('success_rate'))}, "
        f"failure {_rate(report.get('failure_rate'))}, refund {_rate(report.get('refund_rate'))}",
        f"  revenue     {money(report.get('revenue'))}",
        f"  refunded    {money(report.get('refunded_amount'))}",
        f"  alerts      {len(alerts) or 'none'}",
    ]
    lines += [f"    {a['name']}: {a['message']}" for a in alerts]
    return lines


def check_lines(checks: list[Check]) -> list[str]:
    """One verdict line per check."""
    width = max((len(c.name) for c in checks), default=0)
    return ["Checks against the simulator's expectations"] + [
        f"  {'ok  ' if c.ok else 'FAIL'}  {c.name.ljust(width)}  {c.detail}" for c in checks
    ]
