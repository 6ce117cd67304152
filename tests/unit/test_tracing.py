"""Tracing of the run loop (common.tracing) on the in-memory consumer and producer.

Spans go to the SDK's `InMemorySpanExporter` (the `tracing` extra is part of `dev`: without
it these tests fail, they do not skip). The runner is `test_runner_decisions.Harness`, whose
tracer `common.runner.from_env` would build from `OTEL_*`: the tests hand it theirs.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from common import dlq, tracing
from common.errors import PermanentError, TransientError
from common.records import Inbound, Record
from common.settings import ConfigurationError
from common.tracing import NO_TRACER, OtelTracer
from dreamscape_dev.testing.builders import encode, event
from tests.unit.test_runner_decisions import TOPIC, Harness, ok, record

PRODUCER_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
PRODUCER_SPAN = 0xB7AD6B7169203331
TRACEPARENT = f"00-{PRODUCER_TRACE:032x}-{PRODUCER_SPAN:016x}-01".encode()


class KeptExporter(InMemorySpanExporter):
    """An in-memory exporter that outlives the providers (one per runner) that shut it down."""

    def shutdown(self) -> None:
        pass


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Every runner built in the test traces to this exporter, at 100 % sampling."""
    memory = KeptExporter()

    def tracer(
        *, service: str, group: str, transient: tuple[type[BaseException], ...]
    ) -> OtelTracer:
        provider = TracerProvider()  # a runner shuts its provider down when it stops
        provider.add_span_processor(SimpleSpanProcessor(memory))
        return OtelTracer(provider, group=group, transient=transient)

    monkeypatch.setattr("common.runner.from_env", tracer)
    return memory


def with_headers(offset: int, *headers: tuple[str, bytes | None]) -> Record:
    plain = record(offset)
    return Record(
        plain.topic, plain.partition, plain.offset, plain.key, plain.value, headers, 1_000
    )


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def process_spans(exporter: InMemorySpanExporter) -> dict[int, ReadableSpan]:
    """The `process <topic>` spans by offset."""
    spans = named(exporter.get_finished_spans(), f"process {TOPIC}")
    return {s.attributes["messaging.kafka.offset"]: s for s in spans if s.attributes}  # type: ignore[misc]


class TestEnabled:
    """Which `OTEL_*` environments turn tracing on."""

    @pytest.mark.parametrize(
        ("environ", "expected"),
        [
            ({}, False),
            ({"OTEL_SERVICE_NAME": "x"}, False),
            ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
            ({"OTEL_TRACES_EXPORTER": "console"}, True),
            (
                {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"},
                False,
            ),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, True),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, True),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ],
    )
    def test_environments(self, environ: dict[str, str], expected: bool) -> None:
        """Tracing is on for an exporter other than none or an OTLP endpoint, and off otherwise."""
        assert tracing.enabled(environ) is expected

    def test_off_is_the_no_op_tracer(self) -> None:
        """With no `OTEL_*` variable, `from_env` returns the shared no-op tracer."""
        assert tracing.from_env(service="s", group="g", environ={}) is NO_TRACER

    def test_service_name_defaults_to_the_service(self) -> None:
        """The provider's service.name is the service's own unless OTEL_SERVICE_NAME names one."""
        own = tracing.provider_from_env({"OTEL_TRACES_EXPORTER": "none"}, "voyage")
        named_ = tracing.provider_from_env(
            {"OTEL_TRACES_EXPORTER": "none", "OTEL_SERVICE_NAME": "voyage-eu"}, "voyage"
        )
        assert own.resource.attributes["service.name"] == "voyage"
        assert named_.resource.attributes["service.name"] == "voyage-eu"

    def test_the_sampler_is_the_sdks_from_otel_traces_sampler(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """OTEL_TRACES_SAMPLER picks the provider's sampler; unset, it is parentbased_always_on."""
        env = {"OTEL_TRACES_EXPORTER": "none"}
        assert "ParentBased" in tracing.provider_from_env(env, "s").sampler.get_description()
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
        description = tracing.provider_from_env(env, "s").sampler.get_description()
        assert description == "TraceIdRatioBased{0.25}"

    def test_on_without_the_sdk_is_a_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tracing asked for without the `tracing` extra installed fails start-up naming the extra."""
        monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
        with pytest.raises(ConfigurationError, match="'tracing' extra"):
            tracing.from_env(service="s", group="g", environ={"OTEL_TRACES_EXPORTER": "otlp"})

    def test_an_unknown_exporter_is_a_configuration_error(self) -> None:
        """An exporter other than otlp, console or none is refused, named."""
        with pytest.raises(ConfigurationError, match="'zipkin'"):
            tracing.provider_from_env({"OTEL_TRACES_EXPORTER": "zipkin"}, "s")


class TestNoSdkWhenOff:
    """Tracing off costs no import."""

    def test_a_runner_built_and_run_imports_no_opentelemetry(self) -> None:
        """A runner built and run to its end without `OTEL_*` leaves no opentelemetry module loaded."""
        script = textwrap.dedent(
            """
            import os, sys
            for name in [n for n in os.environ if n.startswith("OTEL_")]:
                del os.environ[name]
            from tests.unit.test_runner_decisions import Harness, ok, record
            harness = Harness(ok, [[record(0), record(1)]])
            assert harness.run() == "stop requested"
            assert [n for n, _ in harness.calls].count("handle") == 1
            loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
            print(loaded)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"


class TestRecordSpans:
    """One consumer span per record, with the messaging conventions' attributes."""

    def test_attributes_of_a_processed_record(self, exporter: InMemorySpanExporter) -> None:
        """A handled record's span is `process <topic>`, CONSUMER, with the messaging and envelope attributes."""
        document = event("payment.initiated", paymentId="pay_t1")
        document["causationId"] = "evt_cause_1"
        handled = record(0, encode(document))
        Harness(ok, [[handled]]).run()
        span = process_spans(exporter)[0]
        assert span.kind is SpanKind.CONSUMER
        assert handled.value is not None
        envelope = json.loads(handled.value)
        assert dict(span.attributes or {}) == {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": TOPIC,
            "messaging.destination.partition.id": "0",
            "messaging.kafka.offset": 0,
            "messaging.consumer.group.name": "unit-group",
            "messaging.kafka.message.key": "key",
            "messaging.message.id": envelope["eventId"],
            "dreamscape.event_type": "payment.initiated",
            "dreamscape.correlation_id": envelope["correlationId"],
            "dreamscape.causation_id": "evt_cause_1",
        }
        assert span.status.status_code is StatusCode.UNSET

    def test_a_traceparent_header_is_parent_and_link(self, exporter: InMemorySpanExporter) -> None:
        """A record with a W3C traceparent continues the producer's trace and links to its span."""
        Harness(ok, [[with_headers(0, ("traceparent", TRACEPARENT))]]).run()
        span = process_spans(exporter)[0]
        assert span.context is not None
        assert span.parent is not None
        assert span.context.trace_id == PRODUCER_TRACE
        assert span.parent.span_id == PRODUCER_SPAN
        assert [(x.context.span_id, dict(x.attributes or {})) for x in span.links] == [
            (PRODUCER_SPAN, {"dreamscape.link": "producer"})
        ]

    def test_no_traceparent_starts_a_trace_of_its_own(self, exporter: InMemorySpanExporter) -> None:
        """Records without a traceparent (or with a malformed one) are roots, each in its own trace."""
        Harness(ok, [[record(0), with_headers(1, ("traceparent", b"garbage"))]]).run()
        spans = process_spans(exporter)
        assert spans[0].parent is None
        assert spans[1].parent is None
        assert not spans[1].links
        assert spans[0].context is not None
        assert spans[1].context is not None
        assert spans[0].context.trace_id != spans[1].context.trace_id


class TestBatchSpans:
    """The handler call and the DLQ write are one span each, linked to their records."""

    def test_a_batch_handler_call_links_every_record(self, exporter: InMemorySpanExporter) -> None:
        """Three records handled in one call make one `handle batch` span linking the three record spans."""
        Harness(ok, [[record(0), record(1), record(2)]]).run()
        records = process_spans(exporter)
        [call] = named(exporter.get_finished_spans(), "handle batch")
        assert call.parent is None
        assert {x.context.span_id for x in call.links} == {
            s.context.span_id for s in records.values() if s.context
        }
        assert (call.attributes or {})["messaging.batch.message_count"] == 3

    def test_a_single_record_call_is_a_child(self, exporter: InMemorySpanExporter) -> None:
        """A handler call of one record is a child span of that record's span."""
        Harness(ok, [[record(0)]]).run()
        [call] = named(exporter.get_finished_spans(), "handle batch")
        assert call.parent is not None
        assert process_spans(exporter)[0].context is not None
        assert call.parent.span_id == process_spans(exporter)[0].context.span_id

    def test_a_transient_failure_is_recorded_with_its_decision(
        self, exporter: InMemorySpanExporter
    ) -> None:
        """A handler call failing transiently is an error span saying `retry`; the record span gets a retry event."""
        failures = [TransientError("database down")]

        def flaky(batch: Sequence[Inbound]) -> None:
            if failures:
                raise failures.pop()

        Harness(flaky, [[record(0)]]).run()
        failed, succeeded = named(exporter.get_finished_spans(), "handle batch")
        assert failed.status.status_code is StatusCode.ERROR
        assert (failed.attributes or {})["dreamscape.decision"] == "retry"
        assert (failed.attributes or {})["error.type"] == "TransientError"
        assert [e.name for e in failed.events] == ["exception"]
        assert succeeded.status.status_code is StatusCode.UNSET
        [retry] = process_spans(exporter)[0].events
        assert retry.name == "retry"
        assert dict(retry.attributes or {})["dreamscape.retry.kind"] == "transient"

    def test_a_dead_letter_marks_the_record_and_carries_its_context(
        self, exporter: InMemorySpanExporter
    ) -> None:
        """A rejected record's span is an error saying `dead_letter`; its letter's `dlq.traceparent` is that span."""

        def reject(batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
            return {batch[0]: PermanentError("no such voyage", error_type="unknown_voyage")}

        harness = Harness(reject, [[with_headers(0, ("traceparent", TRACEPARENT))]])
        harness.run()
        span = process_spans(exporter)[0]
        attributes = dict(span.attributes or {})
        assert span.status.status_code is StatusCode.ERROR
        assert attributes["dreamscape.decision"] == "dead_letter"
        assert attributes["error.type"] == "unknown_voyage"
        [letter] = harness.producer.sent
        headers = dict(letter.headers)
        assert span.context is not None
        context = span.context
        assert headers[dlq.H_TRACEPARENT] == (
            f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}".encode()
        )
        assert headers["traceparent"] == TRACEPARENT  # the record's own headers, untouched
        [send] = named(exporter.get_finished_spans(), f"send {letter.topic}")
        assert send.kind is SpanKind.PRODUCER
        assert send.parent is not None
        assert send.parent.span_id == span.context.span_id

    def test_a_replayed_letter_links_to_its_first_life(
        self, exporter: InMemorySpanExporter
    ) -> None:
        """A record replayed from the DLQ gets a span linked to the span that dead-lettered it."""

        def reject(batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
            return {i: PermanentError("later", error_type="later") for i in batch}

        first = Harness(reject, [[record(0)]])
        first.run()
        [letter] = first.producer.sent
        as_read = Record(letter.topic, 0, 7, letter.key, letter.value, letter.headers, 1_000)
        replayed = dlq.to_replay_record(dlq.read_entry(as_read), letter.topic)
        first_life = process_spans(exporter)[0].context
        exporter.clear()
        Harness(ok, [[with_headers(5, *replayed.headers)]]).run()
        second = process_spans(exporter)[5]
        assert first_life is not None
        assert second.context is not None
        assert second.parent is None
        assert second.context.trace_id != first_life.trace_id
        assert [(x.context.span_id, dict(x.attributes or {})) for x in second.links] == [
            (first_life.span_id, {"dreamscape.link": "first_life"})
        ]


class TestChildSpans:
    """Steps of a handler call (an SMTP send) as child spans of the call."""

    def test_a_step_in_the_handler_and_in_its_worker_thread(
        self, exporter: InMemorySpanExporter
    ) -> None:
        """`child_span` in the handler, and in a worker run in a copy of its context, makes CLIENT children of `handle batch`; a failing one records its decision."""

        def handle(batch: Sequence[Inbound]) -> None:
            with tracing.child_span("smtp send"):
                pass
            with ThreadPoolExecutor(1) as pool:
                pool.submit(contextvars.copy_context().run, failing_send).result()

        def failing_send() -> None:
            with contextlib.suppress(TransientError), tracing.child_span("smtp send"):
                raise TransientError("421 try later")

        Harness(handle, [[record(0)]]).run()
        [call] = named(exporter.get_finished_spans(), "handle batch")
        sends = named(exporter.get_finished_spans(), "smtp send")
        assert len(sends) == 2
        assert all(s.kind is SpanKind.CLIENT for s in sends)
        assert call.context is not None
        assert [s.parent.span_id for s in sends if s.parent] == [call.context.span_id] * 2
        assert [s.status.status_code for s in sends] == [StatusCode.UNSET, StatusCode.ERROR]
        assert (sends[1].attributes or {})["dreamscape.decision"] == "retry"

    def test_outside_a_call_it_is_a_no_op(self) -> None:
        """With no handler call traced (tracing off), `child_span` is the shared null context."""
        assert tracing.child_span("smtp send") is tracing.child_span("other")


class TestDlqHeaders:
    """The traceparent headers of letters and replays."""

    def test_no_tracer_no_header(self) -> None:
        """Without a traceparent (tracing off) a letter has no `dlq.traceparent` header."""
        letter = dlq.DeadLetter(record(0), None, "invalid_json", "bad", 1)
        built = dlq.to_dlq_record(letter, dlq_topic="d", group="g", failed_at=datetime.now(UTC))
        assert dlq.H_TRACEPARENT not in dict(built.headers)

    def test_replay_hands_the_letter_context_on(self) -> None:
        """Replay drops `dlq.traceparent` with the other dlq headers and adds it back as `dlq.replayed.traceparent`."""
        letter = dlq.DeadLetter(record(0), None, "invalid_json", "bad", 1)
        built = dlq.to_dlq_record(
            letter, dlq_topic="d", group="g", failed_at=datetime.now(UTC), traceparent=TRACEPARENT
        )
        read = Record("d", 0, 3, built.key, built.value, built.headers, 1)
        headers = dict(dlq.to_replay_record(dlq.read_entry(read), "d").headers)
        assert dlq.H_TRACEPARENT not in headers
        assert headers[dlq.H_REPLAYED_TRACEPARENT] == TRACEPARENT
