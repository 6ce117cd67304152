"""The payment simulator: deterministic, parseable, realistic, and true to its own expectations.

The expectations are recomputed here from the parsed records with the business rules written
out again, so a mistake in the simulator's bookkeeping cannot hide behind itself.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import InvalidEvent, RejectionReason
from common.events import (
    KNOWN_PAYMENT_METHODS,
    PaymentCompleted,
    PaymentEvent,
    PaymentFailed,
    PaymentInitiated,
    PaymentRefunded,
)
from common.parsing import parse_event
from common.records import OutboundRecord
from common.topics import Topics
from dreamscape_dev.simulator import Simulation, SimulationConfig, generate

CONFIG = SimulationConfig(flows=2000, seed=7, duplicate_rate=0.03, reorder_rate=0.05, poison=23)
DECIMALS = {"JPY": 0, "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2}
TIMESTAMP = re.compile(rb'"timestamp":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')

Parsed = list[tuple[OutboundRecord, PaymentEvent]]


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return generate(CONFIG)


@pytest.fixture(scope="module")
def parsed(simulation: Simulation) -> Parsed:
    return _parse(simulation, CONFIG.topics)[0]


def _parse(simulation: Simulation, topics: Topics) -> tuple[Parsed, Counter[str]]:
    """The records that parse on their topic, and the rejection reasons of the others."""
    valid: Parsed = []
    reasons: Counter[str] = Counter()
    for record in simulation.records:
        try:
            valid.append((record, parse_event(record.value, record.topic, topics=topics)))
        except InvalidEvent as exc:
            reasons[exc.reason] += 1
    return valid, reasons


def _distinct(parsed: Parsed) -> list[PaymentEvent]:
    seen: dict[str, PaymentEvent] = {}
    for _, event in parsed:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def _statuses(events: list[PaymentEvent]) -> dict[str, str]:
    """Booking → final status, by the voyage rules: paid, refunded (in part), failed, pending."""
    paid: dict[str, Decimal] = {}
    refunded: defaultdict[str, Decimal] = defaultdict(Decimal)
    failed: set[str] = set()
    for event in events:
        booking = event.payload.booking_id
        if isinstance(event, PaymentCompleted):
            paid[booking] = event.payload.amount
        elif isinstance(event, PaymentFailed):
            failed.add(booking)
        elif isinstance(event, PaymentRefunded):
            refunded[booking] += event.payload.refund_amount
    statuses = {event.payload.booking_id: "payment_pending" for event in events}
    statuses.update(dict.fromkeys(failed, "payment_failed"))
    for booking, amount in paid.items():
        if booking not in refunded:
            statuses[booking] = "confirmed"
        else:
            full = refunded[booking] >= amount
            statuses[booking] = "cancelled" if full else "partially_refunded"
    return statuses


def _emails(events: list[PaymentEvent]) -> Counter[str]:
    paid = {e.payload.booking_id for e in events if isinstance(e, PaymentCompleted)}
    emails: Counter[str] = Counter()
    for event in events:
        if isinstance(event, PaymentCompleted):
            emails["receipt"] += 1
        elif isinstance(event, PaymentRefunded):
            emails["refund"] += 1
        elif isinstance(event, PaymentFailed) and event.payload.booking_id not in paid:
            emails["payment_failed"] += 1
    return emails


def _money(events: list[PaymentEvent], kind: type[PaymentEvent]) -> dict[str, Decimal]:
    sums: defaultdict[str, Decimal] = defaultdict(Decimal)
    for event in events:
        if isinstance(event, PaymentCompleted) and kind is PaymentCompleted:
            sums[event.payload.currency] += event.payload.amount
        elif isinstance(event, PaymentRefunded) and kind is PaymentRefunded:
            sums[event.payload.currency] += event.payload.refund_amount
    return dict(sums)


def _out_of_order_bookings(parsed: Parsed) -> set[str]:
    """Bookings where an outcome precedes its initiation or a refund precedes the payment."""
    first: dict[tuple[str, str], int] = {}
    booking_of: dict[str, str] = {}
    for index, (_, event) in enumerate(parsed):
        first.setdefault((event.payload.payment_id, event.event_type), index)
        booking_of[event.payload.payment_id] = event.payload.booking_id
    late = set()
    for (payment, event_type), index in first.items():
        cause = "payment.completed" if event_type == "payment.refunded" else "payment.initiated"
        if event_type != "payment.initiated" and first.get((payment, cause), -1) > index:
            late.add(booking_of[payment])
    return late


def _assert_consistent(simulation: Simulation, topics: Topics) -> None:
    """Every expectation agrees with what the records say when read independently."""
    expected = simulation.expected
    parsed, reasons = _parse(simulation, topics)
    events = _distinct(parsed)
    assert reasons == Counter(expected.poison_by_reason)
    assert len(simulation.records) == expected.total_records
    assert len(parsed) == expected.valid_records
    assert len(parsed) - len(events) == expected.duplicates
    assert Counter(e.event_type for e in events) == Counter(expected.events_by_type)
    assert _statuses(events) == expected.bookings
    assert _emails(events) == Counter(expected.emails_by_kind)
    assert _money(events, PaymentCompleted) == expected.revenue
    assert _money(events, PaymentRefunded) == expected.refunded
    for record, event in parsed:
        assert record.key == event.payload.payment_id.encode()
        assert record.topic == topics.for_event(event.event_type)
        assert ("event-type", event.event_type.encode()) in record.headers


class TestDeterminism:
    def test_same_seed_gives_identical_bytes(self, simulation: Simulation) -> None:
        """Generating twice from one config yields the same records and expectations."""
        again = generate(CONFIG)
        assert again.records == simulation.records
        assert again.expected == simulation.expected

    def test_another_seed_gives_other_records(self, simulation: Simulation) -> None:
        """A different seed draws a different history."""
        other = generate(replace(CONFIG, seed=8))
        assert other.records[:10] != simulation.records[:10]


class TestRecords:
    def test_expectations_match_the_records(self, simulation: Simulation) -> None:
        """Statuses, counts, emails and money recomputed from the parsed records match."""
        _assert_consistent(simulation, CONFIG.topics)

    def test_every_rejection_reason_is_exercised(self) -> None:
        """Ten poison records cover each reason parse_event can give, tombstone included."""
        simulation = generate(SimulationConfig(flows=0, poison=10))
        reasons = set(simulation.expected.poison_by_reason)
        assert reasons == set(get_args(RejectionReason))
        assert Counter(simulation.expected.poison_by_reason) == _parse(simulation, Topics())[1]

    def test_amounts_have_the_currency_decimals(self, parsed: Parsed) -> None:
        """Amounts carry exactly the currency's minor-unit places (two, none for JPY)."""
        currencies = set()
        for _, event in parsed:
            if isinstance(event, PaymentRefunded):
                amount = event.payload.refund_amount
            else:
                amount = event.payload.amount
            assert amount.as_tuple().exponent == -DECIMALS[event.payload.currency]
            currencies.add(event.payload.currency)
        assert currencies == set(DECIMALS)

    def test_envelope_follows_the_spec(self, simulation: Simulation, parsed: Parsed) -> None:
        """Version, source, millisecond Z timestamps, and the flow's correlationId."""
        for record, event in parsed:
            assert record.value is not None
            assert TIMESTAMP.search(record.value)
            assert (event.version, event.source) == ("1.0", "payment-service")
            flow = "refund" if isinstance(event, PaymentRefunded) else "payment"
            assert event.correlation_id == f"booking-{event.payload.booking_id}-{flow}-flow"
            assert CONFIG.start <= event.timestamp

    def test_outcomes_are_caused_by_their_initiation(self, parsed: Parsed) -> None:
        """causationId of completed/failed is the initiated eventId; refunds have none."""
        initiated = {e.payload.payment_id: e for _, e in parsed if isinstance(e, PaymentInitiated)}
        for _, event in parsed:
            if isinstance(event, PaymentCompleted | PaymentFailed):
                assert event.causation_id == initiated[event.payload.payment_id].event_id
            elif isinstance(event, PaymentRefunded):
                assert event.causation_id is None

    def test_processing_takes_seconds_to_minutes(
        self, simulation: Simulation, parsed: Parsed
    ) -> None:
        """Outcomes come 2 s to 3 min after initiation, a few past the 2-minute alert."""
        events = _distinct(parsed)
        started = {
            e.payload.payment_id: e.timestamp for e in events if isinstance(e, PaymentInitiated)
        }
        delays = {
            e.event_id: e.timestamp - started[e.payload.payment_id]
            for e in events
            if isinstance(e, PaymentCompleted | PaymentFailed)
        }
        assert all(timedelta(seconds=2) <= d <= timedelta(minutes=3) for d in delays.values())
        slow = [
            e
            for e in events
            if isinstance(e, PaymentCompleted) and delays[e.event_id] > timedelta(minutes=2)
        ]
        assert len(slow) == simulation.expected.slow_payments > 0

    def test_flows_look_like_real_traffic(self, parsed: Parsed) -> None:
        """Users repeat, failed bookings are retried, and an unknown payment method appears."""
        events = [event for _, event in parsed]
        bookings_per_user: defaultdict[str, set[str]] = defaultdict(set)
        payments_per_booking: defaultdict[str, set[str]] = defaultdict(set)
        for event in events:
            bookings_per_user[event.payload.user_id].add(event.payload.booking_id)
            payments_per_booking[event.payload.booking_id].add(event.payload.payment_id)
        assert max(len(b) for b in bookings_per_user.values()) > 1
        assert max(len(p) for p in payments_per_booking.values()) > 1
        methods = {e.payload.payment_method for e in events if isinstance(e, PaymentInitiated)}
        assert methods > KNOWN_PAYMENT_METHODS
        assert re.fullmatch(r"pay_[0-9a-z]+", events[0].payload.payment_id)


class TestAwkwardPublishing:
    def test_reordering_puts_effects_before_causes(self) -> None:
        """With reorder_rate=1 every flow of two or more events is out of lifecycle order."""
        base = SimulationConfig(flows=300, seed=3)
        in_order = _parse(generate(base), base.topics)[0]
        assert _out_of_order_bookings(in_order) == set()
        reordered = generate(replace(base, reorder_rate=1.0))
        parsed = _parse(reordered, base.topics)[0]
        sizes = Counter(event.payload.booking_id for _, event in parsed)
        assert _out_of_order_bookings(parsed) == {b for b, n in sizes.items() if n > 1}

    def test_duplicates_are_identical_copies(self) -> None:
        """Each duplicate repeats an earlier record byte for byte, headers and key included."""
        simulation = generate(SimulationConfig(flows=300, seed=5, duplicate_rate=0.1))
        seen: dict[bytes | None, OutboundRecord] = {}
        copies = 0
        for record in simulation.records:
            if record.value in seen:
                assert seen[record.value] == record
                copies += 1
            seen[record.value] = record
        assert copies == simulation.expected.duplicates > 0

    def test_no_duplicates_unless_asked(self) -> None:
        """At duplicate_rate=0 every record value is unique."""
        simulation = generate(SimulationConfig(flows=300, seed=5))
        values = [record.value for record in simulation.records]
        assert len(set(values)) == len(values)
        assert simulation.expected.duplicates == 0


class TestConfig:
    @pytest.mark.parametrize(
        "bad",
        [
            {"failure_rate": 1.5},
            {"flows": -1},
            {"days": 0},
            {"start": datetime(2025, 12, 18)},  # naive on purpose
        ],
    )
    def test_rejects_impossible_settings(self, bad: dict[str, object]) -> None:
        """Rates outside 0..1, negative counts, no days and a naive start are refused."""
        with pytest.raises(ValueError, match="must"):
            SimulationConfig(**bad)  # type: ignore[arg-type]

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.integers(0, 2**64),
        flows=st.integers(0, 40),
        rates=st.lists(st.floats(0, 1), min_size=6, max_size=6),
        poison=st.integers(0, 12),
        prefix=st.sampled_from(["", "it-42."]),
    )
    def test_any_config_is_self_consistent(
        self, seed: int, flows: int, rates: list[float], poison: int, prefix: str
    ) -> None:
        """For any seed and rates the records agree with the expectations."""
        failure, retry, refund, partial, duplicate, reorder = rates
        config = SimulationConfig(
            flows=flows,
            seed=seed,
            failure_rate=failure,
            retry_rate=retry,
            refund_rate=refund,
            partial_refund_rate=partial,
            duplicate_rate=duplicate,
            reorder_rate=reorder,
            poison=poison,
            start=datetime(2026, 1, 1, tzinfo=UTC),
            topics=Topics(prefix),
        )
        _assert_consistent(generate(config), config.topics)
