"""The steady stream and the lag readings taken while it flows.

`Publisher` sends the simulation's records at a fixed rate (a chunk every 100 ms), each chunk
acknowledged by all in-sync replicas before the next (idempotent producer: a retried chunk
is never written twice, so the stream the checker judges is exactly the simulation). When
the brokers are cut off it keeps retrying the same chunk and catches up afterwards.

`LagSampler` reads every group's committed offsets once a second, without joining the
groups, and keeps (seconds, group, lag) where lag = published - committed, summed over the
payment partitions.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from common.errors import TransientError
from common.kafka import GroupOffsets, KafkaProducer
from common.records import OutboundRecord, TopicPartition

CHUNKS_PER_S = 10
QUIET = "2"
"""librdkafka log level of the harness's own clients: a cut network is the point, not news."""


class Publisher(threading.Thread):
    def __init__(self, bootstrap: str, records: Sequence[OutboundRecord], rate: int) -> None:
        super().__init__(name="chaos-publisher", daemon=True)
        self._servers = bootstrap
        self._records = records
        self._rate = rate
        self._lock = threading.Lock()
        self._ends: dict[TopicPartition, int] = {}
        self.published = 0
        self.retries = 0
        self.started_at = 0.0
        self.finished_at: float | None = None
        self.error: BaseException | None = None

    def ends(self) -> dict[TopicPartition, int]:
        """Per partition, the offset after the last acknowledged record."""
        with self._lock:
            return dict(self._ends)

    def run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # reported by the harness, which fails the run
            self.error = exc

    def _publish(self) -> None:
        producer = KafkaProducer(
            {
                "bootstrap.servers": self._servers,
                "acks": "all",
                "enable.idempotence": "true",
                "linger.ms": "5",
                "log_level": QUIET,
            }
        )
        chunk = max(1, self._rate // CHUNKS_PER_S)
        self.started_at = time.monotonic()
        try:
            for start in range(0, len(self._records), chunk):
                due = self.started_at + start / self._rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # the rate limiter: the stream is paced by the clock
                batch = self._records[start : start + chunk]
                while True:
                    try:
                        ends = producer.send_confirmed(batch, timeout_s=10)
                        break
                    except TransientError:
                        self.retries += 1  # brokers cut off or electing: same chunk again
                with self._lock:
                    for tp, end in ends.items():
                        self._ends[tp] = max(end, self._ends.get(tp, 0))
                    self.published += len(batch)
        finally:
            producer.flush(10)
            self.finished_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class LagSample:
    seconds: float
    group: str
    lag: int


class LagSampler(threading.Thread):
    def __init__(
        self,
        bootstrap: str,
        groups: Mapping[str, str],
        partitions: Sequence[TopicPartition],
        ends: Publisher,
    ) -> None:
        super().__init__(name="chaos-lag", daemon=True)
        self._groups = groups
        self._readers = {
            name: GroupOffsets({"bootstrap.servers": bootstrap, "log_level": QUIET}, group)
            for name, group in groups.items()
        }
        self._partitions = list(partitions)
        self._publisher = ends
        self._created = time.monotonic()
        self._read_at: dict[str, float] = {}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.samples: list[LagSample] = []
        self.latest: dict[str, int] = {}

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                self.sample()
                self._stopping.wait(1.0)  # one reading a second, or stop at once
        finally:
            for reader in self._readers.values():
                reader.close()

    def sample(self) -> None:
        """One reading per group; times are seconds since the stream started (its clock)."""
        ends = self._publisher.ends()
        origin = self._publisher.started_at or self._created
        for name, reader in self._readers.items():
            with contextlib.suppress(TransientError):  # coordinator moving: skip this reading
                committed = reader.read(self._partitions, timeout_s=2.0)
                lag = sum(max(0, ends.get(tp, 0) - committed.get(tp, 0)) for tp in ends)
                now = time.monotonic()
                with self._lock:
                    self.samples.append(LagSample(round(now - origin, 2), name, lag))
                    self.latest[name] = lag
                    self._read_at[name] = now

    def reading_after(self, moment: float) -> dict[str, int] | None:
        """Every group's latest lag, if each was read after `moment` (monotonic); else None."""
        with self._lock:
            if len(self._read_at) < len(self._readers) or min(self._read_at.values()) <= moment:
                return None
            return dict(self.latest)

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)
