"""The consumer run loop: poll, parse, handle, dead-letter, store offsets; retry and shut down.

The loop owns the consumer. Per poll it:

1. parses every record (`common.parsing`) and applies the service's optional `validate`;
   invalid and rejected records are dead-lettered, the broker acknowledging each write;
2. calls the service's batch handler with the valid ones (`common.handlers`), and
   dead-letters what it rejects;
3. stores each partition's next offset; librdkafka commits stored offsets periodically, and
   the loop commits synchronously on revocation and on shutdown.

So an offset is stored only after its record's outcome is durable: at-least-once.

Failures follow one decision table (`common.decisions.decide`): transient errors are retried with
exponential backoff and jitter for as long as it takes, the consumer's partitions paused and
the loop still polling (so the group keeps it); unexpected errors are retried a bounded
number of times on the failing record alone, then dead-lettered; permanent errors and
invalid records go to the DLQ at once; critical errors stop the loop without storing.
Retries are one tenacity policy whose "sleep" is a paused poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from common import dlq
from common.decisions import Decision, decide
from common.errors import (
    CriticalError,
    InvalidEvent,
    PermanentError,
    ProduceRefusedError,
    TransientError,
)
from common.handlers import ConsumerSpec, Rejections
from common.kafka import ClientError, RebalanceListener
from common.lifecycle import (
    BatchHandled,
    Bus,
    ConsumerError,
    LagMeasured,
    LoopStopped,
    OffsetsCommitted,
    OffsetsStored,
    PartitionsChanged,
    RecordDeadLettered,
    RetryScheduled,
    TopicMissing,
)
from common.parsing import parse_event
from common.ports import ConsumerPort, ProducerPort
from common.records import Inbound, OutboundRecord, Record, TopicPartition
from common.settings import RunnerSettings
from common.topics import Topics

T = TypeVar("T")


class _Stopping(Exception):  # noqa: N818 - control flow, never escapes the runner
    """Raised out of a retry wait when shutdown was requested."""


class Runner(RebalanceListener):
    """Runs one service's handler over its topics until `stop()` is called."""

    def __init__(
        self,
        spec: ConsumerSpec,
        settings: RunnerSettings,
        consumer: Callable[[RebalanceListener], ConsumerPort],
        producer: ProducerPort,
        bus: Bus,
        *,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        heartbeat: Callable[[], None] = lambda: None,
    ) -> None:
        self._spec = spec
        self._settings = settings
        self._producer = producer
        self._bus = bus
        self._wall_clock = wall_clock
        self._heartbeat = heartbeat
        self._topics = Topics(settings.topic_prefix)
        self._skew = timedelta(seconds=settings.max_clock_skew_seconds)
        # KAFKA_GROUP_ID, when set, overrides the service's group: name the DLQ after the real one.
        self._group = settings.kafka.get("group.id", spec.group_id)
        self._dlq_topic = settings.dlq_topic or self._topics.dlq(self._group)
        self._transient = (*spec.transient_errors,)
        self._assigned: set[tuple[str, int]] = set()  # TopicPartitions; plain tuples look up alike
        self._interrupted: set[tuple[str, int]] = set()  # revoked or lost during this batch
        self._paused = False
        self._rewind: dict[TopicPartition, int] = {}
        self._stop = threading.Event()
        self._has_joined = False
        self._outage: str | None = None
        self._consumer = consumer(self)
        initial = settings.retry_initial_seconds
        self._backoff = wait_exponential_jitter(
            multiplier=initial, max=settings.retry_max_seconds, jitter=initial
        )

    # -- public -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return (signal-safe)."""
        self._stop.set()
        if self._spec.on_stop is not None:
            self._spec.on_stop()

    @property
    def ready(self) -> bool:
        """The consumer has joined its group and received an assignment."""
        return self._has_joined

    @property
    def dlq_topic(self) -> str:
        return self._dlq_topic

    @property
    def outage(self) -> str | None:
        """The transient error being retried now (`Type: message`), or None.

        Readiness fails while it is set: the member keeps its partitions but does no useful
        work, and an orchestrator should route nothing to it (and alert if it lasts).
        """
        return self._outage

    def run(self) -> str:
        """Consume until stopped; returns why it stopped. Raises nothing but CriticalError."""
        self._consumer.subscribe([self._topics.for_event(t) for t in self._spec.event_types])
        reason, commit = "stop requested", True
        try:
            while not self._stop.is_set():
                self._heartbeat()
                records, errors = self._consumer.poll_batch(
                    self._settings.batch_size, self._settings.poll_timeout_seconds
                )
                self._report(errors)
                if records:
                    self._process(records)
        except _Stopping:
            reason = "stop requested during retry"
        except CriticalError as exc:
            reason, commit = f"critical error: {exc}", False
            raise
        except BaseException as exc:  # a bug of our own, or an interrupt: no final commit
            reason, commit = f"unexpected {type(exc).__name__}: {exc}", False
            raise
        finally:
            self._close(commit=commit, reason=reason)
        return reason

    # -- one batch ----------------------------------------------------------------------

    def _process(self, records: list[Record]) -> None:
        self._interrupted.clear()  # partitions revoked from here on were not ours throughout
        valid, letters = self._parse(records)
        self._write_letters(letters)  # before handling: nothing can cover an unwritten letter
        step = self._settings.max_records_per_call
        for start in range(0, len(valid), step):
            if start:  # a long batch: keep the member alive between handler calls
                self._keep_alive()
            self._write_letters(self._handle(valid[start : start + step]))
        self._resume()
        self._store(records)
        self._outage = None  # the batch went through: whatever was down is back

    def _parse(self, records: list[Record]) -> tuple[list[Inbound], list[dlq.DeadLetter]]:
        valid: list[Inbound] = []
        letters: list[dlq.DeadLetter] = []
        validate = self._spec.validate
        # Events from the future (a producer's clock, or a year 9999) are refused: once per
        # batch, the consumer's clock plus the skew it allows.
        not_after = self._wall_clock() + self._skew
        for record in records:
            try:
                event = parse_event(
                    record.value, record.topic, topics=self._topics, not_after=not_after
                )
            except InvalidEvent as exc:
                letters.append(dlq.DeadLetter(record, None, exc.reason, exc.detail, 1))
                continue
            inbound = Inbound(record, event)
            if validate is not None:
                try:
                    validate(event)
                except Exception as exc:  # one record's failure, whatever its type
                    # validate is pure, so retrying cannot change its answer: anything but
                    # CriticalError dead-letters the record (PermanentError under its own
                    # type, anything else as unexpected:<Type>); nothing ends the process.
                    if decide(exc, ()) is Decision.STOP:
                        raise
                    letters.append(self._letter(inbound, exc, 1))
                    continue
            valid.append(inbound)
        return valid, letters

    def _write_letters(self, letters: list[dlq.DeadLetter]) -> None:
        if not letters:
            return
        # Built once, outside the retries: the producer recognises a record it already
        # acknowledged (or still has in flight) when a retry hands it the same one again.
        failed_at = self._wall_clock()
        topic, group = self._dlq_topic, self._group
        built = [
            (x, dlq.to_dlq_record(x, dlq_topic=topic, group=group, failed_at=failed_at))
            for x in letters
        ]
        try:
            self._with_retry(
                lambda: self._dead_letter(built, failed_at),
                [x.record for x in letters],
                bounded=False,
            )
        except _Attempts as failure:  # not a transient failure: a bug; never skip the record
            raise CriticalError(f"cannot write to the DLQ: {failure.error!r}") from failure

    def _handle(self, batch: list[Inbound]) -> list[dlq.DeadLetter]:
        """Apply `batch`; returns the records to dead-letter. Isolates a failing record."""
        started = time.perf_counter()
        try:
            live, rejected = self._with_retry(
                lambda: self._call(batch), [i.record for i in batch], bounded=len(batch) == 1
            )
        except _Attempts as failure:
            if len(batch) > 1:
                # One record at a time, each one's letter acknowledged before the next record
                # is handled: a later record's effect (and the offset a service stores with
                # it) must never pass a record whose letter is not yet written.
                for inbound in batch:
                    self._write_letters(self._handle([inbound]))
                return []
            return [self._letter(batch[0], failure.error, failure.attempts)]
        handled = [i for i in live if i not in rejected] if rejected else live
        self._bus.emit(BatchHandled(handled, time.perf_counter() - started))
        return [self._letter(i, rejected[i], 1) for i in live if i in rejected]

    def _call(self, batch: list[Inbound]) -> tuple[list[Inbound], Rejections]:
        """Hand the live part of `batch` to the service; returns it and what it rejected."""
        live = self._live(batch)
        if not live:
            return live, {}
        return live, self._spec.handle(live) or {}

    def _owned(self) -> set[tuple[str, int]]:
        """Partitions ours since the batch in hand was polled (a rebalance may intervene).

        A partition revoked during a retry wait and assigned back in a later one is not: its
        position went back to the committed offset, so its records will come again.
        """
        if self._interrupted:
            return self._assigned - self._interrupted
        return self._assigned

    def _live(self, batch: list[Inbound]) -> list[Inbound]:
        """The part of `batch` whose partitions are still ours."""
        owned = self._owned()
        return [i for i in batch if (i.record.topic, i.record.partition) in owned]

    def _letter(self, inbound: Inbound, error: BaseException, attempts: int) -> dlq.DeadLetter:
        if isinstance(error, PermanentError):
            kind = error.error_type
        else:
            kind = f"unexpected:{type(error).__name__}"
        return dlq.DeadLetter(inbound.record, inbound, kind, str(error) or repr(error), attempts)

    def _dead_letter(
        self, built: list[tuple[dlq.DeadLetter, OutboundRecord]], failed_at: datetime
    ) -> None:
        owned = self._owned()
        live = [(x, r) for x, r in built if (x.record.topic, x.record.partition) in owned]
        try:
            self._producer.send_confirmed([r for _, r in live])
        except ProduceRefusedError as refused:
            # Refused for good (too large...): retrying cannot help. A marker letter keeps
            # the record findable; the others were acknowledged.
            group, topic = self._group, self._dlq_topic
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
                    x.record, x.inbound, x.error_type, x.message, x.attempts, self._dlq_topic
                )
            )

    def _store(self, records: list[Record]) -> None:
        """Store each partition's next offset; a poll returns a partition's records in order."""
        latest: dict[tuple[str, int], int] = {}
        for record in records:
            latest[(record.topic, record.partition)] = record.offset + 1
        owned = self._owned()
        offsets = {TopicPartition(*tp): offset for tp, offset in latest.items() if tp in owned}
        if offsets:
            self._consumer.store_offsets(offsets)
            self._bus.emit(OffsetsStored(offsets))

    # -- retries ------------------------------------------------------------------------

    def _with_retry(
        self, attempt: Callable[[], T], records: Sequence[Record], *, bounded: bool
    ) -> T:
        """Run `attempt` under the retry policy; `bounded` allows retrying unexpected errors."""

        def retryable(error: BaseException) -> bool:
            decision = decide(error, self._transient)
            return decision is Decision.RETRY or (bounded and decision is Decision.RETRY_BOUNDED)

        def give_up(state: RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome else None
            if error is None or decide(error, self._transient) is Decision.RETRY:
                return False
            return state.attempt_number >= self._settings.max_attempts

        retrying = Retrying(
            retry=retry_if_exception(retryable),
            stop=give_up,
            wait=self._backoff,
            sleep=self._paused_wait,
            before_sleep=lambda state: self._announce_retry(state, records),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except (CriticalError, _Stopping):
            raise
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise _Attempts(exc, attempts) from exc

    def _announce_retry(self, state: RetryCallState, records: Sequence[Record]) -> None:
        error = state.outcome.exception() if state.outcome else None
        assert error is not None
        kind = "transient" if decide(error, self._transient) is Decision.RETRY else "unexpected"
        if kind == "transient":
            self._outage = f"{type(error).__name__}: {str(error)[:200]}"
        delay = state.next_action.sleep if state.next_action else 0.0
        self._bus.emit(RetryScheduled(records, kind, error, state.attempt_number, delay))

    def _keep_alive(self) -> None:
        """Between two handler calls of one batch: beat liveness and poll, every partition paused.

        A poll resets librdkafka's `max.poll.interval.ms` timer and serves rebalances; with
        the partitions paused it fetches nothing new, and what was already fetched is read
        again after the batch (the same rewind as during retries).
        """
        self._heartbeat()
        self._pause()
        records, errors = self._consumer.poll_batch(self._settings.batch_size, 0)
        self._report(errors)
        self._remember_rewind(records)

    def _remember_rewind(self, records: list[Record]) -> None:
        for record in records:  # fetched before the pause took effect: read again later
            self._rewind[record.tp] = min(self._rewind.get(record.tp, record.offset), record.offset)

    def _paused_wait(self, seconds: float) -> None:
        """Wait by polling with every partition paused, so the group keeps this member."""
        self._pause()
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.is_set():
                raise _Stopping
            self._heartbeat()
            records, errors = self._consumer.poll_batch(
                self._settings.batch_size, min(remaining, self._settings.poll_timeout_seconds)
            )
            self._report(errors)
            self._remember_rewind(records)

    def _assignment(self) -> list[TopicPartition]:
        return [TopicPartition(*tp) for tp in sorted(self._assigned)]

    def _pause(self) -> None:
        if not self._paused:
            self._consumer.pause(self._assignment())
            self._paused = True

    def _resume(self) -> None:
        if not self._paused:
            return
        self._consumer.resume(self._assignment())
        self._paused = False
        for tp, offset in self._rewind.items():
            if tp in self._assigned:
                self._consumer.seek(tp, offset)
        self._rewind.clear()

    # -- group membership (called from inside poll) ------------------------------------

    def on_assign(self, partitions: Sequence[TopicPartition]) -> Mapping[TopicPartition, int]:
        if self._spec.starting_offsets is None or not partitions:
            return {}
        return self._spec.starting_offsets(partitions)

    def after_assign(self, partitions: Sequence[TopicPartition]) -> None:
        self._assigned.update(partitions)
        self._has_joined = True
        if self._paused:
            self._consumer.pause(list(partitions))
        self._bus.emit(PartitionsChanged("assigned", list(partitions)))

    def on_revoke(self, partitions: Sequence[TopicPartition]) -> None:
        self._commit("revoke")  # on failure the next owner re-reads from the last good commit
        self._forget(partitions, "revoked")

    def on_lost(self, partitions: Sequence[TopicPartition]) -> None:
        self._forget(partitions, "lost")

    def on_commit(self, offsets: Mapping[TopicPartition, int], error: str | None) -> None:
        if error is None:
            self._bus.emit(OffsetsCommitted(offsets, "periodic"))
        else:
            self._bus.emit(ConsumerError("COMMIT_FAILED", error, fatal=False))

    def on_stats(self, lag: Mapping[TopicPartition, int]) -> None:
        self._bus.emit(LagMeasured(lag))

    def _forget(self, partitions: Sequence[TopicPartition], change: str) -> None:
        self._assigned.difference_update(partitions)
        self._interrupted.update(partitions)
        for tp in partitions:
            self._rewind.pop(tp, None)
        self._bus.emit(PartitionsChanged(change, list(partitions)))

    # -- errors and shutdown ------------------------------------------------------------

    def _report(self, errors: list[ClientError]) -> None:
        for error in errors:
            if error.unknown_topic and error.topic:
                self._bus.emit(TopicMissing(error.topic))
            else:
                self._bus.emit(ConsumerError(error.code, error.message, error.fatal))
                if error.fatal:
                    raise CriticalError(f"fatal client error {error.code}: {error.message}")

    def _close(self, *, commit: bool, reason: str) -> None:
        committed = self._commit("shutdown") if commit else {}
        self._consumer.close()
        self._bus.emit(LoopStopped(reason, committed))

    def _commit(self, reason: str) -> Mapping[TopicPartition, int]:
        """Commit the stored offsets synchronously; returns what was committed ({} on failure)."""
        try:
            committed = self._consumer.commit()
        except TransientError as exc:
            self._bus.emit(ConsumerError("COMMIT_FAILED", str(exc), fatal=False))
            return {}
        self._bus.emit(OffsetsCommitted(committed, reason))
        return committed


class _Attempts(Exception):  # noqa: N818 - carries the last error out of the retry policy
    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts
