"""Fatal client errors (issue 22, findings 2-4): they end the process, named, never as a record's bug.

No broker, and no ACLs: the clients under `KafkaProducer` and `KafkaConsumer` are fakes of
`confluent_kafka.Producer` and `Consumer` that do what librdkafka and confluent-kafka do once
a client is fatal (see `common.kafka.fatal`):

* an idempotent producer refused its producer id (`CLUSTER_AUTHORIZATION_FAILED`, no WRITE
  ACL) is fatal. confluent-kafka's C `error_cb` reads `rd_kafka_fatal_error()` and *sets* a
  `KafkaException` (the real code, `fatal()` true) instead of calling Python, and leaves it
  pending: a delivery callback served by the same `flush()` fails on `KafkaError.code()`
  with a `SystemError` caused by it, which `flush()` raises. Once fatal, `produce()` raises
  `_FATAL` ("Local: Fatal error", `fatal()` false) and the cause waits in the queue for the
  next `poll()`.
* a static member fenced by another with the same `group.instance.id` gets a consumed
  message whose error is `_FATAL`, `fatal()` false, text `Fatal error: <cause>: <detail>`.

The ACL case itself is not run on a secured broker here (the suite has none yet); the fenced
consumer is, in tests/integration/test_runner.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from common import service
from common.errors import FatalClientError
from common.handlers import ConsumerSpec
from common.health import Liveness
from common.kafka import ClientError, KafkaConsumer, KafkaProducer, RebalanceListener
from common.lifecycle import Bus, ConsumerError, LifecycleEvent, LoopStopped, RecordDeadLettered
from common.logs import LogSubscriber
from common.records import OutboundRecord
from common.runner import Runner
from common.settings import RunnerSettings
from tests.unit.test_runner_decisions import TOPICS, TP, FakeConsumer, ok, record

PID_REFUSED = (
    "Failed to acquire idempotence PID from broker localhost:9092/1: "
    "Broker: Cluster authorization failed"
)
FENCED = (
    "Fatal error: Broker: Static consumer fenced by other consumer with same "
    "group.instance.id: Fatal consumer error: JoinGroup failed"
)


def fatal_cause() -> KafkaException:
    """What confluent-kafka's C error_cb raises for `_FATAL`: the cause read, `fatal()` true."""
    return KafkaException(
        KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED, PID_REFUSED, fatal=True)
    )


class PendingKafkaError:
    """A `KafkaError` handed to a delivery callback while an exception is pending.

    Every C method returns a result with the exception still set, which CPython turns into
    `SystemError` caused by the pending exception (`_Py_CheckFunctionResult`).
    """

    def __init__(self, pending: BaseException) -> None:
        self._pending = pending

    def _fail(self, method: str) -> SystemError:
        error = SystemError(
            f"<built-in method {method} of cimpl.KafkaError object at 0x7f>"
            " returned a result with an exception set"
        )
        error.__cause__ = error.__context__ = self._pending
        return error

    def code(self) -> int:
        raise self._fail("code")

    def name(self) -> str:
        raise self._fail("name")

    def str(self) -> str:
        raise self._fail("str")

    def fatal(self) -> bool:
        raise self._fail("fatal")


class FatalProducerClient:
    """`confluent_kafka.Producer` whose idempotent producer is refused its producer id.

    `fatal_at_start`: librdkafka failed the id before the first write, so `produce()`
    raises `_FATAL` and the cause waits for a `poll()`/`flush()`. Otherwise the id fails
    while the first write is in flight: `flush()` serves the error first (exception set,
    left pending), then the message's delivery report, whose callback meets the pending
    exception on `err.code()`.
    """

    def __init__(self, config: dict[str, Any], *, fatal_at_start: bool) -> None:
        self.config = config
        self.fatal = fatal_at_start
        self.cause_queued = fatal_at_start
        self.in_flight: list[Callable[..., None]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        if self.fatal:
            raise KafkaException(KafkaError(KafkaError._FATAL))  # rd_kafka_producev's answer
        self.in_flight.append(kwargs["on_delivery"])

    def poll(self, _timeout: float = 0) -> int:
        return self._serve()

    def flush(self, _timeout: float = 0) -> int:
        if self.in_flight and not self.fatal:  # the producer id is refused now
            self.fatal = self.cause_queued = True
        return self._serve()

    def _serve(self) -> int:
        if not self.cause_queued:
            return 0
        self.cause_queued = False
        pending = fatal_cause()  # set by error_cb, never fetched
        raised: BaseException = pending
        for report in self.in_flight:
            try:
                report(PendingKafkaError(pending), None)
            except BaseException as exc:  # CallState_fetch_exception keeps the last one
                raised = exc
        self.in_flight.clear()
        raise raised


def fake_producer(
    monkeypatch: pytest.MonkeyPatch, *, fatal_at_start: bool
) -> tuple[KafkaProducer, FatalProducerClient]:
    clients: list[FatalProducerClient] = []

    def build(config: dict[str, Any]) -> FatalProducerClient:
        clients.append(FatalProducerClient(config, fatal_at_start=fatal_at_start))
        return clients[0]

    monkeypatch.setattr("common.kafka.producer.Producer", build)
    return KafkaProducer({"bootstrap.servers": "unused:9092"}, name="DLQ producer"), clients[0]


LETTER = OutboundRecord(topic="dlq", key=b"k", value=b"v", headers=())


class TestTheProducerAdapter:
    def test_a_fatal_error_met_by_the_first_dlq_write_is_a_fatal_client_error_naming_authorization(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The producer id refused while the first letter is in flight: the pending exception's SystemError becomes FatalClientError(CLUSTER_AUTHORIZATION_FAILED), saying authorization (finding 3)."""
        producer, _client = fake_producer(monkeypatch, fatal_at_start=False)

        with pytest.raises(FatalClientError) as raised:
            producer.send_confirmed([LETTER])

        assert raised.value.code == "CLUSTER_AUTHORIZATION_FAILED"
        assert raised.value.authorization
        assert str(raised.value).startswith("DLQ producer: authorization failed")

    def test_a_producer_fatal_before_the_write_names_the_cause_not_local_fatal_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """produce() raising _FATAL (fatal() false) is fatal too, and the cause is read from the client, not "Local: Fatal error" retried forever (finding 2)."""
        producer, _client = fake_producer(monkeypatch, fatal_at_start=True)

        with pytest.raises(FatalClientError) as raised:
            producer.send_confirmed([LETTER])

        assert raised.value.code == "CLUSTER_AUTHORIZATION_FAILED"
        assert "Cluster authorization failed" in str(raised.value)

    def test_once_fatal_every_later_write_fails_with_the_same_cause(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """After the fatal error was read, the next write raises the same named cause at once."""
        producer, _client = fake_producer(monkeypatch, fatal_at_start=False)
        with pytest.raises(FatalClientError):
            producer.send_confirmed([LETTER])

        with pytest.raises(FatalClientError, match="CLUSTER_AUTHORIZATION_FAILED"):
            producer.send_confirmed([LETTER])

    def test_check_raises_the_fatal_error_the_producer_met_at_start(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """`check()` serves the producer's queue: a fatal error raised at start shows before any DLQ write (finding 2)."""
        producer, _client = fake_producer(monkeypatch, fatal_at_start=True)

        with pytest.raises(FatalClientError, match="CLUSTER_AUTHORIZATION_FAILED"):
            producer.check()

    def test_a_system_error_without_a_kafka_cause_is_a_client_failure(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Any SystemError out of the client is a FatalClientError (CLIENT_FAILURE), never a record's bug."""
        producer, client = fake_producer(monkeypatch, fatal_at_start=False)

        def broken(_timeout: float = 0) -> int:
            raise SystemError("error return without exception set")

        client.poll = broken  # type: ignore[method-assign]

        with pytest.raises(FatalClientError, match="CLIENT_FAILURE"):
            producer.check()


class FakeMessage:
    def __init__(self, error: KafkaError) -> None:
        self._error = error

    def error(self) -> KafkaError:
        return self._error

    def topic(self) -> str | None:
        return None


class FencedConsumerClient:
    """`confluent_kafka.Consumer` of a fenced static member: one `_FATAL` message error."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def consume(self, _n: int, _timeout: float) -> list[FakeMessage]:
        return [FakeMessage(KafkaError(KafkaError._FATAL, FENCED))]


class TestTheConsumerAdapter:
    def test_a__fatal_message_error_with_fatal_false_is_reported_fatal_with_its_cause(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """librdkafka's consumer error `_FATAL` (fatal() false) comes back fatal, its cause FENCED_INSTANCE_ID read from it (finding 4)."""
        monkeypatch.setattr("common.kafka.consumer.Consumer", FencedConsumerClient)
        consumer = KafkaConsumer({"group.id": "g"}, RebalanceListener())

        _records, [error] = consumer.poll_batch(10, 0.1)

        assert error.fatal
        assert error.code == "FENCED_INSTANCE_ID"
        assert "Static consumer fenced" in error.message

    def test_a_system_error_out_of_consume_is_a_fatal_client_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A SystemError raised by consume() is FatalClientError (CLIENT_FAILURE) for the loop, not an unknown crash."""

        class BrokenConsumerClient(FencedConsumerClient):
            def consume(self, _n: int, _timeout: float) -> list[FakeMessage]:
                raise SystemError("error return without exception set")

        monkeypatch.setattr("common.kafka.consumer.Consumer", BrokenConsumerClient)
        consumer = KafkaConsumer({"group.id": "g"}, RebalanceListener())

        with pytest.raises(FatalClientError, match="CLIENT_FAILURE") as raised:
            consumer.poll_batch(10, 0.1)

        assert raised.value.client == "consumer"


# -- the run loop and the process -------------------------------------------------------


class Loop:
    """A runner over `FakeConsumer` and a real `KafkaProducer` on a fatal client, logged."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        batches: Sequence[Sequence[Any]],
        *,
        fatal_at_start: bool,
        errors: Sequence[ClientError] = (),
    ) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.events: list[LifecycleEvent] = []
        self.consumer = FakeConsumer(batches, self.calls, errors=errors)
        self.producer, self.client = fake_producer(monkeypatch, fatal_at_start=fatal_at_start)
        self.settings = RunnerSettings(
            topic_prefix=TOPICS.prefix,
            retry_initial_seconds=0.001,
            retry_max_seconds=0.004,
            kafka={},
        )
        self.spec = ConsumerSpec(name="unit", group_id="unit-group", handle=ok)
        self.runner = Runner(
            self.spec,
            self.settings,
            self.consumer.bind,
            self.producer,
            Bus([self.events.append, LogSubscriber()]),
            client_check=self.producer.check,
        )
        self.consumer.on_drained = self.runner.stop

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class TestTheRunLoop:
    def test_a_fatal_dlq_write_stops_the_loop_after_committing_what_is_durable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A poison record whose letter meets the fatal producer: the loop stops with FatalClientError, commits the offsets stored before, stores none for the poison batch (findings 2, 3)."""
        loop = Loop(monkeypatch, [[record(0)], [record(1, b"not json")]], fatal_at_start=False)

        with pytest.raises(FatalClientError, match="CLUSTER_AUTHORIZATION_FAILED"):
            loop.runner.run()

        stored = [args for name, args in loop.calls if name == "store"]
        assert stored == [{TP: 1}]
        assert [name for name, _ in loop.calls][-2:] == ["commit", "close"]
        [error] = loop.of(ConsumerError)
        assert (error.code, error.fatal) == ("CLUSTER_AUTHORIZATION_FAILED", True)
        assert "authorization" in error.message
        assert loop.of(RecordDeadLettered) == []
        [stopped] = loop.of(LoopStopped)
        assert stopped.reason == "fatal client error"

    def test_a_dlq_producer_fatal_at_start_stops_the_loop_before_any_poison_record(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The producer refused its id at start: the loop's client check finds it with no DLQ write at all, so the orchestrator restarts the process (finding 2)."""
        loop = Loop(monkeypatch, [[record(0)]] * 3, fatal_at_start=True)

        with pytest.raises(FatalClientError, match="CLUSTER_AUTHORIZATION_FAILED"):
            loop.runner.run()

        assert loop.runner.fatal is not None
        assert loop.consumer.polls == 0  # found before the first poll, no letter needed

    def test_a_fatal_consumer_error_stops_the_loop_without_a_commit(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A fatal consumer error (fenced) ends the loop with FatalClientError naming it; the dead consumer is not asked to commit (finding 4)."""
        fenced = ClientError("FENCED_INSTANCE_ID", FENCED, True, None)
        loop = Loop(monkeypatch, [], fatal_at_start=False, errors=[fenced])

        with pytest.raises(FatalClientError, match="FENCED_INSTANCE_ID"):
            loop.runner.run()

        assert "commit" not in [name for name, _ in loop.calls]
        [error] = loop.of(ConsumerError)
        assert error.fatal


class TestTheProcess:
    def test_a_fatal_client_error_exits_1_with_one_log_line_naming_the_cause(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The process ends with exit code 1 and exactly one log line naming CLUSTER_AUTHORIZATION_FAILED, which says authorization, with no traceback (findings 2, 3)."""
        loop = Loop(monkeypatch, [[record(1, b"not json")]], fatal_at_start=False)

        with capture_logs() as entries:
            code = service.run_loop(loop.runner)

        assert code == service.EXIT_FAILURE
        naming = [e for e in entries if "CLUSTER_AUTHORIZATION_FAILED" in repr(e)]
        assert len(naming) == 1, entries
        assert "authorization" in repr(naming[0])
        assert not any("exc_info" in e for e in entries)

    def test_liveness_and_readiness_fail_once_a_client_is_fatal(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """/healthz turns 503 as soon as the runner met a fatal client error, and /readyz names it."""
        loop = Loop(monkeypatch, [[record(0)]], fatal_at_start=True)
        health = service.health_server(
            loop.runner, loop.spec, loop.settings, CollectorRegistry(), Liveness(60.0)
        )
        assert health.respond("/healthz", None)[0] == 200

        with pytest.raises(FatalClientError):
            loop.runner.run()

        assert health.respond("/healthz", None)[0] == 503
        status, _type, body = health.respond("/readyz", None)
        assert status == 503
        assert b"CLUSTER_AUTHORIZATION_FAILED" in body

    def test_readyz_names_every_failing_cause(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """/readyz lists each failing check at once: no assignment yet, and a DLQ path that cannot be written (finding 5)."""
        loop = Loop(monkeypatch, [], fatal_at_start=False)
        health = service.health_server(
            loop.runner,
            loop.spec,
            loop.settings,
            CollectorRegistry(),
            Liveness(60.0),
            dlq_path=lambda: "no WRITE permission on unit-dlq",
            client_cause=lambda: None,
        )

        status, _type, body = health.respond("/readyz", None)

        assert status == 503
        checks = json.loads(body)["checks"]
        assert checks["partitions_assigned"] == "waiting for assignment"
        assert checks["dlq_path"] == "authorization failed: no WRITE"  # the topic is logged
        assert checks["client"] == "ok"


class TestDlqPathCheck:
    def test_a_failing_dlq_path_is_checked_again_until_it_passes_then_left_alone(self) -> None:
        """The check repeats while it fails (a topic created, an ACL granted later turn readiness green) and stops once it passes (finding 5)."""
        answers = ["authorization: no WRITE permission on DLQ topic d", None]
        asked: list[str] = []
        done = threading.Event()

        def check(_config: dict[str, str], topic: str) -> str | None:
            asked.append(topic)
            answer = answers.pop(0)
            if answer is None:
                done.set()
            return answer

        path = service.DlqPathCheck({}, "d", interval_s=0.0, check=check)
        assert path.problem() == "checking that DLQ topic d can be written"

        path.start()
        assert done.wait(5.0)
        path._thread.join(5.0)

        assert not path._thread.is_alive()
        assert asked == ["d", "d"]
        assert path.problem() is None

    def test_stop_returns_only_once_an_in_flight_check_has_ended(self) -> None:
        """`stop()` waits for a check still talking to the broker, so no client of it outlives the interpreter (a librdkafka thread calling into a finalizing Python crashes the process on exit)."""
        entered, release = threading.Event(), threading.Event()

        def check(_config: dict[str, str], _topic: str) -> str | None:
            entered.set()
            release.wait(5.0)
            return "DLQ topic d does not exist"

        path = service.DlqPathCheck({}, "d", check=check)
        path.start()
        assert entered.wait(5.0)
        threading.Timer(0.2, release.set).start()

        path.stop()

        assert release.is_set()
        assert not path._thread.is_alive()

    def test_a_check_that_raises_is_a_named_problem_without_its_text(self) -> None:
        """An exception inside the check makes the DLQ path a problem naming its type only (no client text, no secret)."""

        def check(_config: dict[str, str], _topic: str) -> str | None:
            raise RuntimeError("sasl.password=hunter2")

        path = service.DlqPathCheck({}, "d", check=check)

        assert path.check_once() == "DLQ check failed: RuntimeError"
