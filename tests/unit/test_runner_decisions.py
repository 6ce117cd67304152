"""The run loop's decision table and its batch logic, on an in-memory consumer and producer.

No broker: `FakeConsumer` hands the runner scripted batches (every partition assigned at
subscribe time), pauses by returning nothing, and stops the runner once the script is
played and nothing is paused. Every call the runner makes lands in one shared `calls` log,
so a test can check what happened in what order (DLQ acknowledged before offsets stored...).
"""

from __future__ import annotations

import decimal
import hashlib
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from structlog.testing import capture_logs

from common import dlq, failures, retry
from common.errors import (
    CriticalError,
    PermanentError,
    ProduceRefusedError,
    RetryLater,
    ShutdownRequested,
    TransientError,
)
from common.handlers import ConsumerSpec
from common.kafka import ClientError, RebalanceListener
from common.lifecycle import (
    BatchHandled,
    Bus,
    LifecycleEvent,
    LoopStopped,
    OffsetsStored,
    RecordDeadLettered,
    RetryScheduled,
)
from common.records import Inbound, OutboundRecord, Record, TopicPartition
from common.runner import Runner
from common.settings import RunnerSettings
from common.topics import Topics
from dreamscape_dev.testing.builders import encode, event

TOPICS = Topics(prefix="unit-")
TOPIC = TOPICS.for_event("payment.initiated")
TP = TopicPartition(TOPIC, 0)


class DriverError(Exception):
    """A service-declared transient error type."""


# -- fakes ------------------------------------------------------------------------------


def event_value(event_id: str | None = None) -> bytes:
    """The spec's payment.initiated example under `event_id` (or a fresh one), for a fresh payment."""
    payment_id = f"pay_{uuid.uuid4().hex[:10]}"
    return encode(event("payment.initiated", event_id=event_id, paymentId=payment_id))


def record(offset: int, value: bytes | None = None, tp: TopicPartition = TP) -> Record:
    return Record(
        tp.topic, tp.partition, offset, b"key", value or event_value(), (("h", b"1"),), 1_000
    )


class FakeConsumer:
    """Plays `batches` one per poll; returns nothing while paused; stops the runner at the end.

    Pauses behave as librdkafka's: a partition's pause outlives its revocation and is still
    there when the partition is assigned back, and a paused partition's records are not
    delivered (a batch held back by one counts as the end of the stream).
    """

    def __init__(
        self,
        batches: Sequence[Sequence[Record]],
        calls: list[tuple[str, Any]],
        *,
        while_paused: Sequence[Record] = (),
        revoke_while_paused: Sequence[TopicPartition] = (),
        reassign_while_paused: Sequence[TopicPartition] = (),
        reassign_after_resume: Sequence[TopicPartition] = (),
        errors: Sequence[ClientError] = (),
    ) -> None:
        self.batches = [list(b) for b in batches]
        self.calls = calls
        self.while_paused = list(while_paused)
        self.revoke_while_paused = list(revoke_while_paused)
        self.reassign_while_paused = list(reassign_while_paused)
        self.reassign_after_resume = list(reassign_after_resume)
        self.errors = list(errors)
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.listener: RebalanceListener | None = None
        self.on_drained: Callable[[], None] = lambda: None
        self.polls = 0

    def bind(self, listener: RebalanceListener) -> FakeConsumer:
        self.listener = listener
        return self

    def subscribe(self, topics: Sequence[str]) -> None:
        self.calls.append(("subscribe", list(topics)))
        self._assign([TP, TopicPartition(TOPIC, 1)])

    def _assign(self, partitions: list[TopicPartition]) -> None:
        assert self.listener is not None
        self.assigned.update(partitions)
        self.listener.on_assign(partitions)
        self.listener.after_assign(partitions)

    def poll_batch(
        self, max_records: int, timeout_s: float
    ) -> tuple[list[Record], list[ClientError]]:
        self.polls += 1
        assert self.polls < 200_000, "the runner never stopped"
        errors, self.errors = self.errors, []
        if self.assigned and self.assigned <= self.paused:  # the runner's pause, all at once
            if self.revoke_while_paused:  # a rebalance, delivered from inside poll
                revoked, self.revoke_while_paused = self.revoke_while_paused, []
                assert self.listener is not None
                self.listener.on_revoke(revoked)
                self.assigned.difference_update(revoked)  # still paused, as in librdkafka
            elif self.reassign_while_paused:  # a later rebalance gives them back
                again, self.reassign_while_paused = self.reassign_while_paused, []
                self._assign(again)
            fetched, self.while_paused = self.while_paused, []
            return fetched, errors
        if self.reassign_after_resume and self.assigned.isdisjoint(self.reassign_after_resume):
            # a rebalance once the retry that saw them revoked is over
            again, self.reassign_after_resume = self.reassign_after_resume, []
            self._assign(again)
            return [], errors
        if self.batches and not any(r.tp in self.paused for r in self.batches[0]):
            return self.batches.pop(0), errors
        self.on_drained()
        return [], errors

    def store_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.calls.append(("store", dict(offsets)))

    def commit(self) -> Mapping[TopicPartition, int]:
        self.calls.append(("commit", None))
        return {}

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self.calls.append(("pause", list(partitions)))
        self.paused.update(partitions)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self.calls.append(("resume", list(partitions)))
        self.paused.difference_update(partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.calls.append(("seek", (tp, offset)))

    def close(self) -> None:
        self.calls.append(("close", None))


class FakeProducer:
    """Acknowledges every DLQ write, after raising `failures` (in order) on the first calls.

    Records whose value is longer than `max_value_bytes` are refused for good, as librdkafka
    refuses a message above `message.max.bytes` (MSG_SIZE_TOO_LARGE); the others are sent.
    """

    def __init__(
        self,
        calls: list[tuple[str, Any]],
        failures: Sequence[Exception] = (),
        max_value_bytes: int = 1_000_000,
    ) -> None:
        self.calls = calls
        self.failures = list(failures)
        self.max_value_bytes = max_value_bytes
        self.sent: list[OutboundRecord] = []

    def send_confirmed(self, records: Sequence[OutboundRecord], timeout_s: float = 30.0) -> None:
        if self.failures:
            self.calls.append(("send_failed", len(records)))
            raise self.failures.pop(0)
        refused = {
            n: "MSG_SIZE_TOO_LARGE"
            for n, r in enumerate(records)
            if r.value is not None and len(r.value) > self.max_value_bytes
        }
        accepted = [r for n, r in enumerate(records) if n not in refused]
        self.calls.append(("send", len(accepted)))
        self.sent.extend(accepted)
        if refused:
            raise ProduceRefusedError(refused)


class Harness:
    """One runner over a fake consumer and producer, with everything it did recorded."""

    def __init__(
        self,
        handle: Callable[[Sequence[Inbound]], Any],
        batches: Sequence[Sequence[Record]],
        *,
        dlq_failures: Sequence[Exception] = (),
        transient: tuple[type[BaseException], ...] = (),
        settings: Mapping[str, Any] | None = None,
        validate: Callable[[Any], None] | None = None,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_value_bytes: int = 1_000_000,
        closers: Sequence[str] = (),
        record_attempts: int = 3,
        **consumer_options: Any,
    ) -> None:
        """`closers` names the service's closers, each logged in `calls` (`broken` raises)."""
        self.calls: list[tuple[str, Any]] = []
        self.events: list[LifecycleEvent] = []
        self.handler_calls: list[list[int]] = []

        def recording(batch: Sequence[Inbound]) -> Any:
            self.handler_calls.append([i.record.offset for i in batch])
            self.calls.append(("handle", [i.record.offset for i in batch]))
            return handle(batch)

        self.consumer = FakeConsumer(batches, self.calls, **consumer_options)
        self.producer = FakeProducer(self.calls, dlq_failures, max_value_bytes)
        values: dict[str, Any] = {
            "topic_prefix": TOPICS.prefix,
            "retry_initial_seconds": 0.001,
            "retry_max_seconds": 0.004,
            "max_attempts": 3,
            "kafka": {},
            **(settings or {}),
        }
        spec = ConsumerSpec(
            name="unit",
            group_id="unit-group",
            handle=recording,
            transient_errors=transient,
            validate=validate,
            closers=[self._closer(name) for name in closers],
            record_attempts=record_attempts,
        )
        self.bus = Bus([self.events.append])
        self.runner = Runner(
            spec,
            RunnerSettings(**values),
            self.consumer.bind,
            self.producer,
            self.bus,
            wall_clock=wall_clock,
        )
        self.consumer.on_drained = self.runner.stop

    def _closer(self, name: str) -> Callable[[], None]:
        def close() -> None:
            self.calls.append((f"closed {name}", None))
            if name == "broken":
                raise OSError("the SMTP pool would not shut down")

        return close

    def run(self) -> str:
        return self.runner.run()

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def handled_offsets(self) -> list[int]:
        return [i.record.offset for e in self.of(BatchHandled) for i in e.handled]

    def stored(self) -> list[Mapping[TopicPartition, int]]:
        return [args for name, args in self.calls if name == "store"]

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def ok(_batch: Sequence[Inbound]) -> None:
    return None


def header(dlq_record: OutboundRecord, name: str) -> str:
    values = [v for k, v in dlq_record.headers if k == name]
    assert len(values) == 1
    assert values[0] is not None
    return values[0].decode()


# -- the run loop on fakes --------------------------------------------------------------


class TestPoisonAndRejections:
    def test_a_poison_record_is_dead_lettered_and_the_rest_of_the_batch_handled(self) -> None:
        """A batch with one unparsable record calls the handler with the others and dead-letters that one."""
        h = Harness(ok, [[record(0), record(1, b"not json"), record(2)]])

        assert h.run() == "stop requested"

        assert h.handler_calls == [[0, 2]]
        assert [(r.value, r.key) for r in h.producer.sent] == [(b"not json", b"key")]
        assert header(h.producer.sent[0], "dlq.error.type") == "not_json"
        assert header(h.producer.sent[0], "dlq.attempts") == "1"
        assert ("h", b"1") in h.producer.sent[0].headers
        assert h.stored() == [{TP: 3}]
        assert h.names().index("send") < h.names().index("store")

    def test_a_record_the_handler_rejects_is_dead_lettered_with_its_error_type(self) -> None:
        """A PermanentError returned for one record dead-letters it once with the handler's error type."""

        def reject_second(batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
            return {
                i: PermanentError("unknown booking", error_type="unknown_booking")
                for i in batch
                if i.record.offset == 1
            }

        h = Harness(reject_second, [[record(0), record(1), record(2)]])
        h.run()

        assert h.handled_offsets() == [0, 2]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type, letter.attempts) == (
            1,
            "unknown_booking",
            1,
        )
        assert h.stored() == [{TP: 3}]

    def test_a_record_failing_validate_is_dead_lettered_before_the_handler_runs(self) -> None:
        """A PermanentError from the spec's `validate` dead-letters that record, acknowledged before the handler sees the rest."""
        rejected_id = "00000000-0000-4000-8000-000000000001"

        def validate(event: Any) -> None:
            if event.event_id == rejected_id:
                raise PermanentError("amount not countable", error_type="svc:amount")

        h = Harness(
            ok, [[record(0), record(1, event_value(rejected_id)), record(2)]], validate=validate
        )
        h.run()

        assert h.handler_calls == [[0, 2]]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type) == (1, "svc:amount")
        assert h.calls.index(("send", 1)) < h.calls.index(("handle", [0, 2]))
        assert h.stored() == [{TP: 3}]

    def test_an_event_from_beyond_the_clock_skew_is_dead_lettered_as_invalid_value(
        self,
    ) -> None:
        """With the runner's clock at 2026-12-01 and MAX_CLOCK_SKEW_SECONDS=3600, an event stamped a day later is dead-lettered as invalid_value; one within the skew is handled (issue 10, finding 11)."""
        now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
        late = event_value().replace(b"2025-12-18T10:30:00.000Z", b"2026-12-02T12:00:00Z")
        near = event_value().replace(b"2025-12-18T10:30:00.000Z", b"2026-12-01T12:30:00Z")
        h = Harness(
            ok,
            [[record(0, late), record(1, near)]],
            settings={"max_clock_skew_seconds": 3600},
            wall_clock=lambda: now,
        )
        h.run()

        assert h.handled_offsets() == [1]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type) == (0, "invalid_value")
        assert "timestamp" in letter.message

    def test_an_unexpected_error_from_validate_dead_letters_that_record_and_never_ends_the_process(
        self,
    ) -> None:
        """validate raising decimal.Overflow (not a PermanentError) for one record dead-letters it as unexpected:Overflow; the rest are handled and the runner keeps running (issue 10, finding 8)."""
        rejected_id = "00000000-0000-4000-8000-000000000002"

        def validate(event: Any) -> None:
            if event.event_id == rejected_id:
                raise decimal.Overflow("scaleb overflow")

        h = Harness(
            ok, [[record(0), record(1, event_value(rejected_id)), record(2)]], validate=validate
        )
        assert h.run() == "stop requested"

        assert h.handler_calls == [[0, 2]]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type) == (1, "unexpected:Overflow")
        assert h.stored() == [{TP: 3}]

    def test_a_critical_error_from_validate_still_stops_without_storing(self) -> None:
        """CriticalError keeps its meaning in validate: stop, store nothing."""

        def validate(event: Any) -> None:
            raise CriticalError("schema drift")

        h = Harness(ok, [[record(0)]], validate=validate)
        with pytest.raises(CriticalError):
            h.run()
        assert h.stored() == []


class TestGroupCallbacks:
    def test_a_consumer_calling_back_while_it_is_built_finds_the_loop_s_state(self) -> None:
        """The listener handed to the consumer factory is complete: an assignment delivered from inside the factory is the member's, before the loop runs."""
        calls: list[tuple[str, Any]] = []
        consumer = FakeConsumer([], calls)

        def eager(listener: RebalanceListener) -> FakeConsumer:
            listener.on_assign([TP])
            listener.after_assign([TP])
            return consumer.bind(listener)

        spec = ConsumerSpec(name="unit", group_id="unit-group", handle=ok)
        runner = Runner(
            spec, RunnerSettings(topic_prefix=TOPICS.prefix), eager, FakeProducer(calls), Bus()
        )

        assert runner.ready
        assert calls == []


class TestClose:
    def test_the_consumer_is_closed_whatever_ends_the_loop(self) -> None:
        """An exception nobody expected (here from the client's poll) still closes the consumer, without a commit, before it propagates (issue 12: close in a finally)."""
        h = Harness(ok, [[record(0)]])

        def broken(max_records: int, timeout_s: float) -> Any:
            raise RuntimeError("client bug")

        h.consumer.poll_batch = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="client bug"):
            h.run()
        assert h.names()[-1] == "close"
        assert "commit" not in h.names()

    def test_the_service_s_closers_run_after_the_consumer_on_a_clean_stop(self) -> None:
        """A clean stop commits, closes the consumer, then each of the service's closers in order."""
        h = Harness(ok, [[record(0)]], closers=("mailer", "engine"))

        assert h.run() == "stop requested"

        assert h.names()[-4:] == ["commit", "close", "closed mailer", "closed engine"]

    def test_a_failing_closer_is_logged_and_neither_stops_the_others_nor_hides_the_crash(
        self,
    ) -> None:
        """When the loop crashes every closer still runs; one that raises is logged, and the loop's own exception is the one that propagates."""
        h = Harness(ok, [[record(0)]], closers=("broken", "engine"))

        def broken(max_records: int, timeout_s: float) -> Any:
            raise RuntimeError("client bug")

        h.consumer.poll_batch = broken  # type: ignore[method-assign]
        with capture_logs() as logs, pytest.raises(RuntimeError, match="client bug"):
            h.run()

        assert h.names()[-3:] == ["close", "closed broken", "closed engine"]
        [failed] = [e for e in logs if e["event"] == "loop.close_failed"]
        assert (failed["log_level"], failed["error_type"]) == ("error", "OSError")


class TestLongBatches:
    def test_a_batch_is_handed_over_in_bounded_calls_with_the_loop_kept_alive_between(
        self,
    ) -> None:
        """With MAX_RECORDS_PER_CALL=2 a batch of 5 goes to the handler as 2+2+1 records; between calls the liveness heartbeat beats and, the poll interval run out (0 here), the consumer is polled (paused), so neither liveness nor max.poll.interval.ms can run out in a long batch; what that poll fetched is read again (issue 10, finding 7)."""
        beats: list[int] = []
        h = Harness(
            ok,
            [[record(n) for n in range(5)]],
            settings={"max_records_per_call": 2, "call_poll_interval_seconds": 0},
            while_paused=[record(5)],
        )
        h.runner._heartbeat = lambda: beats.append(len(h.handler_calls))

        h.run()

        assert h.handler_calls[:3] == [[0, 1], [2, 3], [4]]
        assert {1, 2} <= set(beats)  # beaten after the first and the second call
        names = h.names()
        first, last = names.index("handle"), len(names) - 1 - names[::-1].index("handle")
        assert "pause" in names[first:last]
        assert ("seek", (TP, 5)) in h.calls
        assert h.stored()[0] == {TP: 5}

    def test_fast_calls_of_one_batch_beat_liveness_without_pausing_the_partitions(
        self,
    ) -> None:
        """Calls quicker than CALL_POLL_INTERVAL_SECONDS are not separated by a paused poll: pausing makes librdkafka drop what it fetched ahead, and the next batch would wait for a fetch (issue 25). Liveness still beats between every two calls."""
        beats: list[int] = []
        h = Harness(
            ok,
            [[record(n) for n in range(5)]],
            settings={"max_records_per_call": 2, "call_poll_interval_seconds": 60},
        )
        h.runner._heartbeat = lambda: beats.append(len(h.handler_calls))

        h.run()

        assert h.handler_calls[:3] == [[0, 1], [2, 3], [4]]
        assert {1, 2} <= set(beats)
        assert "pause" not in h.names()
        assert h.stored()[0] == {TP: 5}


class TestRetries:
    def test_a_transient_error_pauses_retries_and_resumes(self) -> None:
        """A TransientError is retried on the same batch with every partition paused, then the partitions resume and offsets are stored."""
        failures = [TransientError("db down"), TransientError("db down")]

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(flaky, [[record(0), record(1)]])
        h.run()

        assert h.handler_calls == [[0, 1], [0, 1], [0, 1]]
        assert [(r.kind, r.attempt) for r in h.of(RetryScheduled)] == [
            ("transient", 1),
            ("transient", 2),
        ]
        names = h.names()
        assert names.index("pause") < names.index("resume") < names.index("store")
        assert h.of(RecordDeadLettered) == []
        assert h.stored() == [{TP: 2}]

    def test_each_failed_attempt_is_classified_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The retry policy asks the decision table once per failed attempt, not once per question (retry, stop, announce)."""
        asked: list[BaseException] = []

        def counted(error: BaseException, transient: tuple[type[BaseException], ...]) -> Any:
            asked.append(error)
            return failures.decide(error, transient)

        monkeypatch.setattr(retry, "decide", counted)
        outage, bug = TransientError("db down"), ValueError("bug")
        errors: list[Exception] = [outage, bug]

        def flaky(_batch: Sequence[Inbound]) -> None:
            if errors:
                raise errors.pop(0)

        h = Harness(flaky, [[record(0)]])
        h.run()

        assert asked == [outage, bug]
        assert [(r.kind, r.attempt) for r in h.of(RetryScheduled)] == [
            ("transient", 1),
            ("unexpected", 2),
        ]
        assert h.handled_offsets() == [0]

    def test_an_outage_is_reported_while_it_lasts_and_cleared_once_a_batch_succeeds(
        self,
    ) -> None:
        """While a transient error is being retried the runner names it (readiness then fails: the service cannot do useful work); the first success clears it (issue 10, finding 3)."""
        failures = [TransientError("db down")]
        seen: list[str | None] = []

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(flaky, [[record(0)], [record(1)]])
        h.bus.subscribe(
            lambda e: seen.append(h.runner.outage) if isinstance(e, RetryScheduled) else None
        )
        h.run()

        assert seen == ["TransientError: db down"]
        assert h.runner.outage is None

    def test_a_declared_transient_error_is_retried_without_limit(self) -> None:
        """A service-declared transient error is retried past max_attempts and never dead-lettered."""
        failures = [DriverError("driver")] * 5

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(flaky, [[record(0)]], transient=(DriverError,))
        h.run()

        assert len(h.handler_calls) == 6
        assert h.handled_offsets() == [0]
        assert h.of(RecordDeadLettered) == []

    def test_a_failing_record_is_isolated_and_dead_lettered_after_max_attempts(self) -> None:
        """In a batch of 3, a record whose handling raises ValueError is retried alone 3 times and dead-lettered while its neighbours are handled."""

        def buggy(batch: Sequence[Inbound]) -> None:
            if any(i.record.offset == 1 for i in batch):
                raise ValueError("bug on offset 1")

        h = Harness(buggy, [[record(0), record(1), record(2)]])
        h.run()

        assert h.handler_calls == [[0, 1, 2], [0], [1], [1], [1], [2]]
        assert sorted(h.handled_offsets()) == [0, 2]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type, letter.attempts) == (
            1,
            "unexpected:ValueError",
            3,
        )
        assert header(h.producer.sent[0], "dlq.attempts") == "3"
        assert [r.kind for r in h.of(RetryScheduled)] == ["unexpected", "unexpected"]
        assert h.stored() == [{TP: 3}]

    def test_a_failing_dlq_write_is_retried_and_the_record_never_skipped(self) -> None:
        """A DLQ write failing transiently is retried until acknowledged, and only then is the offset stored."""
        h = Harness(
            ok,
            [[record(0, b"[]"), record(1)]],
            dlq_failures=[TransientError("unacknowledged")] * 3,
        )
        h.run()

        assert h.names().count("send_failed") == 3
        assert len(h.producer.sent) == 1
        assert h.names().index("send") < h.names().index("store")
        assert h.stored() == [{TP: 2}]

    def test_a_dlq_write_failing_with_a_bug_stops_without_storing(self) -> None:
        """A DLQ write raising a non-transient error stops the loop with CriticalError and stores nothing."""
        h = Harness(ok, [[record(0, b"[]")]], dlq_failures=[RuntimeError("serializer bug")] * 5)

        with pytest.raises(CriticalError, match="cannot write to the DLQ"):
            h.run()

        assert h.stored() == []
        assert "commit" not in h.names()

    def test_records_fetched_while_pausing_are_read_again_after_resuming(self) -> None:
        """Records a paused poll still returns are not handled then, and the partition is rewound to them on resume."""
        failures = [TransientError("db down")]

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(flaky, [[record(0)]], while_paused=[record(1), record(2)])
        h.run()

        assert h.handler_calls == [[0], [0]]
        assert ("seek", (TP, 1)) in h.calls
        assert h.names().index("resume") < h.names().index("seek")

    def test_the_first_retry_waits_about_retry_initial_seconds(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The first retry is scheduled at most twice retry_initial_seconds away, even with the largest jitter."""
        monkeypatch.setattr(random, "uniform", lambda _low, high: high)  # worst-case jitter

        def down(_batch: Sequence[Inbound]) -> None:
            raise TransientError("db down")

        h = Harness(
            down, [[record(0)]], settings={"retry_initial_seconds": 0.01, "retry_max_seconds": 60}
        )
        h.bus.subscribe(lambda e: h.runner.stop() if isinstance(e, RetryScheduled) else None)

        assert h.run() == "stop requested during retry"

        [retry] = h.of(RetryScheduled)
        assert retry.delay_s <= 0.02 + 1e-9

    def test_records_of_a_partition_revoked_during_a_retry_are_neither_handled_nor_stored(
        self,
    ) -> None:
        """When a rebalance takes a partition away during a retry wait, the retry handles only the records still owned and stores only their offsets."""
        other = TopicPartition(TOPIC, 1)
        failures = [TransientError("db down")]

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(flaky, [[record(0), record(0, tp=other)]], revoke_while_paused=[other])
        h.run()

        assert h.handler_calls == [[0, 0], [0]]
        assert [i.record.tp for e in h.of(BatchHandled) for i in e.handled] == [TP]
        assert h.stored() == [{TP: 1}]

    def test_a_partition_revoked_while_paused_is_read_again_when_assigned_back_after_the_retry(
        self,
    ) -> None:
        """A partition revoked during a retry wait keeps librdkafka's pause; assigned back once
        the retry is over, it is resumed and its records are handled (the short network chaos
        run: a notification member read nothing more from the partitions it got back)."""
        other = TopicPartition(TOPIC, 1)
        failures = [TransientError("db down")]

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(
            flaky,
            [[record(0), record(0, tp=other)], [record(1, tp=other)]],
            revoke_while_paused=[other],
            reassign_after_resume=[other],
        )
        h.run()

        assert [(i.record.tp, i.record.offset) for e in h.of(BatchHandled) for i in e.handled] == [
            (TP, 0),
            (other, 1),
        ]
        assert not h.consumer.paused & h.consumer.assigned

    def test_a_letter_too_large_for_the_dlq_is_replaced_by_a_marker_that_can_still_be_found(
        self,
    ) -> None:
        """A record whose letter the producer refuses for good (MSG_SIZE_TOO_LARGE) gets a marker letter instead: value replaced, original size, SHA-256 and position in the headers; it is not retried for ever and the next record goes on (issue 10, finding 6)."""
        huge = b"x" * 2_000
        h = Harness(ok, [[record(0, huge), record(1)]], max_value_bytes=1_000)
        h.run()

        assert h.handled_offsets() == [1]
        [marker] = h.producer.sent
        assert marker.value is not None
        assert len(marker.value) < 1_000
        assert header(marker, dlq.H_VALUE_OMITTED) == "MSG_SIZE_TOO_LARGE"
        assert header(marker, dlq.H_ORIGINAL_SIZE) == "2000"
        assert header(marker, dlq.H_ORIGINAL_SHA256) == hashlib.sha256(huge).hexdigest()
        assert (header(marker, dlq.H_OFFSET), header(marker, dlq.H_ERROR_TYPE)) == ("0", "not_json")
        [letter] = h.of(RecordDeadLettered)
        assert letter.record.offset == 0
        assert h.stored() == [{TP: 2}]

    def test_an_isolated_bad_record_is_dead_lettered_before_the_records_after_it_are_handled(
        self,
    ) -> None:
        """When a failing batch is split, the bad record's DLQ copy is acknowledged before any later record's effect is made, so no stored offset (Kafka's or a service's own) can pass an unwritten letter (issue 10, finding 1)."""

        def strict(batch: Sequence[Inbound]) -> None:
            if any(i.record.offset == 1 for i in batch):
                raise ValueError("NUL in errorCode")

        h = Harness(strict, [[record(0), record(1), record(2)]])
        h.run()

        assert h.handled_offsets() == [0, 2]
        assert h.calls.index(("send", 1)) < h.calls.index(("handle", [2]))
        assert h.stored() == [{TP: 3}]

    def test_a_partition_revoked_and_assigned_back_during_retries_stores_no_offset_for_the_batch(
        self,
    ) -> None:
        """A partition revoked in one retry wait and assigned back in a later one was not continuously ours: the batch's records on it are neither handled nor stored; they come again from its committed offset (issue 10, finding 2)."""
        other = TopicPartition(TOPIC, 1)
        failures = [TransientError("db down"), TransientError("db down")]

        def flaky(_batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop(0)

        h = Harness(
            flaky,
            [[record(0), record(0, tp=other)]],
            revoke_while_paused=[other],
            reassign_while_paused=[other],
        )
        h.run()

        assert [i.record.tp for e in h.of(BatchHandled) for i in e.handled] == [TP]
        assert h.stored() == [{TP: 1}]

    def test_a_permanent_error_raised_by_a_batch_handler_dead_letters_only_its_record(
        self,
    ) -> None:
        """A batch handler raising PermanentError has its batch retried record by record, and only the record that raises is dead-lettered, with the error's type."""

        def strict(batch: Sequence[Inbound]) -> None:
            if any(i.record.offset == 2 for i in batch):
                raise PermanentError("refund exceeds payment", error_type="refund_too_large")

        h = Harness(strict, [[record(0), record(1), record(2)]])
        h.run()

        assert h.handler_calls == [[0, 1, 2], [0], [1], [2]]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type, letter.attempts) == (
            2,
            "refund_too_large",
            1,
        )
        assert h.of(RetryScheduled) == []


class TestDeferredRecords:
    """A record the handler returns as `RetryLater`: retried alone by the loop, then given up."""

    @staticmethod
    def deferring(
        offsets: set[tuple[int, int]],
        times: int | None = None,
        given_up: list[int] | None = None,
    ) -> Callable[[Sequence[Inbound]], dict[Inbound, RetryLater]]:
        """A handler deferring the records at (partition, offset) in `offsets`, `times` calls
        each (None: for ever); `given_up` collects the offsets whose give_up the loop called."""
        calls: dict[tuple[int, int], int] = {}

        def handle(batch: Sequence[Inbound]) -> dict[Inbound, RetryLater]:
            later = {}
            for i in batch:
                key = (i.record.partition, i.record.offset)
                if key not in offsets:
                    continue
                calls[key] = calls.get(key, 0) + 1
                if times is None or calls[key] <= times:
                    later[i] = RetryLater(
                        "452 mailbox over quota",
                        error_type="svc_deferred",
                        give_up=None if given_up is None else partial(given_up.append, key[1]),
                    )
            return later

        return handle

    def test_a_deferred_record_is_retried_alone_until_it_goes_through(self) -> None:
        """A record deferred twice is handed back alone, after a backoff announced as "deferred", while its neighbours are handled once; nothing is dead-lettered and the offsets are stored once the batch is settled."""
        h = Harness(self.deferring({(0, 1)}, times=2), [[record(0), record(1), record(2)]])
        h.run()

        assert h.handler_calls == [[0, 1, 2], [1], [1]]
        assert h.handled_offsets() == [0, 2, 1]
        assert [
            (r.kind, r.attempt, [x.offset for x in r.records]) for r in h.of(RetryScheduled)
        ] == [
            ("deferred", 1, [1]),
            ("deferred", 2, [1]),
        ]
        assert h.of(RecordDeadLettered) == []
        names = h.names()
        assert names.index("pause") < names.index("resume") < names.index("store")
        assert h.stored() == [{TP: 3}]

    def test_a_record_deferred_record_attempts_times_is_given_up_once_and_dead_lettered(
        self,
    ) -> None:
        """With record_attempts=3 a record deferred on every call is called 3 times, its give_up called once, and it is dead-lettered once under the declared error type, the message saying how many attempts and why; the offsets are stored after the letter."""
        given_up: list[int] = []
        h = Harness(
            self.deferring({(0, 1)}, given_up=given_up), [[record(0), record(1), record(2)]]
        )
        h.run()

        assert h.handler_calls == [[0, 1, 2], [1], [1]]
        assert given_up == [1]
        assert h.handled_offsets() == [0, 2]
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type, letter.attempts) == (1, "svc_deferred", 3)
        assert letter.message == "deferred 3 times: 452 mailbox over quota"
        assert header(h.producer.sent[0], "dlq.attempts") == "3"
        assert h.names().index("send") < h.names().index("store")
        assert h.stored() == [{TP: 3}]

    def test_the_declared_record_attempts_bounds_the_calls(self) -> None:
        """A spec declaring record_attempts=1 gives up on a deferred record at once, without waiting."""
        h = Harness(self.deferring({(0, 0)}), [[record(0)]], record_attempts=1)
        h.run()

        assert h.handler_calls == [[0]]
        assert h.of(RetryScheduled) == []
        [letter] = h.of(RecordDeadLettered)
        assert (letter.error_type, letter.attempts) == ("svc_deferred", 1)

    def test_a_batchs_letters_are_written_before_its_deferred_records_are_tried_again(
        self,
    ) -> None:
        """A record rejected for good beside a deferred one has its letter acknowledged before the deferred record is handed back: a service that stores its offsets with its effects (exactly once) must never store one past a record whose letter is not written."""

        def handle(batch: Sequence[Inbound]) -> dict[Inbound, PermanentError | RetryLater]:
            verdicts: dict[Inbound, PermanentError | RetryLater] = {}
            for i in batch:
                if i.record.offset == 0:
                    verdicts[i] = PermanentError("refused", error_type="svc_refused")
                elif i.record.offset == 1 and len(batch) > 1:  # deferred on the first call
                    verdicts[i] = RetryLater("451 try later", error_type="svc_deferred")
            return verdicts

        h = Harness(handle, [[record(0), record(1), record(2)]])
        h.run()

        assert h.handler_calls == [[0, 1, 2], [1]]
        names = h.names()
        second_call = next(n for n, c in enumerate(h.calls) if c == ("handle", [1]))
        assert names.index("send") < second_call
        [letter] = h.of(RecordDeadLettered)
        assert (letter.record.offset, letter.error_type) == (0, "svc_refused")

    def test_a_give_up_failing_transiently_is_retried_under_the_policy(self) -> None:
        """A give_up raising a TransientError (the database down) is retried until it succeeds; the record is dead-lettered once."""
        failures = [TransientError("db down")]
        given_up: list[int] = []

        def give_up() -> None:
            if failures:
                raise failures.pop(0)
            given_up.append(0)

        def handle(batch: Sequence[Inbound]) -> dict[Inbound, RetryLater]:
            return {i: RetryLater("4xx", error_type="svc_deferred", give_up=give_up) for i in batch}

        h = Harness(handle, [[record(0)]], record_attempts=2)
        h.run()

        assert given_up == [0]
        assert [r.kind for r in h.of(RetryScheduled)] == ["deferred", "transient"]
        assert len(h.of(RecordDeadLettered)) == 1

    def test_a_deferred_record_of_a_partition_revoked_during_the_wait_is_dropped(self) -> None:
        """A record deferred on a partition a rebalance takes away during the wait is neither handed to the handler again nor given up nor dead-lettered, and its offset is not stored."""
        other = TopicPartition(TOPIC, 1)
        given_up: list[int] = []
        h = Harness(
            self.deferring({(1, 0)}, given_up=given_up),
            [[record(0), record(0, tp=other)]],
            revoke_while_paused=[other],
        )
        h.run()

        assert h.handler_calls == [[0, 0]]
        assert given_up == []
        assert h.of(RecordDeadLettered) == []
        assert h.stored() == [{TP: 1}]

    def test_stop_during_a_deferral_wait_leaves_without_storing_the_batch(self) -> None:
        """stop() while the loop waits to call a deferred record again ends the loop: the batch's offsets are not stored (its records come again), nothing is given up or dead-lettered, and the stored offsets are committed."""
        given_up: list[int] = []
        h = Harness(
            self.deferring({(0, 1)}, given_up=given_up),
            [[record(0), record(1)]],
            settings={"retry_initial_seconds": 5},
        )
        h.bus.subscribe(lambda e: h.runner.stop() if isinstance(e, RetryScheduled) else None)

        assert h.run() == "stop requested during retry"

        assert h.handler_calls == [[0, 1]]
        assert given_up == []
        assert h.of(RecordDeadLettered) == []
        assert h.stored() == []
        assert h.names()[-2:] == ["commit", "close"]

    def test_a_batch_with_nothing_deferred_waits_for_nothing(self) -> None:
        """Records rejected with PermanentError beside no RetryLater are dead-lettered at once, with no deferral wait."""

        def reject(batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
            return {batch[0]: PermanentError("no", error_type="svc_no")}

        h = Harness(reject, [[record(0), record(1)]])
        h.run()

        assert h.handler_calls == [[0, 1]]
        assert h.of(RetryScheduled) == []
        assert "pause" not in h.names()


class TestUntilDurable:
    """`common.retry.until_durable`: what a handler must make durable within its call."""

    def test_a_transient_failure_is_retried_within_the_handler_call(self) -> None:
        """Under the loop, a function failing transiently twice is retried by the loop's policy inside the one handler call, announced as transient retries, every partition paused; the handler is not called again."""
        failures = [TransientError("db down"), TransientError("db down")]
        done: list[int] = []

        def write() -> None:
            if failures:
                raise failures.pop(0)
            done.append(1)

        def handle(batch: Sequence[Inbound]) -> None:
            retry.until_durable(write)

        h = Harness(handle, [[record(0), record(1)]])
        h.run()

        assert h.handler_calls == [[0, 1]]
        assert done == [1]
        assert [(r.kind, [x.offset for x in r.records]) for r in h.of(RetryScheduled)] == [
            ("transient", [0, 1]),
            ("transient", [0, 1]),
        ]
        assert "pause" in h.names()
        assert h.stored() == [{TP: 2}]

    def test_any_other_error_is_raised_as_it_is(self) -> None:
        """A function raising a bug is not retried by until_durable: the error leaves the handler as raised, and the loop applies its table (bounded retries, then the DLQ)."""
        calls: list[int] = []

        def write() -> None:
            calls.append(1)
            raise ValueError("bug")

        h = Harness(lambda _batch: retry.until_durable(write), [[record(0)]])
        h.run()

        assert len(calls) == 3  # MAX_ATTEMPTS handler calls, one write each
        [letter] = h.of(RecordDeadLettered)
        assert letter.error_type == "unexpected:ValueError"

    def test_without_a_loop_the_function_is_called_once(self) -> None:
        """Outside a handler call of the run loop (a unit test of a handler), until_durable calls the function once and lets its error through."""
        with pytest.raises(TransientError):
            retry.until_durable(lambda: (_ for _ in ()).throw(TransientError("db down")))
        assert retry.until_durable(lambda: 42) == 42


class TestStopping:
    def test_a_handler_raising_shutdown_requested_ends_the_loop_without_storing(self) -> None:
        """A handler told to stop (on_stop) raises ShutdownRequested: not retried even for a single record, the batch is not stored, the stored offsets are committed and the loop says why."""

        def stopping(_batch: Sequence[Inbound]) -> None:
            raise ShutdownRequested("stopping: no new email is sent")

        h = Harness(stopping, [[record(0)]])

        assert h.run() == "stopping: no new email is sent"

        assert h.handler_calls == [[0]]
        assert h.of(RetryScheduled) == []
        assert h.stored() == []
        assert h.names()[-2:] == ["commit", "close"]

    def test_stop_during_a_retry_wait_leaves_without_storing_the_batch_in_hand(self) -> None:
        """stop() while a transient retry waits ends the loop at once, commits and closes, and stores nothing for the failing batch."""

        def down(_batch: Sequence[Inbound]) -> None:
            raise TransientError("db down")

        h = Harness(down, [[record(0)]], settings={"retry_initial_seconds": 5})
        h.bus.subscribe(lambda e: h.runner.stop() if isinstance(e, RetryScheduled) else None)

        assert h.run() == "stop requested during retry"

        assert h.stored() == []
        assert h.names()[-2:] == ["commit", "close"]

    def test_a_critical_error_stops_without_storing_or_committing(self) -> None:
        """A handler raising CriticalError stops the loop: nothing stored, nothing committed, the consumer closed."""

        def critical(_batch: Sequence[Inbound]) -> None:
            raise CriticalError("ledger out of balance")

        h = Harness(critical, [[record(0), record(1)]])

        with pytest.raises(CriticalError, match="ledger"):
            h.run()

        assert h.stored() == []
        assert "commit" not in h.names()
        assert h.names()[-1] == "close"
        [stopped] = h.of(LoopStopped)
        assert stopped.reason.startswith("critical error")

    def test_a_clean_stop_commits_then_closes(self) -> None:
        """After stop(), the loop commits the stored offsets, then closes the consumer."""
        h = Harness(ok, [[record(0)]])

        h.run()

        assert h.names()[-3:] == ["store", "commit", "close"]
        assert h.of(OffsetsStored)[0].offsets == {TP: 1}

    def test_a_fatal_client_error_stops_the_loop(self) -> None:
        """A fatal error from the client becomes CriticalError and nothing is committed."""
        fatal = ClientError("_FENCED", "fenced by a newer instance", True, None)
        h = Harness(ok, [], errors=[fatal])

        with pytest.raises(CriticalError, match="_FENCED"):
            h.run()

        assert "commit" not in h.names()
