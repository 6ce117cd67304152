"""The consumer run loop: poll, parse, handle, dead-letter, store offsets; retry and shut down.

The loop owns the consumer. Per poll it:

1. parses every record (`common.parsing`) and applies the service's optional `validate`;
   invalid and rejected records are dead-lettered, the broker acknowledging each write
   (`common.dlq_writer`);
2. calls the service's batch handler with the valid ones (`common.handlers`), and
   dead-letters what it rejects;
3. stores each partition's next offset (`common.partitions`); librdkafka commits stored
   offsets periodically, and the loop commits synchronously on revocation and on shutdown.

So an offset is stored only after its record's outcome is durable: at-least-once.

Failures follow one decision table (`common.failures.decide`), applied by one retry policy
(`common.retry`): transient errors are retried with exponential backoff and jitter for as
long as it takes, the consumer's partitions paused and the loop still polling (so the group
keeps it); unexpected errors are retried a bounded number of times on the failing record
alone, then dead-lettered; permanent errors and invalid records go to the DLQ at once;
critical errors stop the loop without storing. Records the handler returns as `RetryLater`
(a failure of their own while the others succeed) are handed back to it alone after the
same backoff, `ConsumerSpec.record_attempts` calls in all, then given up and dead-lettered;
that count lives in the batch's handling, never longer. Which partitions are still ours when a
rebalance lands mid-batch, what to read again after a pause, and which offsets to store, is
`common.partitions`; the group's callbacks that change them are `common.rebalance`.

This module is what ties them together: the loop itself, the paused polls and shutdown
(commit, close the consumer, then what the service opened: `ConsumerSpec.closers`). It
builds the partitions, then the rebalance listener over them, then the consumer with that
listener, so nothing the consumer can call back into is missing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog

from common import dlq
from common.dlq_writer import DlqWriter
from common.errors import (
    CriticalError,
    FatalClientError,
    InvalidEvent,
    RetryLater,
    ShutdownRequested,
)
from common.failures import Decision, dead_letter, decide
from common.handlers import ConsumerSpec, Rejections
from common.kafka import ClientError, RebalanceListener
from common.kafka.consumer import CONSUMER
from common.lifecycle import BatchHandled, Bus, ConsumerError, LoopStopped, TopicMissing
from common.parsing import parse_event
from common.partitions import Partitions
from common.ports import ConsumerPort, ProducerPort
from common.rebalance import Rebalance
from common.records import Inbound, Record
from common.retry import GaveUp, RetryPolicy
from common.settings import RunnerSettings
from common.topics import Topics
from common.tracing import NO_TRACER, Tracer, from_env


class Runner:
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
        client_check: Callable[[], None] = lambda: None,
        tracer: Tracer | None = None,
    ) -> None:
        """`client_check` runs between polls and raises `FatalClientError` once a client the
        loop needs (the DLQ producer) failed for good. `tracer` defaults to what the `OTEL_*`
        variables configure: `common.tracing.NO_TRACER` unless tracing is asked for."""
        self._spec = spec
        self._settings = settings
        self._bus = bus
        self._wall_clock = wall_clock
        self._heartbeat = heartbeat
        self._client_check = client_check
        self._fatal: FatalClientError | None = None
        self._topics = Topics(settings.topic_prefix)
        self._skew = timedelta(seconds=settings.max_clock_skew_seconds)
        self._stop = threading.Event()
        self._partitions = Partitions(bus)
        self._rebalance = Rebalance(self._partitions, bus, spec.starting_offsets)
        self._consumer = consumer(self._rebalance)
        self._partitions.bind(self._consumer)
        self._retry = RetryPolicy(settings, (*spec.transient_errors,), bus, sleep=self._paused_wait)
        group = spec.group_id  # resolved once, by the service (`RunnerSettings.group_id`)
        if tracer is None:
            tracer = from_env(service=spec.name, group=group, transient=(*spec.transient_errors,))
        self._tracer = tracer
        if tracer is not NO_TRACER:
            bus.subscribe(tracer.on_event)
        self._dlq = DlqWriter(
            producer,
            bus,
            self._retry,
            self._partitions.owned,
            topic=settings.dlq_topic or self._topics.dlq(group),
            group=group,
            wall_clock=wall_clock,
            tracer=tracer,
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
        return self._rebalance.joined

    @property
    def dlq_topic(self) -> str:
        return self._dlq.topic

    @property
    def outage(self) -> str | None:
        """The transient error being retried now (`Type: message`), or None.

        Readiness fails while it is set: the member keeps its partitions but does no useful
        work, and an orchestrator should route nothing to it (and alert if it lasts).
        """
        return self._retry.outage

    @property
    def fatal(self) -> FatalClientError | None:
        """The fatal client error that ended the loop, or None: liveness fails once it is set."""
        return self._fatal

    def run(self) -> str:
        """Consume until stopped; returns why it stopped. Raises nothing but CriticalError."""
        self._consumer.subscribe([self._topics.for_event(t) for t in self._spec.event_types])
        reason, commit = "stop requested", True
        try:
            while not self._stop.is_set():
                self._heartbeat()
                self._client_check()
                records, errors = self._consumer.poll_batch(
                    self._settings.batch_size, self._settings.poll_timeout_seconds
                )
                self._report(errors)
                if records:
                    self._process(records)
        except ShutdownRequested as exc:  # from a retry wait, or a handler told to stop
            reason = str(exc) or "stop requested mid-batch"
        except FatalClientError as exc:
            # Only a new process recovers the client: say why once, and commit what is
            # stored (durable outcomes only), unless the consumer itself is what failed.
            self._fatal = exc
            self._bus.emit(ConsumerError(exc.code, str(exc), fatal=True))
            reason, commit = "fatal client error", exc.client != CONSUMER
            raise
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
        self._tracer.polled(records)
        try:
            self._partitions.begin_batch()
            valid, letters = self._parse(records)
            self._dlq.write(letters)  # before handling: nothing can cover an unwritten letter
            step = self._settings.max_records_per_call
            polled = time.monotonic()
            for start in range(0, len(valid), step):
                if start:  # a long batch: keep the member alive between handler calls
                    polled = self._keep_alive(polled)
                self._dlq.write(self._handle(valid[start : start + step]))
            self._partitions.resume()
            self._partitions.store(records)
            self._retry.outage = None  # the batch went through: whatever was down is back
        finally:
            self._tracer.finished()

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
                letters.append(dead_letter(record, None, exc, 1))
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
                    letters.append(dead_letter(record, inbound, exc, 1))
                    continue
            valid.append(inbound)
        self._tracer.parsed(valid)
        return valid, letters

    def _handle(self, batch: list[Inbound], attempt: int = 1) -> list[dlq.DeadLetter]:
        """Apply `batch`; returns the records to dead-letter. Isolates a failing record.

        `attempt` counts the calls of records the handler deferred (`RetryLater`): this is
        the batch's first call, or the next one for those it deferred.
        """
        started = time.perf_counter()
        try:
            live, rejected = self._retry.run(
                lambda: self._call(batch), [i.record for i in batch], bounded=len(batch) == 1
            )
        except GaveUp as failure:
            if len(batch) > 1:
                # One record at a time, each one's letter acknowledged before the next record
                # is handled: a later record's effect (and the offset a service stores with
                # it) must never pass a record whose letter is not yet written.
                for inbound in batch:
                    self._dlq.write(self._handle([inbound], attempt))
                return []
            failed = batch[0]
            return [dead_letter(failed.record, failed, failure.error, failure.attempts)]
        if not rejected:  # the hot path: every record handled
            self._bus.emit(BatchHandled(live, time.perf_counter() - started))
            return []
        handled = [i for i in live if i not in rejected]
        self._bus.emit(BatchHandled(handled, time.perf_counter() - started))
        letters: list[dlq.DeadLetter] = []
        deferred: list[Inbound] = []
        for inbound in live:
            verdict = rejected.get(inbound)
            if isinstance(verdict, RetryLater):
                deferred.append(inbound)
            elif verdict is not None:
                letters.append(dead_letter(inbound.record, inbound, verdict, 1))
        if not deferred:
            return letters
        # The letters first: a service storing its offsets with its effects must never store
        # one, handling the deferred records again, past a record whose letter is unwritten.
        self._dlq.write(letters)
        return self._defer(deferred, rejected, attempt)

    def _defer(
        self, deferred: list[Inbound], verdicts: Rejections, attempt: int
    ) -> list[dlq.DeadLetter]:
        """Call the handler again with the records it deferred, after the policy's backoff,
        until `ConsumerSpec.record_attempts` calls; then give up on them.

        The count lives in this batch's handling only: nothing survives it, and a record
        whose partition was revoked meanwhile drops out with the others (`_call`).
        """
        if attempt < self._spec.record_attempts:
            first = verdicts[deferred[0]]
            self._retry.backoff([i.record for i in deferred], "deferred", first, attempt)
            return self._handle(deferred, attempt + 1)
        letters: list[dlq.DeadLetter] = []
        for inbound in deferred:
            later = verdicts[inbound]
            assert isinstance(later, RetryLater)
            if later.give_up is not None:
                try:
                    self._retry.run(later.give_up, [inbound.record], bounded=True)
                except GaveUp as failure:  # dead-lettered all the same, saying so
                    later = RetryLater(
                        f"{later.reason}; giving up failed: {failure.error!r}",
                        error_type=later.error_type,
                    )
            letters.append(dead_letter(inbound.record, inbound, later, attempt))
        return letters

    def _call(self, batch: list[Inbound]) -> tuple[list[Inbound], Rejections]:
        """Hand the live part of `batch` to the service; returns it and what it rejected.

        The call runs with the loop's retry policy current, for `common.retry.until_durable`.
        """
        live = self._partitions.live(batch)
        if not live:
            return live, {}
        with self._tracer.handler_call(live), self._retry.serving(live):
            return live, self._spec.handle(live) or {}

    # -- polling with every partition paused ---------------------------------------------

    def _keep_alive(self, polled: float) -> float:
        """Between two handler calls of one batch: beat liveness, and poll with every partition
        paused if the last poll (at monotonic time `polled`) is `CALL_POLL_INTERVAL_SECONDS`
        old; returns the time of the last poll.

        A poll resets librdkafka's `max.poll.interval.ms` timer and serves rebalances; with
        the partitions paused it fetches nothing new, and what was already fetched is read
        again after the batch (the same rewind as during retries). Pausing also makes
        librdkafka drop the records it fetched ahead, so the next batch waits for a fetch:
        worth it after a slow call, not after every fast one.
        """
        self._heartbeat()
        now = time.monotonic()
        if now - polled < self._settings.call_poll_interval_seconds:
            return polled
        self._partitions.pause()
        records, errors = self._consumer.poll_batch(self._settings.batch_size, 0)
        self._report(errors)
        self._partitions.remember_rewind(records)
        return now

    def _paused_wait(self, seconds: float) -> None:
        """The retry policy's sleep: poll with every partition paused, so the group keeps us."""
        self._partitions.pause()
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.is_set():
                raise ShutdownRequested("stop requested during retry")
            self._heartbeat()
            self._client_check()
            records, errors = self._consumer.poll_batch(
                self._settings.batch_size, min(remaining, self._settings.poll_timeout_seconds)
            )
            self._report(errors)
            self._partitions.remember_rewind(records)

    # -- errors and shutdown ------------------------------------------------------------

    def _report(self, errors: list[ClientError]) -> None:
        for error in errors:
            if error.fatal:  # announced once, by `run`
                raise FatalClientError("consumer", error.code, error.message)
            if error.unknown_topic and error.topic:
                self._bus.emit(TopicMissing(error.topic))
            else:
                self._bus.emit(ConsumerError(error.code, error.message, error.fatal))

    def _close(self, *, commit: bool, reason: str) -> None:
        try:
            committed = self._partitions.commit("shutdown") if commit else {}
            self._consumer.close()
            self._tracer.close()
        finally:
            self._close_service()
        self._bus.emit(LoopStopped(reason, committed))

    def _close_service(self) -> None:
        """Close what the service opened (`ConsumerSpec.closers`): each one, whatever the others did."""
        for close in self._spec.closers:
            try:
                close()
            except Exception as exc:  # logged: it must not hide why the loop stopped
                structlog.get_logger("common.runner").error(
                    "loop.close_failed",
                    closer=getattr(close, "__qualname__", type(close).__name__),
                    error_type=type(exc).__name__,
                    exc_info=True,
                )
