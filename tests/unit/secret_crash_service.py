"""A service that crashes with secrets configured and a payment in its hands.

Run as a subprocess by `tests/unit/test_secrets.py`: `run_service` as every service runs it,
its settings from the environment (Kafka SASL and SSL key passwords, a database URL with a
password), the real DLQ producer (pointed at a closed port), and a stand-in consumer that
delivers one payment record and then nothing. The handler reads `/readyz` and `/healthz`,
prints their bodies, and raises `CriticalError` with the record's payload in its locals,
so the process ends with the crash traceback the logs show.

    CRASH_EVENT='{...}' KAFKA_SASL_PASSWORD=... python -m tests.unit.secret_crash_service
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from common import service
from common.errors import CriticalError
from common.handlers import ConsumerSpec
from common.health import HealthServer
from common.records import Inbound, Record, TopicPartition
from common.settings import RunnerSettings

TOPIC = "dreamscape.payment.completed"
servers: list[HealthServer] = []


class RecordingHealthServer(HealthServer):
    """The health server, remembered so the handler can ask it (HTTP_PORT=0 picks the port)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        servers.append(self)


class OneRecordConsumer:
    """Assigns partition 0 at subscribe, delivers one record, then empty polls."""

    def __init__(self, _config: Mapping[str, str], listener: Any) -> None:
        self._listener = listener
        self._records = [
            Record(TOPIC, 0, 0, b"booking", os.environ["CRASH_EVENT"].encode(), (), 1_000)
        ]

    def subscribe(self, _topics: Sequence[str]) -> None:
        partitions = [TopicPartition(TOPIC, 0)]
        self._listener.on_assign(partitions)
        self._listener.after_assign(partitions)

    def poll_batch(self, _max_records: int, _timeout_s: float) -> tuple[list[Record], list[Any]]:
        records, self._records = self._records, []
        return records, []

    def store_offsets(self, _offsets: Mapping[TopicPartition, int]) -> None:
        pass

    def commit(self) -> Mapping[TopicPartition, int]:
        return {}

    def pause(self, _partitions: Sequence[TopicPartition]) -> None:
        pass

    def resume(self, _partitions: Sequence[TopicPartition]) -> None:
        pass

    def seek(self, _tp: TopicPartition, _offset: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        """A method the run loop gained after this stand-in was written: do nothing."""
        return lambda *_args, **_kwargs: None


def probe(path: str) -> None:
    """Print the body of the health server's `path`, whatever its status."""
    url = f"http://127.0.0.1:{servers[0].port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
    print(f"{path}: {body}", flush=True)


def build(settings: RunnerSettings, _registry: CollectorRegistry) -> ConsumerSpec:
    def handle(batch: Sequence[Inbound]) -> None:
        value = batch[0].record.value  # a payload in the frame's locals, as in a real handler
        assert value is not None
        probe("/readyz")
        probe("/healthz")
        raise CriticalError("the ledger disagrees with itself")

    return ConsumerSpec(name="secret-crash", group_id="secret-crash", handle=handle)


def main() -> int:
    service.KafkaConsumer = OneRecordConsumer  # type: ignore[assignment, misc]
    service.HealthServer = RecordingHealthServer  # type: ignore[misc]
    return service.run_service(RunnerSettings, build, service="secret-crash")


if __name__ == "__main__":
    raise SystemExit(main())
