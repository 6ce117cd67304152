"""Refunded totals per currency: a complete consumer on `common` (docs/writing-a-consumer.md)."""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlmodel import Field, SQLModel

from common import db, handlers, records, topics
from common.events import PaymentRefunded
from common.settings import DatabaseURL, RunnerSettings

NAME = "refund-tracker"  # the consumer group (DLQ: dreamscape.dlq.refund-tracker), the inbox key


class RefundTrackerSettings(RunnerSettings):  # every field is an environment variable
    database_url: DatabaseURL = DatabaseURL("sqlite:///data/refund-tracker.db")


class RefundTotal(SQLModel, table=True):
    currency: str = Field(primary_key=True)
    total: str = "0"  # exact decimal text: SQLite has no decimal type


def apply(engine: Engine, batch: Sequence[records.Inbound]) -> None:
    """Add each refund not applied before to its currency's total; one transaction per batch."""
    refunds = {i.event.event_id: i.event for i in batch if isinstance(i.event, PaymentRefunded)}
    with db.transaction(engine) as session:
        now = datetime.now(UTC)  # claim_events: the ids not applied before, recorded now
        for event_id in db.claim_events(session=session, consumer=NAME, event_ids=refunds, now=now):
            refund = refunds[event_id].payload
            row = session.get(RefundTotal, refund.currency) or RefundTotal(currency=refund.currency)
            row.total = str(Decimal(row.total) + refund.refund_amount)
            session.add(row)


def build(settings: RefundTrackerSettings, _registry: CollectorRegistry) -> handlers.ConsumerSpec:
    engine = db.make_engine(settings.database_url.get_secret_value())
    db.create_schema(engine, [db.ProcessedEvent, RefundTotal])
    return handlers.ConsumerSpec(
        name=NAME,
        group_id=NAME,
        handle=lambda batch: apply(engine, batch),
        event_types=(topics.PAYMENT_REFUNDED,),  # subscribe to dreamscape.payment.refunded only
        transient_errors=db.TRANSIENT_DB_ERRORS,  # database down: pause and retry, never the DLQ
        readiness_checks={"database": lambda: db.reachable(engine)},  # part of /readyz
    )
