"""The event-log consumer, except that it hangs for good inside its handler after K records.

Used as a subprocess by `test_runner_process.py`: it appends one line per event exactly as
`examples.event_log` does (one fsync per record, so every line written is durable),
and once it has handled `CRASH_AFTER` records in total it writes `CRASH_MARKER_PATH` and
blocks in the middle of its batch, offsets for that batch never stored. The test then
SIGKILLs it.

    CRASH_AFTER=100 CRASH_MARKER_PATH=/tmp/crashed EVENT_LOG_PATH=/tmp/log.jsonl \\
        python -m tests.integration.crash_consumer
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from common.handlers import ConsumerSpec
from common.records import Inbound
from common.service import run_service
from examples.event_log import EventLogSettings, append_durably


class CrashSettings(EventLogSettings):
    crash_after: int
    crash_marker_path: Path


def build(settings: CrashSettings, _registry: CollectorRegistry) -> ConsumerSpec:
    path = settings.event_log_path
    handled = 0

    def handle(batch: Sequence[Inbound]) -> None:
        nonlocal handled
        for inbound in batch:
            append_durably(path, [inbound])
            handled += 1
            if handled >= settings.crash_after:
                hang(settings.crash_marker_path, handled)

    return ConsumerSpec(
        name="crash-consumer", group_id=settings.group_id("event-log"), handle=handle
    )


def hang(marker: Path, handled: int) -> None:
    """Say so in `marker` (written whole, then renamed), then block until killed."""
    partial = marker.with_suffix(".partial")
    partial.write_text(f"{handled}\n")
    os.replace(partial, marker)
    threading.Event().wait()


def main() -> int:
    return run_service(CrashSettings, build, service="crash-consumer")


if __name__ == "__main__":
    raise SystemExit(main())
