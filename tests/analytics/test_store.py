"""The exactly-once write path against a real database (SQLite, then PostgreSQL), no broker.

Batches are cut from simulated streams the way polls cut them (`streams`), so these tests
exercise the store exactly as the run loop calls it, including redelivery and rebalances.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from analytics_consumer.offsets import OffsetFencedError
from analytics_consumer.store import REJECTED_AMOUNT, AnalyticsStore
from common.errors import PermanentError
from common.events import PaymentInitiated
from common.records import Inbound, OutboundRecord, Record
from common.simulator import SimulationConfig
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
        payload = initiated.event.payload.model_copy(update={"amount": Decimal("10.00001")})
        odd = Inbound(initiated.record, initiated.event.model_copy(update={"payload": payload}))
        engine = engine_for(database_url)
        store = store_for(engine, [odd])
        with pytest.raises(PermanentError) as rejected:
            store.apply([odd])
        assert rejected.value.error_type == REJECTED_AMOUNT
        assert report(engine)["payments_initiated"] == 0
        assert stored_offsets(engine)[odd.record.tp] == 0


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

    def test_a_stale_instance_cannot_write_over_the_owner(self, database_url: str) -> None:
        """An instance that lost a partition it still believes it owns fails with OffsetFencedError and changes nothing, while the owner's offsets and figures stand."""
        records = self._partition_stream()
        engine = engine_for(database_url)
        zombie = store_for(engine, records)
        owner = store_for(engine, records)
        owner.apply(records[:10])
        before, offsets = report(engine), stored_offsets(engine)

        with pytest.raises(OffsetFencedError):
            zombie.apply(records[:15])

        assert report(engine) == before
        assert stored_offsets(engine) == offsets
        owner.apply(records[10:])
        assert stored_offsets(engine)[records[0].record.tp] == records[-1].record.offset + 1

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
        """The same eventId delivered again at a later offset is recognised by the inbox and not counted twice."""
        records = self._partition_stream()
        engine = engine_for(database_url)
        store = store_for(engine, records)
        store.apply(records[:5])
        before = report(engine)
        store.apply([_shifted(records[0], records[4].record.offset + 1)])
        assert report(engine) == before

    @pytest.mark.postgres
    def test_concurrent_writers_of_one_partition_are_serialised_and_the_second_fenced(
        self, postgres_url: str
    ) -> None:
        """While one instance holds a partition's offset row in an open transaction, a second writer waits for it and is fenced once it commits."""
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
        assert len(outcome) == 1
        assert isinstance(outcome[0], OffsetFencedError)
        assert stored_offsets(engine)[records[0].record.tp] == records[9].record.offset + 1


def _outbound(inbound: Inbound) -> OutboundRecord:
    r = inbound.record
    return OutboundRecord(r.topic, r.key, r.value)
