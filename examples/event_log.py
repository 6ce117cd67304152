"""A minimal consumer on `common`: appends one JSON line per payment event to a file.

It is the example the README walks through and the consumer `make demo` runs before the
real services exist. The file is flushed and fsync'd before the handler returns, so "the
effect is durable" means what it says, and an offset is stored only after that.

One file, so its roles are functions rather than the modules of a service
(docs/writing-a-consumer.md, "Layout"): `line` is the pure core (`domain`),
`append_durably` the handler and its store, `build` the wiring (`service`), `main` the
command line (`cli`).

    EVENT_LOG_PATH=events.jsonl KAFKA_BOOTSTRAP_SERVERS=localhost:9092 \\
        python -m examples.event_log
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from common.handlers import ConsumerSpec
from common.records import Inbound
from common.service import run_service
from common.settings import RunnerSettings


class EventLogSettings(RunnerSettings):
    event_log_path: Path = Path("data/event-log.jsonl")


def line(inbound: Inbound) -> str:
    """The JSON line for one event: identity and position, never the payload."""
    event, record = inbound.event, inbound.record
    return json.dumps(
        {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "payment_id": event.payload.payment_id,
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
    )


def append_durably(path: Path, batch: Sequence[Inbound]) -> None:
    """Append the batch's lines and fsync before returning."""
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(line(inbound) + "\n" for inbound in batch))
        out.flush()
        os.fsync(out.fileno())


def build(settings: EventLogSettings, _registry: CollectorRegistry) -> ConsumerSpec:
    path = settings.event_log_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return ConsumerSpec(
        name="event-log",
        group_id=settings.group_id("event-log"),  # KAFKA_GROUP_ID, else event-log
        handle=lambda batch: append_durably(path, batch),
    )


def main() -> int:
    return run_service(EventLogSettings, build, service="event-log")


if __name__ == "__main__":
    raise SystemExit(main())
