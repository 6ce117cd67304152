"""The handler the run loop calls with each batch: the inbox claim, `domain`, `store`."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine

from common import db, records
from common.events import PaymentRefunded
from examples.refund_tracker import domain, store


def apply(engine: Engine, batch: Sequence[records.Inbound], *, consumer: str) -> None:
    """Add each refund not applied before to its currency's total; one transaction per batch."""
    refunds = {i.event.event_id: i.event for i in batch if isinstance(i.event, PaymentRefunded)}
    with db.transaction(engine) as session:
        now = datetime.now(UTC)  # claim_events: the ids not applied before, recorded now
        new = db.claim_events(session=session, consumer=consumer, event_ids=refunds, now=now)
        store.add_to_totals(session=session, amounts=domain.refunded(refunds[e] for e in new))
