"""Property tests of the pure derivation: the result depends on the set of facts only."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dreamscape_dev.testing.builders import Document
from tests.voyage.bookings import fact
from tests.voyage.strategies import booking_events
from voyage_consumer.domain import HOLD_BY_STATUS, decide, derive


class TestOrderIndependence:
    @settings(max_examples=150)
    @given(events=booking_events(), data=st.data())
    def test_any_permutation_with_duplicates_derives_the_same_booking(
        self, events: list[Document], data: st.DataObject
    ) -> None:
        """Every permutation of a booking's events, with any events repeated, derives an identical result."""
        facts = [fact(e) for e in events]
        repeated = data.draw(st.lists(st.sampled_from(facts), max_size=6))
        shuffled = data.draw(st.permutations(facts + repeated))
        assert derive("bk_p", shuffled) == derive("bk_p", facts)


class TestInvariants:
    @settings(max_examples=150)
    @given(events=booking_events())
    def test_derived_rows_are_consistent(self, events: list[Document]) -> None:
        """Refunds never exceed the price, the hold follows the status, and only a paid booking has a confirmation number."""
        facts = [fact(e) for e in events]
        d = derive("bk_p", facts)
        if d is None:
            assert all(f.kind == "refunded" for f in facts)
            return
        b = d.booking
        assert 0 <= b.refunded_amount <= b.amount
        assert d.hold == HOLD_BY_STATUS[b.status]
        paid = any(f.kind == "completed" for f in facts)
        assert paid == (b.status in ("confirmed", "partially_refunded", "cancelled"))
        assert paid == (b.confirmation_number is not None)
        assert b.updated_at == max(f.occurred_at for f in facts)


class TestDecide:
    @settings(max_examples=150)
    @given(events=booking_events(), data=st.data())
    def test_decide_stores_what_derive_derives(
        self, events: list[Document], data: st.DataObject
    ) -> None:
        """`decide` (the handler's, without the explanation) gives `derive`'s booking, hold and anomalies for any permutation with repeats."""
        facts = [fact(e) for e in events]
        repeated = data.draw(st.lists(st.sampled_from(facts), max_size=6))
        shuffled = data.draw(st.permutations(facts + repeated))
        derived, decided = derive("bk_p", facts), decide("bk_p", shuffled)
        if derived is None:
            assert decided is None
            return
        assert decided is not None
        assert decided[:3] == derived[:3]
        assert (decided.winner, decided.applied_refunds) == (
            derived.winner,
            derived.applied_refunds,
        )
