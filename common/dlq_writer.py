"""The run loop's DLQ sending path: letters built once, written, and waited for.

`common.dlq` says what a DLQ record looks like and `common.failures` what a letter names;
this module is how the run loop gets its letters into the DLQ without ever skipping one. A
letter counts as written only once the broker acknowledged it, and the loop writes letters
before anything that could cover their records (a later record's effect, an offset), so:

* a DLQ that cannot be written is retried like any transient failure, under the one retry
  policy (`common.retry`), for as long as it takes; a retry re-sends only the letters not
  yet acknowledged, because the records are built once, outside the retries;
* a letter refused for good (too large...) becomes a marker letter carrying the record's
  position, size and SHA-256, so the record stays findable;
* letters of partitions no longer owned (`owned`, asked at each attempt) are not written:
  their new owner reads the records again;
* a fatal error of the DLQ producer (`FatalClientError`: no producer id without a WRITE
  ACL...) is not retried: it ends the process, naming its cause (docs/architecture.md);
* any other failure to write is a bug, and stops the loop (`CriticalError`).
"""

from __future__ import annotations

from collections.abc import Callable, Set
from datetime import datetime

from common import dlq
from common.errors import CriticalError, ProduceRefusedError
from common.lifecycle import Bus, RecordDeadLettered
from common.ports import ProducerPort
from common.records import OutboundRecord
from common.retry import GaveUp, RetryPolicy
from common.tracing import NO_TRACER, Tracer


class DlqWriter:
    """Writes letters to one group's DLQ topic, acknowledged, under the retry policy."""

    def __init__(
        self,
        producer: ProducerPort,
        bus: Bus,
        retry: RetryPolicy,
        owned: Callable[[], Set[tuple[str, int]]],
        *,
        topic: str,
        group: str,
        wall_clock: Callable[[], datetime],
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._producer = producer
        self._bus = bus
        self._retry = retry
        self._owned = owned
        self.topic = topic
        self._group = group
        self._wall_clock = wall_clock
        self._tracer = tracer

    def write(self, letters: list[dlq.DeadLetter]) -> None:
        """Write `letters`, returning once the broker acknowledged every one still ours."""
        if not letters:
            return
        # Built once, outside the retries: the producer recognises a record it already
        # acknowledged (or still has in flight) when a retry hands it the same one again.
        failed_at = self._wall_clock()
        topic, group, trace = self.topic, self._group, self._tracer.traceparent
        built = [
            (
                x,
                dlq.to_dlq_record(
                    x,
                    dlq_topic=topic,
                    group=group,
                    failed_at=failed_at,
                    traceparent=trace(x.record),
                ),
            )
            for x in letters
        ]
        try:
            with self._tracer.dlq_write(letters, topic):
                self._retry.run(
                    lambda: self._send(built, failed_at),
                    [x.record for x in letters],
                    bounded=False,
                )
        except GaveUp as failure:  # not a transient failure: a bug; never skip the record
            raise CriticalError(f"cannot write to the DLQ: {failure.error!r}") from failure

    def _send(
        self, built: list[tuple[dlq.DeadLetter, OutboundRecord]], failed_at: datetime
    ) -> None:
        owned = self._owned()
        live = [(x, r) for x, r in built if (x.record.topic, x.record.partition) in owned]
        try:
            self._producer.send_confirmed([r for _, r in live])
        except ProduceRefusedError as refused:
            # Refused for good (too large...): retrying cannot help. A marker letter keeps
            # the record findable; the others were acknowledged.
            group, topic = self._group, self.topic
            markers = [
                dlq.to_marker_record(
                    live[n][0], dlq_topic=topic, group=group, failed_at=failed_at, refused=code
                )
                for n, code in sorted(refused.refused.items())
            ]
            self._producer.send_confirmed(markers)
        for x, _ in live:
            self._bus.emit(
                RecordDeadLettered(
                    x.record, x.inbound, x.error_type, x.message, x.attempts, self.topic
                )
            )
