"""The analytics service: its `ConsumerSpec`, built from settings at start-up.

The run loop (`common.runner`) owns Kafka; this module wires the pieces: the database
engine and tables, the exactly-once store (`store`) as the batch handler and as the
source of starting offsets, the live monitor (`monitor`) after each batch, and the
database as a readiness check. Database errors are transient for the run loop: it pauses
the partitions and retries the batch until the database is back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from analytics_consumer.alerts import AlertRules
from analytics_consumer.gauges import AnalyticsGauges
from analytics_consumer.monitor import Monitor
from analytics_consumer.schema import create_tables
from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.store import AnalyticsStore, validate_amount
from common.business import BusinessMetrics
from common.db import TRANSIENT_DB_ERRORS, make_engine, reachable
from common.handlers import ConsumerSpec
from common.records import Inbound

SERVICE = "analytics-service"
SCHEMA_ATTEMPTS = 10
"""Start-up tries to create the tables (the database may still be starting, or another
instance may be creating them at the same moment) before the process gives up."""

_log = structlog.get_logger("analytics_consumer.service")


def build(
    settings: AnalyticsSettings, registry: CollectorRegistry, *, store: AnalyticsStore | None = None
) -> ConsumerSpec:
    """The service's spec; `store` lets a test supply one with a hook."""
    engine = make_engine(settings.database)
    prepare(engine)
    store = store or AnalyticsStore(
        engine,
        consumer=settings.group,
        on_claimed=BusinessMetrics(registry, SERVICE),
    )
    monitor = Monitor(
        engine,
        AlertRules.from_settings(settings),
        AnalyticsGauges(registry, label_cap=settings.analytics_label_cap),
        interval_s=settings.analytics_refresh_seconds,
    )

    def handle(batch: Sequence[Inbound]) -> None:
        store.apply(batch)
        monitor.after_batch()

    return ConsumerSpec(
        name=SERVICE,
        group_id=settings.group,
        handle=handle,
        transient_errors=TRANSIENT_DB_ERRORS,
        starting_offsets=store.starting_offsets,
        validate=validate_amount,
        readiness_checks={"database": lambda: reachable(engine)},
    )


def prepare(engine: Engine, attempts: int = SCHEMA_ATTEMPTS) -> None:
    """Create the tables, retrying for a while if the database is not there yet."""
    for attempt in range(1, attempts + 1):
        try:
            create_tables(engine)
            return
        except DBAPIError as exc:
            if attempt == attempts:
                raise
            _log.warning("analytics.schema_retry", attempt=attempt, error=str(exc.orig))
            time.sleep(min(2.0, 0.25 * attempt))
