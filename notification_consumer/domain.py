"""What to do about each event of a batch: send an email, or why not. Pure: no I/O.

The spec's notification-service reactions: `payment.completed` → receipt, `payment.failed` →
failure notice with a retry link (one per failed attempt: each is its own business fact,
`common.business`), `payment.refunded` → refund confirmation; `initiated` sends nothing
(its facts are kept to enrich later emails).

A batch is planned against a `Knowledge` snapshot read from the database *after* the
batch's own facts were recorded, so a failure and the booking's later completion arriving
in the same batch (a consumer catching up) already count: the failure notice is stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from email.errors import MessageError
from email.headerregistry import Address
from typing import Final, Literal, get_args

from common.events import PaymentEvent
from common.records import Inbound

Kind = Literal["receipt", "payment_failed", "refund"]
SkipReason = Literal["duplicate", "stale", "undeliverable"]
Status = Literal["sent", "failed", "undeliverable", "deferred"]
"""`deferred` is not final: a replay of the record sends it (once, with the same Message-ID)."""
"""Final outcomes, recorded in `sent_notification`; a skip for staleness or a duplicate is not."""

KIND_BY_EVENT_TYPE: Final[Mapping[str, Kind]] = {
    "payment.completed": "receipt",
    "payment.failed": "payment_failed",
    "payment.refunded": "refund",
}
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str
    display_name: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentSummary:
    """What earlier events said about a payment (None where nothing was said yet)."""

    payment_method: str | None = None
    initiated_at: datetime | None = None
    amount: Decimal | None = None
    currency: str | None = None
    transaction_id: str | None = None


@dataclass(frozen=True, slots=True)
class Knowledge:
    """The database's answers for one batch."""

    notified: frozenset[tuple[str, str]] = frozenset()
    """(eventId, kind) with a final outcome already recorded."""
    paid_bookings: frozenset[str] = frozenset()
    payments: Mapping[str, PaymentSummary] = field(default_factory=dict)
    contacts: Mapping[str, Recipient] = field(default_factory=dict)
    restated: Mapping[str, str] = field(default_factory=dict)
    """eventId → the earlier eventId that stated the same business fact (`common.business`):
    a redelivered webhook under a fresh eventId, or an anomaly; neither is notified again."""


@dataclass(frozen=True, slots=True)
class Send:
    inbound: Inbound
    kind: Kind
    recipient: Recipient
    payment: PaymentSummary | None


@dataclass(frozen=True, slots=True)
class Skip:
    inbound: Inbound
    kind: Kind
    reason: SkipReason
    detail: str


Decision = Send | Skip


@dataclass(frozen=True, slots=True)
class Outcome:
    """A final outcome to write to the `sent_notification` ledger."""

    event_id: str
    kind: Kind
    status: Status
    message_id: str
    booking_id: str
    payment_id: str
    smtp_code: int | None = None
    detail: str | None = None
    event_json: str | None = None
    """For `undeliverable`: the event as received, kept so `resend` can send it later."""


def kind_of(event: PaymentEvent) -> Kind | None:
    return KIND_BY_EVENT_TYPE.get(event.event_type)


def plan(
    batch: Iterable[Inbound], knowledge: Knowledge, address_template: str | None
) -> list[Decision]:
    """One decision per notifying event of `batch`, in batch order."""
    decisions: list[Decision] = []
    seen: set[tuple[str, str]] = set()
    for inbound in batch:
        event = inbound.event
        kind = kind_of(event)
        if kind is None:
            continue
        key = (event.event_id, kind)
        if key in knowledge.notified or key in seen:
            decisions.append(Skip(inbound, kind, "duplicate", "already notified"))
            continue
        if (first := knowledge.restated.get(event.event_id)) is not None:
            decisions.append(Skip(inbound, kind, "duplicate", f"same business fact as {first}"))
            continue
        seen.add(key)
        decisions.append(_decide(inbound, kind, knowledge, address_template))
    return decisions


def _decide(
    inbound: Inbound, kind: Kind, knowledge: Knowledge, address_template: str | None
) -> Decision:
    payload = inbound.event.payload
    if kind == "payment_failed" and payload.booking_id in knowledge.paid_bookings:
        return Skip(inbound, kind, "stale", "the booking already has a completed payment")
    recipient = knowledge.contacts.get(payload.user_id)
    if recipient is None and address_template is not None:
        recipient = Recipient(address_template.format(user_id=payload.user_id))
    if recipient is None:
        return Skip(inbound, kind, "undeliverable", "no user_contact row and no address template")
    if not valid_address(recipient.address):
        return Skip(inbound, kind, "undeliverable", "the recipient address is not valid")
    return Send(inbound, kind, recipient, knowledge.payments.get(payload.payment_id))


def valid_address(address: str) -> bool:
    """Whether `address` is a plain ASCII addr-spec that an email header can carry."""
    try:
        parsed = Address(addr_spec=address)
    except (ValueError, IndexError, TypeError, AttributeError, MessageError):
        # The email package signals a malformed addr-spec in all of these ways
        # (HeaderParseError is a MessageError, not a ValueError).
        return False
    return bool(parsed.username and parsed.domain) and "\n" not in address
