"""The voyage consumer, except that it hangs inside its transaction once K events are applied.

Used as a subprocess by `test_crash.py`. Just before a batch's commit it counts the inbox
rows its own transaction sees (committed ones plus the batch's); once that reaches
`CRASH_AFTER` it writes `CRASH_MARKER_PATH` and blocks there, the batch written but not
committed, so the test's SIGKILL lands in the middle of a batch.

    CRASH_AFTER=100 CRASH_MARKER_PATH=/tmp/crashed DATABASE_URL=... \\
        python -m tests.voyage.crash_voyage
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.orm import Session

from common.handlers import ConsumerSpec
from common.service import run_service
from tests.integration.crash_consumer import hang
from voyage_consumer import store
from voyage_consumer.service import build
from voyage_consumer.settings import VoyageSettings


class CrashSettings(VoyageSettings):
    crash_after: int
    crash_marker_path: Path


def build_crashing(settings: CrashSettings, registry: CollectorRegistry) -> ConsumerSpec:
    def before_commit(session: Session) -> None:
        applied = store.count_processed(session=session)  # type: ignore[arg-type]
        if applied >= settings.crash_after:
            hang(settings.crash_marker_path, applied)

    event.listen(Session, "before_commit", before_commit)
    return build(settings, registry)


def main() -> int:
    return run_service(CrashSettings, build_crashing, service="crash-voyage")


if __name__ == "__main__":
    raise SystemExit(main())
