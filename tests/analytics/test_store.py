"""The exactly-once write path against a real database (SQLite, then PostgreSQL), no broker.

Batches are cut from simulated streams the way polls cut them (`streams`), so these tests
exercise the store exactly as the run loop calls it, including redelivery and rebalances.
"""

from __future__ import annotations

import copy
import json
import threading
from decimal import Decimal

import msgspec
import pytest
import sqlalchemy as sa

from analytics_consumer.offsets import OffsetFencedError
from analytics_consumer.store import REJECTED_AMOUNT, AnalyticsStore
from common.business import Claimed
from common.errors import PermanentError
from common.events import PaymentInitiated
from common.records import Inbound, OutboundRecord, Record
from dreamscape_dev.simulator import SimulationConfig
from dreamscape_dev.testing.builders import decode, encode, event
from tests.analytics import independent
from tests.analytics.helpers import apply_all, engine_for, report, store_for, stored_offsets
from tests.analytics.streams import as_inbound, in_batches, interleaved, simulated

pytestmark = pytest.mark.integration

AWKWARD = SimulationConfig(flows=400, seed=11, duplicate_rate=0.08, reorder_rate=0.3, poison=6)
PLAIN = SimulationConfig(flows=400, seed=11)


class TestExactFigures:
    def test_a_simulated_stream_gives_exactly_the_independently_computed_figures(
        self, database_url: str
    ) -> None:
        """Duplicates, reordering and poison in a stream leave every figure equal to the one recomputed from the raw records, overall and for a day."""
        records = simulated(AWKWARD)
        stream = as_inbound(records)
        engine = engine_for(database_url)
        apply_all(store_for(engine, stream), interleaved(stream, 97, seed=1))

        events = independent.distinct_events(records)
        assert independent.comparable(report(engine)) == independent.figures(events)
        day = "2025-12-19"
        assert independent.comparable(report(engine, day)) == independent.figures(events, day)

    def test_duplicates_and_reordering_change_nothing(
        self, database_url: str, other_database_url: str
    ) -> None:
        """The same flows published plainly or with duplicates and swapped events, in other batches, give the same report."""
        plain, awkward = engine_for(database_url), engine_for(other_database_url)
        plain_stream = as_inbound(simulated(PLAIN))
        awkward_stream = as_inbound(simulated(AWKWARD))
        apply_all(store_for(plain, plain_stream), in_batches(plain_stream, 500))
        apply_all(store_for(awkward, awkward_stream), interleaved(awkward_stream, 37, seed=2))
        assert report(plain) == report(awkward)

    def test_a_redelivered_batch_counts_once(self, database_url: str) -> None:
        """Applying batches again (a rewind after a retry or a rebalance) leaves the figures unchanged."""
        stream = as_inbound(simulated(PLAIN))
        engine = engine_for(database_url)
        store = store_for(engine, stream)
        batches = list(in_batches(stream, 200))
        apply_all(store, batches)
        before = report(engine)
        apply_all(store, batches[2:5])
        assert report(engine) == before

    def test_an_uncountable_amount_rolls_the_batch_back_so_no_stored_offset_passes_it(
        self, database_url: str
    ) -> None:
        """An amount integer units cannot hold raises PermanentError and counts nothing of its batch: the stored offset stays before it until the run loop has dead-lettered it (issue 10, finding 1)."""
        stream = as_inbound(simulated(SimulationConfig(flows=3, seed=5)))
        initiated = next(i for i in stream if isinstance(i.event, PaymentInitiated))
        assert isinstance(initiated.event, PaymentInitiated)
        # Past the parser (which refuses it in most currencies): a copy with the amount forced.
        payload = copy.copy(initiated.event.payload)
        msgspec.structs.force_setattr(payload, "amount", Decimal("10.00001"))
        odd = Inbound(initiated.record, msgspec.structs.replace(initiated.event, payload=payload))
        engine = engine_for(database_url)
        store = store_for(engine, [odd])
        with pytest.raises(PermanentError) as rejected:
            store.apply([odd])
        assert rejected.value.error_type == REJECTED_AMOUNT
        assert report(engine)["payments_initiated"] == 0
        assert stored_offsets(engine)[odd.record.tp] == 0


def _restated(record: OutboundRecord, **payload: object) -> OutboundRecord:
    """The same business fact as `record` under a new eventId (a redelivered webhook)."""
    assert record.value is not None
    return OutboundRecord(record.topic, record.key, encode(event(decode(record.value), **payload)))


class TestOneFactOneEffect:
    def test_a_payment_republished_under_new_event_ids_counts_once(self, database_url: str) -> None:
        """A completion and a refund each published again with a fresh eventId and time (what the spec's webhook handler does on a redelivery) leave every figure as if published once (issue 10, finding 14)."""
        records = simulated(PLAIN)
        by_type = {json.loads(r.value or b"{}").get("eventType"): r for r in records}
        again = [
            _restated(by_type["payment.completed"], completedAt="2025-12-19T23:59:00Z"),
            _restated(by_type["payment.refunded"], refundedAt="2025-12-19T23:59:00Z"),
        ]
        engine = engine_for(database_url)
        stream = as_inbound([*records, *again])
        apply_all(store_for(engine, stream), in_batches(stream, 97))
        expected = independent.figures(independent.distinct_events(records))
        assert independent.comparable(report(engine)) == expected

    def test_the_same_refund_id_with_another_amount_is_an_anomaly_counted_once(
        self, database_url: str
    ) -> None:
        """A second event for a known refundId with a different amount is recorded as an anomaly and not counted: the first word stands."""
        records = simulated(PLAIN)
        refund = next(r for r in records if b"payment.refunded" in (r.value or b""))
        odd = _restated(refund, refundAmount=1)
        engine = engine_for(database_url)
        stream = as_inbound([*records, odd])
        claimed: list[Claimed] = []
        apply_all(store_for(engine, stream, on_claimed=claimed.append), in_batches(stream, 97))
        assert independent.comparable(report(engine)) == independent.figures(
            independent.distinct_events(records)
        )
        anomalies = [e for c in claimed for e in c.of("anomaly")]
        assert anomalies == [json.loads(odd.value or b"{}")["eventId"]]
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT event_id FROM business_anomaly")).all()
        assert [r[0] for r in rows] == anomalies


def _shifted(inbound: Inbound, offset: int) -> Inbound:
    r = inbound.record
    return Inbound(Record(r.topic, r.partition, offset, r.key, r.value), inbound.event)


class TestResume:
    def test_a_new_instance_resumes_from_the_offsets_stored_with_the_effects(
        self, database_url: str
    ) -> None:
        """On assignment an instance gets the next offsets written in the batches' transactions, and new partitions start at 0."""
        stream = as_inbound(simulated(PLAIN))
        engine = engine_for(database_url)
        apply_all(store_for(engine, stream), in_batches(stream[:300], 100))
        ends: dict[object, int] = {}
        for inbound in stream[:300]:
            ends[inbound.record.tp] = inbound.record.offset + 1
        assert stored_offsets(engine) == {
            tp: ends.get(tp, 0) for tp in {i.record.tp for i in stream}
        }
        partitions = sorted({i.record.tp for i in stream})
        assert dict(AnalyticsStore(engine).starting_offsets(partitions)) == stored_offsets(engine)


class TestFence:
    def _partition_stream(self) -> list[Inbound]:
        stream = as_inbound(simulated(PLAIN))
        tp = stream[0].record.tp
        return [i for i in stream if i.record.tp == tp][:20]

    def test_the_new_owner_with_a_stale_start_goes_on_from_the_stored_offset(
        self, database_url: str
    ) -> None:
        """B is assigned and loads offset 0; the evicted A's in-flight commit then sets 10; B's batch 0-14 re-reads the stored offset, counts only 10-14 and goes on: no endless fence, nothing counted twice (issue 10, finding 4)."""
        records = self._partition_stream()
        engine = engine_for(database_url)
        new_owner = store_for(engine, records)  # loaded 0
        evicted = store_for(engine, records)
        evicted.apply(records[:10])  # the commit that was in flight

        new_owner.apply(records[:15])
        new_owner.apply(records[15:])
        evicted.apply(records[10:15])  # a zombie's late batch: already covered, skipped

        tp = records[0].record.tp
        assert stored_offsets(engine)[tp] == records[-1].record.offset + 1
        expected = independent.figures(independent.distinct_events(map(_outbound, records)))
        assert report(engine)["events"] == expected["events"]

    def test_a_stored_offset_behind_the_expected_one_is_still_a_fence(
        self, database_url: str
    ) -> None:
        """A stored offset that went backwards (restored by hand, say) is not adopted: OffsetFencedError and nothing changes."""
        records = self._partition_stream()
        engine = engine_for(database_url)
        store = store_for(engine, records)
        store.apply(records[:10])
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE analytics_offset SET next_offset = 3"))
        before = report(engine)
        with pytest.raises(OffsetFencedError):
            store.apply(records[10:15])
        assert report(engine) == before

    def test_records_the_stored_offset_already_covers_are_skipped(self, database_url: str) -> None:
        """A stale batch wholly below the stored offset (a commit whose acknowledgement was lost) is skipped without error and without counting."""
        records = self._partition_stream()
        engine = engine_for(database_url)
        first, second = store_for(engine, records), store_for(engine, records)
        first.apply(records[:10])
        before = report(engine)
        second.apply(records[:10])  # no error, nothing counted
        assert report(engine) == before
        second.apply(records[10:])  # adopted the stored position: it continues from there
        expected = independent.figures(independent.distinct_events(map(_outbound, records)))
        assert report(engine)["events"] == expected["events"]

    def test_a_duplicate_at_another_offset_counts_once(self, database_url: str) -> None:
        """The same eventId delivered again at a later offset is recognised by its business key and not counted twice."""
        records = self._partition_stream()
        engine = engine_for(database_url)
        store = store_for(engine, records)
        store.apply(records[:5])
        before = report(engine)
        store.apply([_shifted(records[0], records[4].record.offset + 1)])
        assert report(engine) == before

    @pytest.mark.postgres
    def test_concurrent_writers_of_one_partition_are_serialised_and_count_disjoint_ranges(
        self, postgres_url: str
    ) -> None:
        """While one instance holds a partition's offset row in an open transaction, a second writer waits for it, then counts only the records the first did not: nothing twice."""
        records = self._partition_stream()
        engine = engine_for(postgres_url)
        inside, release = threading.Event(), threading.Event()

        def hold() -> None:
            inside.set()
            assert release.wait(10)

        first = store_for(engine, records, before_commit=hold)
        second = store_for(engine, records)
        outcome: list[BaseException | None] = []
        writer = threading.Thread(target=lambda: first.apply(records[:10]))
        writer.start()
        assert inside.wait(10)

        def contend() -> None:
            try:
                second.apply(records[:12])
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        contender = threading.Thread(target=contend)
        contender.start()
        release.set()
        writer.join(10)
        contender.join(10)
        assert outcome == [None]
        assert stored_offsets(engine)[records[0].record.tp] == records[11].record.offset + 1
        expected = independent.figures(independent.distinct_events(map(_outbound, records[:12])))
        assert report(engine)["events"] == expected["events"]


def _outbound(inbound: Inbound) -> OutboundRecord:
    r = inbound.record
    return OutboundRecord(r.topic, r.key, r.value)
