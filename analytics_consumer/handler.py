"""The batch handler the run loop calls (`ConsumerSpec.handle`): store the batch, then look.

The work is in `store.AnalyticsStore.apply` (one transaction: fence, business keys, the
`domain`'s delta, audit rows). After its commit the live `monitor` may re-read the figures
and log alert transitions, at most every ANALYTICS_REFRESH_SECONDS; it never fails the
batch, whose effects are already committed.
"""

from __future__ import annotations

from collections.abc import Sequence

from analytics_consumer.monitor import Monitor
from analytics_consumer.store import AnalyticsStore
from common.records import Inbound


class AnalyticsHandler:
    """`ConsumerSpec.handle` for the analytics service."""

    def __init__(self, store: AnalyticsStore, monitor: Monitor) -> None:
        self._store = store
        self._monitor = monitor

    def __call__(self, batch: Sequence[Inbound]) -> None:
        self._store.apply(batch)
        self._monitor.after_batch()
