"""The voyage handler against a real database (SQLite, then PostgreSQL), without Kafka.

Batches are handed to `VoyageHandler` exactly as the run loop would; what is checked is the
database it leaves behind: rows, inbox, anomalies, and the metrics and log lines it emits.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlmodel import Session
from structlog.testing import capture_logs

from common.errors import PermanentError
from common.records import Inbound
from common.schema import connect
from dreamscape_dev.testing.builders import Document, inbound, spec_records
from tests.voyage.bookings import document, fact
from tests.voyage.strategies import booking_events, renamed
from voyage_consumer import store
from voyage_consumer.domain import derive
from voyage_consumer.handler import VoyageHandler, VoyageMetrics
from voyage_consumer.tables import SCHEMA

pytestmark = pytest.mark.integration


@dataclass
class Voyage:
    engine: Engine
    handle: VoyageHandler
    registry: CollectorRegistry

    def rows(self, booking_id: str) -> dict[str, list[dict[str, Any]]]:
        with Session(self.engine) as session:
            return store.stored_rows(session=session, booking_id=booking_id)

    def booking(self, booking_id: str) -> dict[str, Any]:
        rows = self.rows(booking_id)["booking"]
        assert len(rows) == 1, f"no booking row for {booking_id}"
        return rows[0]

    def processed(self) -> int:
        with Session(self.engine) as session:
            return store.count_processed(session=session)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def matches_derivation(self, booking_id: str, docs: Sequence[Document]) -> None:
        """The stored rows are exactly what `derive` makes of the set of `docs`."""
        expected = derive(booking_id, [fact(d) for d in docs])
        rows = self.rows(booking_id)
        if expected is None:
            assert rows["booking"] == []
            return
        assert rows["booking"] == [expected.booking._asdict() | {"inventory_hold": expected.hold}]
        stored = {(a["kind"], a["subject"]) for a in rows["booking_anomaly"]}
        assert stored == {(a.kind, a.subject) for a in expected.anomalies}


@pytest.fixture
def voyage(database_url: str) -> Iterator[Voyage]:
    """A handler on a fresh database with the voyage schema."""
    engine = connect(database_url, SCHEMA)
    registry = CollectorRegistry()
    yield Voyage(engine, VoyageHandler(engine, VoyageMetrics(registry)), registry)
    engine.dispose()


class TestSpecExamples:
    def test_the_spec_examples_in_reverse_order_cancel_the_booking_and_a_replay_changes_nothing(
        self, voyage: Voyage
    ) -> None:
        """The four printed examples, refund first, leave booking_456def cancelled with 1250.00 refunded; the same records again change no row."""
        batch = [inbound(r) for r in reversed(spec_records())]
        assert voyage.handle(batch) == {}
        booking = voyage.booking("booking_456def")
        assert booking["status"] == "cancelled"
        assert booking["refunded_amount"] == Decimal("1250.00")
        assert booking["inventory_hold"] == "released"
        before = voyage.rows("booking_456def")

        assert voyage.handle([inbound(r) for r in spec_records()]) == {}
        assert voyage.rows("booking_456def") == before
        assert voyage.processed() == 4
        assert voyage.metric("voyage_duplicate_events_total") == 4


class TestRejection:
    def test_a_record_that_cannot_be_stored_is_rejected_without_its_neighbours(
        self, voyage: Voyage
    ) -> None:
        """A failure event carrying a NUL character is returned as a PermanentError; the records around it are applied."""
        bad = inbound(document("failed", booking="bk_nul", text="bad\x00text", minutes=1))
        batch = [
            inbound(document("initiated", booking="bk_nul")),
            bad,
            inbound(document("completed", booking="bk_nul", minutes=2)),
        ]
        rejected = voyage.handle(batch)
        assert list(rejected) == [bad]
        assert isinstance(rejected[bad], PermanentError)
        assert rejected[bad].error_type == "unstorable_event"
        assert voyage.booking("bk_nul")["status"] == "confirmed"
        assert voyage.processed() == 2


class TestAnomalies:
    def test_a_refund_above_the_price_is_a_row_a_log_line_and_a_metric_once(
        self, voyage: Voyage
    ) -> None:
        """An excessive refund leaves the booking confirmed, and is stored, logged and counted once even when redelivered."""
        docs = [
            document("completed", booking="bk_over"),
            document("refunded", booking="bk_over", amount="150.00", minutes=5),
        ]
        with capture_logs() as logs:
            voyage.handle([inbound(d) for d in docs])
        assert voyage.booking("bk_over")["status"] == "confirmed"
        [row] = voyage.rows("bk_over")["booking_anomaly"]
        assert (row["kind"], row["subject"]) == ("refund_exceeds_payment", "rf_1")
        [line] = [e for e in logs if e["event"] == "booking.anomaly"]
        assert line["log_level"] == "warning"
        assert line["booking_id"] == "bk_over"
        # the refund that caused it, with its position
        assert line["event_id"] == docs[1]["eventId"]
        assert line["topic"].endswith("payment.refunded")
        assert "offset" in line
        voyage.handle([inbound(d) for d in docs])
        kind = "refund_exceeds_payment"
        assert voyage.metric("voyage_anomalies_total", kind=kind) == 1

    def test_an_anomaly_the_facts_no_longer_show_is_removed(self, voyage: Voyage) -> None:
        """A refund too big for payment A stops being one when an earlier completion B makes A a double charge."""
        first = [
            document("completed", booking="bk_move", payment="pay_a", amount="50.00", minutes=2),
            document("refunded", booking="bk_move", payment="pay_a", amount="80.00", minutes=3),
        ]
        voyage.handle([inbound(d) for d in first])
        later = document("completed", booking="bk_move", payment="pay_b", minutes=1)
        voyage.handle([inbound(later)])
        voyage.matches_derivation("bk_move", [*first, later])
        kinds = {a["kind"] for a in voyage.rows("bk_move")["booking_anomaly"]}
        assert kinds == {"double_charge"}


class TestOrderIndependence:
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def test_any_batching_order_and_duplication_stores_the_derivation_of_the_set(
        self, voyage: Voyage, data: st.DataObject
    ) -> None:
        """A booking's events in random order, split into random batches, with repeats, end as `derive` of their set."""
        booking = f"bk_{uuid.uuid4().hex[:10]}"
        events = renamed(data.draw(booking_events(booking)), booking)
        repeated = data.draw(st.lists(st.sampled_from(events), max_size=4))
        stream = data.draw(st.permutations(events + repeated))
        while stream:
            size = data.draw(st.integers(1, 4))
            voyage.handle([inbound(d) for d in stream[:size]])
            stream = stream[size:]
        voyage.matches_derivation(booking, events)


class TestConcurrency:
    def test_two_consumers_applying_one_bookings_events_at_once_lose_nothing(
        self, database_url: str
    ) -> None:
        """Two handlers with their own connections apply halves of the same bookings' events concurrently; every booking ends as the derivation of all its events."""
        bookings = [f"bk_c{n}" for n in range(40)]
        halves: list[list[Inbound]] = [[], []]
        docs: dict[str, list[Document]] = {}
        for booking in bookings:
            events = [
                document("initiated", booking=booking),
                document("completed", booking=booking, minutes=1),
                document("refunded", booking=booking, amount="40.00", refund_id="r1", minutes=2),
                document("refunded", booking=booking, amount="10.00", refund_id="r2", minutes=3),
            ]
            docs[booking] = events
            for n, doc in enumerate(events):
                halves[n % 2].append(inbound(doc))
        voyages = [connect(database_url, SCHEMA) for _ in range(2)]
        handlers = [VoyageHandler(e, VoyageMetrics(CollectorRegistry())) for e in voyages]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(handler: VoyageHandler, records: list[Inbound]) -> None:
            try:
                start.wait()
                for offset in range(0, len(records), 4):
                    handler(records[offset : offset + 4])
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(h, r)) for h, r in zip(handlers, halves, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        check = Voyage(voyages[0], handlers[0], CollectorRegistry())
        for booking in bookings:
            check.matches_derivation(booking, docs[booking])
            assert check.booking(booking)["refunded_amount"] == Decimal("50.00")
        for engine in voyages:
            engine.dispose()
