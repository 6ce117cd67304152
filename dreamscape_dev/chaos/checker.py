"""The verdict of one scenario: every effect against what was published, nothing taken on trust.

The expectations come from the simulation, not from the services: the simulator draws the
bookings first and derives from them each booking's final status and refunds, the emails a
customer must get, the analytics figures, and which records are poison with which reason
(`dreamscape_dev.simulator.Expectations`). For the recipient the `smtp` scenario defers all
run long, the checker reads the published records itself (plain `json`, not the services'
parser) to know which of that customer's emails must end in the DLQ instead.

What is observed is read from the outside: the voyage `booking` table by SQL, the messages
the SMTP server accepted (kind header and Message-ID), the notification ledger, each group's
DLQ topic, and `analytics-consumer report --json`.

Counting, per service:

* **lost**: a booking whose status or refunded amount falls short; an expected email never
  received; an analytics count or sum below the expectation.
* **doubled**: a booking refunded more than it was; a second *distinct* Message-ID for one
  email (receipts and refunds are exact; failure notices have a documented allowance, see
  docs/notification.md); an analytics figure above the expectation.
* **resent copies**: the same Message-ID received again. That is the documented window of
  at-least-once email (the server accepted, the process died before the ledger row): counted
  and reported, not a failure.

The ledger must equal the emails received, with one allowance from the same window: a
failure notice whose instance was killed before recording it may be found stale when
redelivered and skipped, so it stays unrecorded; at most `EMAILS_UNRECORDED_PER_KILL` per
notification kill.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Final

from common.records import OutboundRecord
from dreamscape_dev.demo.figures import COPIES
from dreamscape_dev.simulator import Expectations

EXACT_KINDS = ("receipt", "refund")

EMAILS_UNRECORDED_PER_KILL: Final = 54
"""At most this many emails a notification instance can have had accepted but not yet recorded
when it is SIGKILLed: `RECORD_EVERY` (50) + `SMTP_CONNECTIONS` (4), the defaults the harness
runs with (docs/notification.md, "Exactly once")."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Mail:
    kind: str
    message_id: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Observed:
    bookings: dict[str, tuple[str, Decimal]]
    """booking → (status, refunded amount), from voyage's `booking` table."""
    mails: list[Mail]
    ledger: dict[str, int]
    dlq: dict[str, dict[str, int]]
    """service → error type → records (first letters only; `COPIES` counts the others)."""
    analytics: Mapping[str, Any]
    exit_codes: dict[str, int]
    deaths: list[str]
    kills: Mapping[str, int] = field(default_factory=dict)
    """service → SIGKILLs the faults dealt it."""


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)
    doubled: dict[str, int] = field(default_factory=dict)
    resent_copies: int = 0
    expected_effects: int = 0
    dlq_expected: dict[str, int] = field(default_factory=dict)
    dlq_found: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass(frozen=True, slots=True)
class Deferred:
    """What the published records owe the one recipient the SMTP server defers."""

    address: str
    exact: int
    """Receipts and refunds: each ends in the notification DLQ as `smtp_deferred`."""
    failures: int
    """Failure notices for the recipient (one per failed attempt: paymentId, errorCode and
    errorMessage, as `common.business` keys them): at most this many more letters."""
    repeats: int = 0
    """Records repeating the eventId of one of the recipient's notifying records (the
    simulator's duplicates): a notification still deferred is tried again on the copy, so
    each may add one more letter (a record is counted once, however often it is re-read)."""


def deferred_for(records: Sequence[OutboundRecord], user_id: str, domain: str) -> Deferred:
    """Count, from the records, the emails `user_id` is owed (distinct payments, failed
    attempts and refunds)."""
    completed: set[str] = set()
    refunds: set[str] = set()
    failed: set[tuple[str, str, str]] = set()
    copies: Counter[str] = Counter()
    for record in records:
        document = _document(record)
        if document is None:
            continue
        payload = document.get("payload")
        if not isinstance(payload, dict) or payload.get("userId") != user_id:
            continue
        kind = document.get("eventType")
        if kind == "payment.completed":
            completed.add(str(payload.get("paymentId")))
        elif kind == "payment.refunded":
            refunds.add(str(payload.get("refundId")))
        elif kind == "payment.failed":
            code, message = str(payload.get("errorCode")), str(payload.get("errorMessage"))
            failed.add((str(payload.get("paymentId")), code, message))
        else:
            continue
        copies[str(document.get("eventId"))] += 1
    repeats = sum(n - 1 for n in copies.values())
    return Deferred(f"{user_id}@{domain}", len(completed) + len(refunds), len(failed), repeats)


PLAIN_ID: Final = re.compile(r"[A-Za-z0-9_-]+")
"""What a customer's id looks like in the simulation; a poison record's broken one does not."""


def busiest_user(records: Sequence[OutboundRecord]) -> str:
    """The customer with the most completed payments: the recipient whose deferral costs most.

    Only plain ids count: the poison kind with a NUL in its userId gives every such record
    the same broken id, which would otherwise look like the busiest customer of all.
    """
    counts: Counter[str] = Counter()
    for record in records:
        document = _document(record)
        if document and document.get("eventType") == "payment.completed":
            payload = document.get("payload")
            user = payload.get("userId") if isinstance(payload, dict) else None
            if isinstance(user, str) and PLAIN_ID.fullmatch(user):
                counts[user] += 1
    return counts.most_common(1)[0][0]


def judge(expected: Expectations, observed: Observed, deferred: Deferred | None = None) -> Verdict:
    verdict = Verdict()
    _bookings(verdict, expected, observed)
    _emails(verdict, expected, observed, deferred)
    _analytics(verdict, expected, observed)
    _dead_letters(verdict, expected, observed, deferred)
    verdict.checks.append(
        Check(
            "no service died",
            not observed.deaths,
            "; ".join(observed.deaths) or "every exit was a kill or a stop",
        )
    )
    bad = {name: code for name, code in observed.exit_codes.items() if code != 0}
    verdict.checks.append(
        Check(
            "every instance exited 0 on SIGTERM",
            not bad,
            f"{len(observed.exit_codes)} instances" if not bad else json.dumps(bad),
        )
    )
    return verdict


def _bookings(verdict: Verdict, expected: Expectations, observed: Observed) -> None:
    lost = doubled = 0
    wrong: list[str] = []
    for booking, status in expected.bookings.items():
        got_status, refunded = observed.bookings.get(booking, ("missing", Decimal(0)))
        want_refunded = expected.refunded_by_booking.get(booking, Decimal(0))
        if refunded > want_refunded:
            doubled += 1
            wrong.append(f"{booking} refunded {refunded} > {want_refunded}")
        elif got_status != status or refunded < want_refunded:
            lost += 1
            wrong.append(f"{booking} {got_status} (want {status}), refunded {refunded}")
    extra = sorted(set(observed.bookings) - set(expected.bookings))
    verdict.lost["voyage"], verdict.doubled["voyage"] = lost, doubled + len(extra)
    verdict.expected_effects += len(expected.bookings)
    verdict.checks.append(
        Check(
            "voyage: every booking's status and refunded amount",
            not wrong and not extra,
            f"{len(expected.bookings) - len(wrong)} of {len(expected.bookings)} exact"
            + (f"; e.g. {wrong[:2]}" if wrong else "")
            + (f"; unexpected bookings {extra[:2]}" if extra else ""),
        )
    )


def _emails(
    verdict: Verdict, expected: Expectations, observed: Observed, deferred: Deferred | None
) -> None:
    distinct: dict[str, set[str]] = {}
    received: Counter[str] = Counter()
    for mail in observed.mails:
        distinct.setdefault(mail.kind, set()).add(mail.message_id)
        received[mail.kind] += 1
    verdict.resent_copies = sum(received.values()) - sum(len(ids) for ids in distinct.values())
    want = dict(expected.emails_by_kind)
    owed_to_deferred = deferred.exact if deferred else 0
    lost = doubled = 0
    problems = []
    exact_got = sum(len(distinct.get(kind, ())) for kind in EXACT_KINDS)
    exact_want = sum(want.get(kind, 0) for kind in EXACT_KINDS) - owed_to_deferred
    if exact_got < exact_want:
        lost += exact_want - exact_got
        problems.append(f"receipts+refunds {exact_got} < {exact_want}")
    elif exact_got > exact_want:
        doubled += exact_got - exact_want
        problems.append(f"receipts+refunds {exact_got} > {exact_want}")
    failed_got = len(distinct.get("payment_failed", ()))
    failed_floor = want.get("payment_failed", 0) - (deferred.failures if deferred else 0)
    if failed_got < failed_floor:
        lost += failed_floor - failed_got
        problems.append(f"failure notices {failed_got} < {failed_floor}")
    verdict.lost["notification"], verdict.doubled["notification"] = lost, doubled
    verdict.expected_effects += exact_want + max(0, failed_floor)
    copies = f"; {verdict.resent_copies} resent copies (same Message-ID)"
    verdict.checks.append(
        Check(
            "notification: one email per expected fact",
            not problems,
            (
                "; ".join(problems)
                or f"{exact_got} receipts+refunds exact, {failed_got} failure notices (>= {failed_floor})"
            )
            + copies,
        )
    )
    sent = {kind: len(ids) for kind, ids in sorted(distinct.items())}
    # A failure notice the server took just before its instance was SIGKILLed, and before the
    # ledger row, is skipped when redelivered if the payment has completed since (stale):
    # received, never recorded. Receipts and refunds are sent again and recorded instead.
    ledger = observed.ledger
    unrecorded = sent.get("payment_failed", 0) - ledger.get("payment_failed", 0)
    window = observed.kills.get("notification", 0) * EMAILS_UNRECORDED_PER_KILL
    matches = {**sent, "payment_failed": 0} == {**ledger, "payment_failed": 0}
    gap = f"; {unrecorded} failure notice(s) sent before a kill, unrecorded (<= {window})"
    verdict.checks.append(
        Check(
            "notification: ledger = emails received",
            matches and 0 <= unrecorded <= window,
            f"ledger {observed.ledger}, received {sent}" + (gap if unrecorded else ""),
        )
    )


def _analytics(verdict: Verdict, expected: Expectations, observed: Observed) -> None:
    report = observed.analytics
    got_events = dict(report.get("events") or {})
    lost = doubled = 0
    for kind, want in expected.events_by_type.items():
        got = int(got_events.get(kind, 0))
        lost += max(0, want - got)
        doubled += max(0, got - want)
    revenue = {c: Decimal(v) for c, v in (report.get("revenue") or {}).items()}
    refunded = {c: Decimal(v) for c, v in (report.get("refunded_amount") or {}).items()}
    money_ok = revenue == expected.revenue and refunded == expected.refunded
    verdict.lost["analytics"], verdict.doubled["analytics"] = lost, doubled
    verdict.expected_effects += sum(expected.events_by_type.values())
    verdict.checks.append(
        Check(
            "analytics: events by type exact",
            lost == doubled == 0,
            f"{got_events} (want {expected.events_by_type})",
        )
    )
    verdict.checks.append(
        Check(
            "analytics: revenue and refunds per currency exact",
            money_ok,
            "to the cent" if money_ok else f"revenue {revenue} refunded {refunded}",
        )
    )


def _dead_letters(
    verdict: Verdict, expected: Expectations, observed: Observed, deferred: Deferred | None
) -> None:
    want = dict(sorted(expected.poison_by_reason.items()))
    for service, counted in observed.dlq.items():
        got = {reason: n for reason, n in counted.items() if reason != COPIES}
        again = counted.get(COPIES, 0)
        verdict.dlq_expected[service] = sum(want.values())
        verdict.dlq_found[service] = sum(got.values())
        if service == "notification" and deferred is not None:
            smtp = got.pop("smtp_deferred", 0)
            most = deferred.exact + deferred.failures + deferred.repeats
            poison_ok = got == want
            ok = poison_ok and deferred.exact <= smtp <= most
            verdict.dlq_expected[service] += deferred.exact
            poison = "poison by reason as published" if poison_ok else f"{got} != {want}"
            detail = f"{poison}; smtp_deferred {smtp} in [{deferred.exact}, {most}]"
        else:
            ok = got == want
            detail = "every poison record once, with its reason" if ok else f"{got} != {want}"
        verdict.checks.append(
            Check(
                f"DLQ {service}",
                ok,
                detail + (f" ({again} letters written again)" if again else ""),
            )
        )


def _document(record: OutboundRecord) -> dict[str, Any] | None:
    if record.value is None:
        return None
    try:
        document = json.loads(record.value)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
