"""Hypothesis strategies: random sets of one booking's events, awkward on purpose.

Few payment ids, refund ids, amounts and minutes, so that draws often contain what the
derivation must get right whatever the order: a payment both failed and completed, two
completed payments (double charge), a refund before or without its completion, refunds
above the price or in another currency, the same refund under two eventIds, equal times.
"""

from __future__ import annotations

import uuid
from typing import get_args

from hypothesis import strategies as st

from dreamscape_dev.testing.builders import Document
from tests.voyage.bookings import document
from voyage_consumer.facts import FactKind

KINDS: tuple[FactKind, ...] = get_args(FactKind)


@st.composite
def booking_event(draw: st.DrawFn, booking: str) -> Document:
    """One event of `booking`, with a fresh eventId."""
    return document(
        draw(st.sampled_from(KINDS)),
        booking=booking,
        payment=draw(st.sampled_from(["pay_a", "pay_b", "pay_c"])),
        amount=draw(st.sampled_from(["30.00", "50.00", "100.00", "100.00"])),
        currency=draw(st.sampled_from(["EUR", "EUR", "EUR", "USD"])),
        minutes=draw(st.integers(0, 6)),
        event_id=str(draw(st.uuids())),
        refund_id=draw(st.sampled_from(["rf_1", "rf_2", "rf_3"])),
    )


def booking_events(booking: str = "bk_p", max_size: int = 10) -> st.SearchStrategy[list[Document]]:
    """A set of 1 to `max_size` distinct events (by eventId) of one booking."""
    return st.lists(
        booking_event(booking), min_size=1, max_size=max_size, unique_by=lambda d: str(d["eventId"])
    )


def renamed(events: list[Document], namespace: str) -> list[Document]:
    """`events` with eventIds unique to `namespace` (Hypothesis reuses UUIDs across examples)."""
    return [
        {**e, "eventId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{e['eventId']}"))}
        for e in events
    ]
