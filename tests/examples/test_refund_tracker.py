"""The refund tracker of docs/writing-a-consumer.md works: its core, its handler, then on Kafka.

This is the example's test as the guide shows it: the pure core with plain events, the
handler with plain values and an SQLite file, then the whole consumer (its own
`ConsumerSpec`) run by the real run loop on a thread, against the session's broker, with the
project's fixtures (`topics`, `kafka_config`, `sqlite_url`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlmodel import Session, select

from common import db
from common.events import PaymentRefunded
from common.kafka import KafkaConsumer, KafkaProducer
from common.lifecycle import Bus, LifecycleEvent, RecordDeadLettered
from common.records import Inbound, OutboundRecord
from common.runner import Runner
from common.topics import PAYMENT_COMPLETED, PAYMENT_REFUNDED, Topics
from dreamscape_dev.testing.builders import Document, encode, event, inbound
from dreamscape_dev.testing.running import running, wait_until
from examples.refund_tracker.domain import refunded
from examples.refund_tracker.handler import apply
from examples.refund_tracker.service import build
from examples.refund_tracker.settings import RefundTrackerSettings
from examples.refund_tracker.tables import TABLES, RefundTotal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "refund_tracker"
Handle = Callable[[Sequence[Inbound]], None]


# -- events and totals ------------------------------------------------------------


def refund(currency: str, amount: str) -> Document:
    """A payment.refunded event of `amount` in `currency` (the spec's example otherwise)."""
    return event(PAYMENT_REFUNDED, currency=currency, refundAmount=Decimal(amount))


def completed(currency: str, amount: str) -> Document:
    """A payment.completed event of `amount` in `currency`."""
    return event(PAYMENT_COMPLETED, currency=currency, amount=Decimal(amount))


def totals(database_url: str) -> dict[str, Decimal]:
    """The refund_total table as {currency: total}."""
    engine = db.make_engine(database_url)
    try:
        with Session(engine) as session:
            return {row.currency: Decimal(row.total) for row in session.exec(select(RefundTotal))}
    finally:
        engine.dispose()


# -- the pure core ------------------------------------------------------------------------


def test_the_core_adds_refunds_per_currency_and_ignores_nothing_else() -> None:
    """`refunded` sums exactly per currency (10.10 + 0.20 is 10.30, not 10.299999...)."""
    refunds = [refund("EUR", "10.10"), refund("EUR", "0.20"), refund("USD", "5")]
    events = [inbound(r).event for r in refunds]
    assert refunded(e for e in events if isinstance(e, PaymentRefunded)) == {
        "EUR": Decimal("10.30"),
        "USD": Decimal("5"),
    }
    assert refunded([]) == {}


# -- the handler alone --------------------------------------------------------------------


class TestHandler:
    """`apply` on plain batches and an SQLite file: no broker involved."""

    @pytest.fixture
    def engine(self, sqlite_url: str) -> Iterator[Engine]:
        engine = db.make_engine(sqlite_url)
        db.create_schema(engine, TABLES)
        yield engine
        engine.dispose()

    @pytest.fixture
    def handle(self, engine: Engine) -> Handle:
        """The handler as `build` makes it."""
        return lambda batch: apply(engine, batch, consumer="refund-tracker")

    def test_adds_refunds_per_currency_exactly(self, handle: Handle, sqlite_url: str) -> None:
        """Refunds add up per currency in decimal, batch after batch."""
        handle([inbound(refund("EUR", "10.10")), inbound(refund("EUR", "0.20"))])
        handle([inbound(refund("USD", "5"))])
        assert totals(sqlite_url) == {"EUR": Decimal("10.30"), "USD": Decimal("5")}

    def test_a_redelivered_refund_counts_once(self, handle: Handle, sqlite_url: str) -> None:
        """The same eventId twice in a batch, then the whole batch again, counts once."""
        value = refund("EUR", "12.50")
        batch = [inbound(value, offset=0), inbound(value, offset=1)]
        handle(batch)
        handle(batch)  # at-least-once: a crash before the commit redelivers the batch
        assert totals(sqlite_url) == {"EUR": Decimal("12.50")}

    def test_other_event_types_change_nothing(self, handle: Handle, sqlite_url: str) -> None:
        """A completed payment in the batch adds to no total."""
        handle([inbound(completed("EUR", "99"))])
        assert totals(sqlite_url) == {}


# -- the whole consumer on Kafka ----------------------------------------------------------


def produce(bootstrap: str, topic: str, values: Sequence[Document | bytes]) -> None:
    """Publish `values` (events, or raw bytes) to `topic` and wait until the broker has them all."""
    producer = KafkaProducer({"bootstrap.servers": bootstrap})
    raw = [v if isinstance(v, bytes) else encode(v) for v in values]
    producer.send_confirmed(
        [OutboundRecord(topic, f"pay_{n}".encode(), v) for n, v in enumerate(raw)]
    )


def dead_letters(seen: Sequence[LifecycleEvent]) -> list[RecordDeadLettered]:
    """The DLQ writes among the lifecycle events `seen`."""
    return [e for e in seen if isinstance(e, RecordDeadLettered)]


@pytest.mark.integration
def test_consumer_totals_refunds_from_kafka_and_dead_letters_poison(
    topics: Topics, kafka_config: dict[str, str | int], sqlite_url: str
) -> None:
    """Refunds on Kafka, one sent twice, become totals; a record that is not JSON goes to the DLQ."""
    settings = RefundTrackerSettings(
        database_url=sqlite_url,
        topic_prefix=topics.prefix,  # this test's own topics, created by the fixture
        kafka={name: str(value) for name, value in kafka_config.items()},
        poll_timeout_seconds=0.1,
    )
    spec = replace(build(settings, CollectorRegistry()), group_id=f"refunds-{uuid.uuid4().hex}")
    seen: list[LifecycleEvent] = []  # every lifecycle event: handled, dead-lettered, committed
    runner = Runner(
        spec,
        settings,
        lambda listener: KafkaConsumer(settings.consumer_config(spec.group_id), listener),
        KafkaProducer(settings.producer_config()),
        Bus([seen.append]),
    )
    twice = refund("EUR", "100.00")
    poison = b"not json"
    with running(runner):
        values = [twice, twice, refund("EUR", "0.50"), refund("JPY", "1500"), poison]
        produce(str(kafka_config["bootstrap.servers"]), topics.for_event(PAYMENT_REFUNDED), values)
        expected = {"EUR": Decimal("100.50"), "JPY": Decimal("1500")}
        wait_until(lambda: totals(sqlite_url) == expected, 30, f"the totals {expected}")
        wait_until(lambda: dead_letters(seen), 30, "the poison record's DLQ write")
    [letter] = dead_letters(seen)
    assert (letter.error_type, letter.dlq_topic) == ("not_json", topics.dlq(spec.group_id))


def test_the_example_stays_small() -> None:
    """docs/writing-a-consumer.md promises a consumer in about a hundred lines: keep the promise."""
    modules = [path for path in EXAMPLE.glob("*.py") if path.name != "__init__.py"]
    assert sum(len(path.read_text().splitlines()) for path in modules) <= 120
