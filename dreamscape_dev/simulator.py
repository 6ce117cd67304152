"""A seedable generator of realistic payment flows, and what consumers should make of them.

Consumers are tested end to end by publishing a simulated history and comparing their final
state with `Simulation.expected`. For that comparison to mean something the expectations are
computed from the drawn bookings, not from the records, and the records are made awkward on
purpose: retries with new paymentIds, partial refunds, slow gateways, unknown payment
methods, a yen amount without decimals, and on request duplicates, out-of-order flows and
poison. Generation is pure (no Kafka, no clock, no global random state): the same config
gives byte-identical records, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Final

from common import topics as names
from common.records import OutboundRecord
from common.topics import DEFAULT_TOPICS, Topics
from dreamscape_dev.simulation_data import IdFactory, to_decimal, to_ms
from dreamscape_dev.simulation_flows import Booking, BookingStatus, FlowRates, draw_bookings
from dreamscape_dev.simulation_poison import make_poison, poison_kind
from dreamscape_dev.simulation_wire import render_booking

__all__ = ["BookingStatus", "Expectations", "Simulation", "SimulationConfig", "generate"]

SLOW_PAYMENT_MS: Final = 120_000
"""The spec's alert threshold for payment processing delays (2 minutes)."""

_DUPLICATE_MAX_DISTANCE: Final = 40
"""A duplicate is re-published at most this many records after its original."""


@dataclass(frozen=True)
class SimulationConfig:
    """How many payment flows to draw, how they go, and how awkwardly they are published."""

    flows: int = 1000
    seed: int = 0
    failure_rate: float = 0.15
    retry_rate: float = 0.6
    refund_rate: float = 0.12
    partial_refund_rate: float = 0.4
    duplicate_rate: float = 0.0
    republish_rate: float = 0.0
    """Share of records published again under a new eventId, as an outbox relay that lost its
    bookkeeping does: the same business fact, which consumers must collapse by business key."""
    reorder_rate: float = 0.0
    poison: int = 0
    start: datetime = datetime(2025, 12, 18, 8, 0, tzinfo=UTC)
    days: int = 3
    topics: Topics = DEFAULT_TOPICS
    abandon_rate: float = 0.02
    """Share of bookings whose only attempt never gets an outcome (left `payment_pending`)."""
    max_attempts: int = 3
    """Attempts (paymentIds) per booking at most, the first one included."""

    def __post_init__(self) -> None:
        rates = (
            *(self.failure_rate, self.retry_rate, self.refund_rate, self.partial_refund_rate),
            *(self.duplicate_rate, self.republish_rate, self.reorder_rate, self.abandon_rate),
        )
        if not all(0.0 <= rate <= 1.0 for rate in rates):
            raise ValueError("rates must be within 0..1")
        if min(self.flows, self.poison) < 0 or min(self.days, self.max_attempts) < 1:
            raise ValueError("flows and poison must be >= 0, days and max_attempts >= 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")


@dataclass(frozen=True)
class Expectations:
    """What consumers should end with after reading every record once or more."""

    bookings: dict[str, BookingStatus]
    events_by_type: dict[str, int]
    """Distinct valid events (by eventId) per event type."""
    emails_by_kind: dict[str, int]
    """`receipt` per completed payment, `refund` per refund, `payment_failed` per failed
    attempt of a booking that is not paid in the end (otherwise that email is stale)."""
    poison_by_reason: dict[str, int]
    """`common.errors.RejectionReason` → poison records that parse_event rejects so."""
    duplicates: int
    """Extra copies published (each identical to an earlier record)."""
    republished: int
    """Copies published under a new eventId (same payload, same business fact)."""
    valid_records: int
    """Records that parse, duplicates included (= total_records - poison)."""
    total_records: int
    revenue: dict[str, Decimal]
    """Currency → sum of completed payments (before refunds)."""
    refunded: dict[str, Decimal]
    """Currency → sum of refunds."""
    slow_payments: int
    """Completed payments that took more than 2 minutes after initiation."""
    refunded_by_booking: dict[str, Decimal]
    """Booking → the sum of its refunds (bookings without refunds left out)."""


@dataclass(frozen=True)
class Simulation:
    records: list[OutboundRecord]
    """In publish order."""
    expected: Expectations


def generate(config: SimulationConfig) -> Simulation:
    """Draw `config.flows` bookings and the records that tell their story, in publish order."""
    rng = random.Random(config.seed)
    ids = IdFactory(rng)
    window = (to_ms(config.start), config.days)
    bookings = draw_bookings(rng, ids, _rates(config), config.flows, *window)
    ordered = _publish_order(rng, bookings, config)
    placed = [(float(index), record) for index, record in enumerate(ordered)]
    duplicates = _duplicates(rng, ordered, config.duplicate_rate)
    republished = _republished(rng, ids, ordered, config.republish_rate)
    kinds = [poison_kind(number) for number in range(config.poison)]
    poison = [
        (rng.uniform(0, len(ordered)), make_poison(kind, rng, ids, config.topics, window))
        for kind in kinds
    ]
    placed.extend(duplicates + republished + poison)
    placed.sort(key=itemgetter(0))  # stable, so equal keys keep their order
    records = [record for _, record in placed]
    reasons = Counter[str](kind.reason for kind in kinds)
    copies = (len(duplicates), len(republished))
    return Simulation(records, _expectations(bookings, reasons, copies, len(records)))


def _rates(config: SimulationConfig) -> FlowRates:
    return FlowRates(
        failure=config.failure_rate,
        retry=config.retry_rate,
        refund=config.refund_rate,
        partial_refund=config.partial_refund_rate,
        abandon=config.abandon_rate,
        max_attempts=config.max_attempts,
    )


def _publish_order(
    rng: random.Random, bookings: list[Booking], config: SimulationConfig
) -> list[OutboundRecord]:
    """All records by event time; in a reordered flow one later event swaps with its cause."""
    timed: list[tuple[int, int, int, OutboundRecord]] = []
    swaps: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for number, booking in enumerate(bookings):
        rendered = render_booking(booking, config.topics)
        timed.extend((ms, number, local, rec) for local, (ms, rec) in enumerate(rendered.records))
        if rendered.pairs and config.reorder_rate and rng.random() < config.reorder_rate:
            earlier, later = rng.choice(rendered.pairs)
            swaps.append(((number, earlier), (number, later)))
    timed.sort(key=itemgetter(0))  # stable: ties stay in (booking, lifecycle) order
    position = {(number, local): index for index, (_, number, local, _) in enumerate(timed)}
    records = [record for *_, record in timed]
    for cause, effect in swaps:
        first, second = position[cause], position[effect]
        records[first], records[second] = records[second], records[first]
    return records


def _duplicates(
    rng: random.Random, records: list[OutboundRecord], rate: float
) -> list[tuple[float, OutboundRecord]]:
    """Copies of a `rate` share of the records, each placed a little after its original."""
    if not rate:
        return []
    return [
        (index + rng.randint(1, _DUPLICATE_MAX_DISTANCE) - 0.5, record)
        for index, record in enumerate(records)
        if rng.random() < rate
    ]


def _republished(
    rng: random.Random, ids: IdFactory, records: list[OutboundRecord], rate: float
) -> list[tuple[float, OutboundRecord]]:
    """Copies of a `rate` share of the records under a fresh eventId, placed a little later.

    The eventId is the envelope's first field, so replacing its first occurrence changes
    nothing else (a `causationId` naming the same id comes after it).
    """
    if not rate:
        return []
    copies = []
    for index, record in enumerate(records):
        if record.value is None or rng.random() >= rate:
            continue
        start = record.value.index(b'"eventId":"') + len(b'"eventId":"')
        old = record.value[start : record.value.index(b'"', start)]
        value = record.value.replace(old, ids.event().encode(), 1)
        placed = index + rng.randint(1, _DUPLICATE_MAX_DISTANCE) - 0.25
        copies.append((placed, OutboundRecord(record.topic, record.key, value, record.headers)))
    return copies


def _expectations(
    bookings: list[Booking], poison: Counter[str], copies: tuple[int, int], total: int
) -> Expectations:
    events: Counter[str] = Counter()
    emails: Counter[str] = Counter()
    revenue: Counter[str] = Counter()
    refunded: Counter[str] = Counter()
    slow = 0
    for booking in bookings:
        _count_events(booking, events)
        _count_emails(booking, emails)
        if (paid := booking.paid) is not None:
            revenue[booking.currency] += booking.amount_minor
            slow += paid.outcome_ms - paid.initiated_ms > SLOW_PAYMENT_MS
        for refund in booking.refunds:
            refunded[booking.currency] += refund.amount_minor
    return Expectations(
        bookings={booking.booking_id: booking.status for booking in bookings},
        events_by_type=dict(events),
        emails_by_kind=dict(emails),
        poison_by_reason=dict(poison),
        duplicates=copies[0],
        republished=copies[1],
        valid_records=total - poison.total(),
        total_records=total,
        revenue=_money(revenue),
        refunded=_money(refunded),
        slow_payments=slow,
        refunded_by_booking={
            booking.booking_id: to_decimal(
                sum(r.amount_minor for r in booking.refunds), booking.currency
            )
            for booking in bookings
            if booking.refunds
        },
    )


def _count_events(booking: Booking, events: Counter[str]) -> None:
    for attempt in booking.attempts:
        events[names.PAYMENT_INITIATED] += 1
        if attempt.outcome == "completed":
            events[names.PAYMENT_COMPLETED] += 1
        elif attempt.outcome == "failed":
            events[names.PAYMENT_FAILED] += 1
    if booking.refunds:
        events[names.PAYMENT_REFUNDED] += len(booking.refunds)


def _count_emails(booking: Booking, emails: Counter[str]) -> None:
    if booking.paid is not None:
        emails["receipt"] += 1
    else:
        failures = sum(attempt.outcome == "failed" for attempt in booking.attempts)
        if failures:
            emails["payment_failed"] += failures
    if booking.refunds:
        emails["refund"] += len(booking.refunds)


def _money(minor_by_currency: Counter[str]) -> dict[str, Decimal]:
    return {
        currency: to_decimal(minor, currency)
        for currency, minor in sorted(minor_by_currency.items())
    }
