"""`build`: from settings to the analytics `ConsumerSpec`. Everything stateful starts here.

The run loop (`common.runner`) owns Kafka; this module wires the pieces: the database
engine and tables, the exactly-once store (`store`) as the source of starting offsets and,
with the live monitor (`monitor`) after each batch, the batch handler (`handler`), the latest
reconciliation run as gauges read on scrape (`reconciliation_gauges`), and the database as a
readiness check. The database is opened the way every service opens it
(`common.schema.open_database`); once running, database errors are transient for the run
loop: it pauses the partitions and retries the batch until the database is back.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from analytics_consumer.alerts import AlertRules
from analytics_consumer.gauges import AnalyticsGauges
from analytics_consumer.handler import AnalyticsHandler
from analytics_consumer.monitor import Monitor
from analytics_consumer.reconciliation_gauges import ReconciliationCollector
from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.store import AnalyticsStore, validate_amount
from analytics_consumer.tables import SCHEMA
from common.business import BusinessMetrics
from common.db import TRANSIENT_DB_ERRORS, reachable
from common.handlers import ConsumerSpec
from common.schema import open_database
from common.topics import GROUP_ANALYTICS

SERVICE = "analytics-consumer"


def build(
    settings: AnalyticsSettings, registry: CollectorRegistry, *, store: AnalyticsStore | None = None
) -> ConsumerSpec:
    """The service's spec; `store` lets a test supply one with a hook."""
    engine = open_database(SCHEMA, settings)
    group = settings.group_id(GROUP_ANALYTICS)
    store = store or AnalyticsStore(
        engine,
        consumer=group,
        on_claimed=BusinessMetrics(registry, SERVICE),
    )
    monitor = Monitor(
        engine,
        AlertRules.from_settings(settings),
        AnalyticsGauges(registry, label_cap=settings.analytics_label_cap),
        interval_s=settings.analytics_refresh_seconds,
    )
    # The daily job's outcome, read on scrape (at most every ANALYTICS_REFRESH_SECONDS).
    registry.register(ReconciliationCollector(engine, ttl_s=settings.analytics_refresh_seconds))

    return ConsumerSpec(
        name=SERVICE,
        group_id=group,
        handle=AnalyticsHandler(store, monitor),
        transient_errors=TRANSIENT_DB_ERRORS,
        starting_offsets=store.starting_offsets,
        validate=validate_amount,
        readiness_checks={"database": lambda: reachable(engine)},
        closers=(engine.dispose,),
    )
