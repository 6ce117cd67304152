"""`build`: from the settings to the `ConsumerSpec` the run loop runs, once, at start-up."""

from prometheus_client import CollectorRegistry

from common import db, handlers, topics
from examples.refund_tracker.handler import apply
from examples.refund_tracker.settings import RefundTrackerSettings
from examples.refund_tracker.tables import TABLES

NAME = "refund-tracker"  # the default consumer group (DLQ: dreamscape.dlq.<group>)


def build(settings: RefundTrackerSettings, _registry: CollectorRegistry) -> handlers.ConsumerSpec:
    engine = db.make_engine(settings.database_url.get_secret_value())
    db.create_schema(engine, TABLES)
    group = settings.group_id(NAME)  # KAFKA_GROUP_ID, else NAME; also the inbox's key
    return handlers.ConsumerSpec(
        name=NAME,
        group_id=group,
        handle=lambda batch: apply(engine, batch, consumer=group),
        event_types=(topics.PAYMENT_REFUNDED,),  # subscribe to dreamscape.payment.refunded only
        transient_errors=db.TRANSIENT_DB_ERRORS,  # database down: pause and retry, never the DLQ
        readiness_checks={"database": lambda: db.reachable(engine)},  # part of /readyz
    )
