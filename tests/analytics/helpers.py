"""Small helpers shared by the analytics tests: a database set up as the service does, reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Engine, text

from analytics_consumer.alerts import AlertInputs, AlertRules, evaluate
from analytics_consumer.reading import read_figures, snapshot
from analytics_consumer.report import report_json
from analytics_consumer.store import AnalyticsStore
from analytics_consumer.tables import SCHEMA
from common.records import Inbound, TopicPartition
from common.schema import connect


def engine_for(url: str) -> Engine:
    return connect(url, SCHEMA)


def store_for(engine: Engine, stream: Sequence[Inbound], **options: Any) -> AnalyticsStore:
    """A store that was assigned every partition of `stream` (as on a rebalance)."""
    store = AnalyticsStore(engine, **options)
    store.starting_offsets(sorted({i.record.tp for i in stream}))
    return store


def apply_all(store: AnalyticsStore, batches: Iterable[Sequence[Inbound]]) -> None:
    for batch in batches:
        store.apply(batch)


def report(
    engine: Engine, day: str | None = None, rules: AlertRules | None = None
) -> dict[str, Any]:
    rules = rules or AlertRules()
    with snapshot(engine) as session:
        figures = read_figures(session=session, day=day, rules=rules)
    return report_json(figures, evaluate(AlertInputs.of(figures), rules))


def stored_offsets(engine: Engine) -> dict[TopicPartition, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT topic, kafka_partition, next_offset FROM analytics_offset")
        )
        return {TopicPartition(t, p): int(o) for t, p, o in rows}
