"""The analytics service, except that it hangs for good inside a batch's transaction.

Used as a subprocess by `test_crash.py`: after CRASH_AFTER_BATCHES batches it has written
the batch's rows (offsets, business keys, counters, facts, audit) but not committed; it then writes
CRASH_MARKER_PATH and blocks until the test SIGKILLs it, mid-aggregation.

    CRASH_AFTER_BATCHES=4 CRASH_MARKER_PATH=/tmp/crashed DATABASE_URL=sqlite:///... \\
        python -m tests.analytics.crash_analytics
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from analytics_consumer.service import SERVICE, build
from analytics_consumer.settings import AnalyticsSettings
from analytics_consumer.store import AnalyticsStore
from analytics_consumer.tables import SCHEMA
from common.db import make_engine
from common.handlers import ConsumerSpec
from common.service import run_service
from common.topics import GROUP_ANALYTICS
from tests.integration.crash_consumer import hang


class CrashSettings(AnalyticsSettings):
    crash_after_batches: int
    crash_marker_path: Path


def build_crashing(settings: CrashSettings, registry: CollectorRegistry) -> ConsumerSpec:
    batches = 0

    def before_commit() -> None:
        nonlocal batches
        batches += 1
        if batches >= settings.crash_after_batches:
            hang(settings.crash_marker_path, batches)

    store = AnalyticsStore(
        make_engine(SCHEMA.url(settings)),
        consumer=settings.group_id(GROUP_ANALYTICS),
        before_commit=before_commit,
    )
    return build(settings, registry, store=store)


def main() -> int:
    return run_service(CrashSettings, build_crashing, service=SERVICE)


if __name__ == "__main__":
    raise SystemExit(main())
