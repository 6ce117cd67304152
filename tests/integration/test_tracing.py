"""Tracing of the run loop on the real broker: record spans, batch links, DLQ and replay.

The run loop runs in-process (`RunnerThread`) with an `OtelTracer` exporting to the SDK's
`InMemorySpanExporter`; records are produced with and without a W3C `traceparent`, one is
rejected for good, its dead letter is replayed, and a second runner handles the replay.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from common import dlq
from common.errors import PermanentError
from common.handlers import BatchHandler, ConsumerSpec
from common.kafka import KafkaConsumer, KafkaProducer, RebalanceListener
from common.lifecycle import Bus
from common.records import Inbound
from common.runner import Runner
from common.settings import RunnerSettings
from common.topics import PAYMENT_COMPLETED, PAYMENT_INITIATED, Topics
from common.tracing import OtelTracer
from dreamscape_dev.testing import builders
from dreamscape_dev.testing.running import RunnerThread
from dreamscape_dev.testing.smtp import SmtpSink
from tests.integration.helpers import (
    Delivered,
    Recorder,
    dlq_records,
    event_id,
    payment_record,
    produce,
    runner_settings,
    wait_until,
)
from tests.scenarios.fleet import fleet

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0
PRODUCER_TRACE = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PRODUCER_SPAN = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{PRODUCER_TRACE:032x}-{PRODUCER_SPAN:016x}-01".encode()


class KeptExporter(InMemorySpanExporter):
    """An in-memory exporter that outlives the providers (one per runner) that shut it down."""

    def shutdown(self) -> None:
        pass


def traced(
    handle: BatchHandler, settings: RunnerSettings, group: str, exporter: InMemorySpanExporter
) -> tuple[RunnerThread, Recorder]:
    """A runner on the real broker whose spans go to `exporter`, and its lifecycle events."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = Recorder()
    config = settings.consumer_config(group)

    def consumer(listener: RebalanceListener) -> KafkaConsumer:
        return KafkaConsumer(config, listener)

    runner = Runner(
        ConsumerSpec(name="traced", group_id=group, handle=handle),
        settings,
        consumer,
        KafkaProducer(settings.producer_config()),
        Bus([recorder]),
        tracer=OtelTracer(provider, group=group),
    )
    return RunnerThread(runner, name="traced"), recorder


def process_span(spans: Sequence[ReadableSpan], at: Delivered) -> ReadableSpan:
    """The one `process <topic>` span of the record delivered `at`."""
    found = [
        s
        for s in spans
        if s.name == f"process {at.topic}"
        and (s.attributes or {}).get("messaging.destination.partition.id") == str(at.partition)
        and (s.attributes or {}).get("messaging.kafka.offset") == at.offset
    ]
    assert len(found) == 1, f"{len(found)} spans for {at}"
    return found[0]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


class TestPaymentFlowTraces:
    """One payment's records through the run loop, traced."""

    def test_spans_links_dead_letter_and_replay(
        self, kafka_bootstrap_servers: str, topics: Topics
    ) -> None:
        """Each record has a consumer span with the conventions' attributes, the traceparent one continues the producer's trace, handler calls link their records, the dead letter carries its span's context and the replayed record links back to it."""
        initiated = payment_record(
            topics, PAYMENT_INITIATED, key=b"pay", headers=[("traceparent", TRACEPARENT)]
        )
        completed = payment_record(topics, PAYMENT_COMPLETED, key=b"pay")
        poison_id = event_id(completed)
        delivered = produce(kafka_bootstrap_servers, [initiated, completed])
        exporter = KeptExporter()
        group = f"traced-{uuid.uuid4().hex[:8]}"
        settings = runner_settings(topics, kafka_bootstrap_servers)

        def reject_completed(batch: Sequence[Inbound]) -> dict[Inbound, PermanentError]:
            return {
                i: PermanentError("voyage unknown", error_type="unknown_voyage")
                for i in batch
                if i.event.event_id == poison_id
            }

        loop, recorder = traced(reject_completed, settings, group, exporter)
        with loop:
            wait_until(
                lambda: recorder.dead_lettered() and recorder.handled_ids(),
                TIMEOUT_S,
                "the initiated record handled and the completed one dead-lettered",
                abort=loop.died,
            )
        spans = exporter.get_finished_spans()
        first, second = (process_span(spans, at) for at in delivered)

        # the record spans
        assert first.kind is SpanKind.CONSUMER
        attributes = dict(first.attributes or {})
        assert attributes["messaging.system"] == "kafka"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.consumer.group.name"] == group
        assert attributes["messaging.message.id"] == event_id(initiated)
        # the spec examples share one correlationId: what finds both traces in Jaeger
        assert attributes["dreamscape.correlation_id"] == "booking-123-payment-flow"
        assert dict(second.attributes or {})["dreamscape.correlation_id"] == (
            "booking-123-payment-flow"
        )
        assert first.context is not None
        assert first.context.trace_id == PRODUCER_TRACE
        assert first.parent is not None
        assert first.parent.span_id == PRODUCER_SPAN
        assert second.parent is None  # no traceparent: a trace of its own
        assert first.status.status_code is StatusCode.UNSET
        assert second.status.status_code is StatusCode.ERROR
        assert dict(second.attributes or {})["dreamscape.decision"] == "dead_letter"

        # the handler calls: each record span is linked from (or parent of) one of them
        calls = [s for s in spans if s.name == "handle batch"]
        covered = {x.context.span_id for c in calls for x in c.links}
        covered |= {c.parent.span_id for c in calls if c.parent is not None}
        assert {span_id(first), span_id(second)} <= covered

        # the dead letter carries the span that dead-lettered it
        sends = [s for s in spans if s.name == f"send {loop_dlq_topic(group, topics)}"]
        assert len(sends) == 1
        assert sends[0].kind is SpanKind.PRODUCER
        [letter] = dlq_records(kafka_bootstrap_servers, loop_dlq_topic(group, topics))
        headers = dict(letter.headers)
        assert second.context is not None
        assert (
            headers[dlq.H_TRACEPARENT]
            == (
                f"00-{second.context.trace_id:032x}-{second.context.span_id:016x}-"
                f"{int(second.context.trace_flags):02x}"
            ).encode()
        )

        # replayed, it is handled by a new runner whose span links to the first life
        replay = dlq.to_replay_record(dlq.read_entry(letter), letter.topic)
        [again] = produce(kafka_bootstrap_servers, [replay])
        exporter.clear()
        loop, recorder = traced(lambda _batch: None, settings, group, exporter)
        with loop:
            wait_until(
                lambda: poison_id in recorder.handled_ids(),
                TIMEOUT_S,
                "the replayed record handled",
                abort=loop.died,
            )
        replayed = process_span(exporter.get_finished_spans(), again)
        assert [(x.context.span_id, dict(x.attributes or {})) for x in replayed.links] == [
            (span_id(second), {"dreamscape.link": "first_life"})
        ]
        assert dict(replayed.attributes or {})["messaging.message.id"] == poison_id


def loop_dlq_topic(group: str, topics: Topics) -> str:
    """The DLQ topic the runner of `group` writes to."""
    return topics.dlq(group)


# -- the three services as processes, exporting OTLP/HTTP ---------------------------------


class OtlpReceiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: keeps every span with its service's name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, SpanProto]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                received.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    self.spans.extend((attributes["service.name"], s) for s in scope.spans)

    def of(self, service: str, name: str) -> list[SpanProto]:
        with self._lock:
            return [s for n, s in self.spans if n == service and s.name == name]

    def processed(self) -> set[tuple[str, str]]:
        """(service, eventId) of every `process` span received."""
        with self._lock:
            return {
                (n, str(attribute(s, "messaging.message.id")))
                for n, s in self.spans
                if s.name.startswith("process ")
            }

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def attribute(span: SpanProto, key: str) -> str | int | None:
    for kv in span.attributes:
        if kv.key == key:
            value = kv.value
            return value.string_value if value.HasField("string_value") else value.int_value
    return None


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """A receiver the service processes started in the test export to (they inherit OTEL_*)."""
    with OtlpReceiver() as started:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", started.endpoint)
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: spans reach us quickly
        yield started


class TestThreeServices:
    """One payment through voyage, notification and analytics, traced into one trace."""

    def test_one_payment_is_one_trace_down_to_the_email(
        self, kafka_bootstrap_servers: str, receiver: OtlpReceiver, tmp_path: Path
    ) -> None:
        """Events published with the webhook's traceparent give each service a process span in that trace, and notification's receipt an `smtp send` span under its handler call."""
        start = datetime.now(UTC) - timedelta(minutes=1)
        ids = {"paymentId": "pay_traced_1", "bookingId": "bk_traced_1", "userId": "usr_traced_1"}
        documents = [
            builders.event("payment.initiated", at=start, **ids),
            builders.event("payment.completed", at=start + timedelta(seconds=5), **ids),
        ]
        with SmtpSink() as smtp, fleet(kafka_bootstrap_servers, smtp, tmp_path) as services:
            services.publish_records(
                [
                    builders.outbound(d, services.topics, headers=[("traceparent", TRACEPARENT)])
                    for d in documents
                ]
            )
            completed_id = documents[1]["eventId"]
            expected = {
                (service, str(d["eventId"]))
                for service in ("voyage-consumer", "notification-consumer", "analytics-consumer")
                for d in documents
            }
            wait_until(
                lambda: expected <= receiver.processed(), TIMEOUT_S, "every service's record spans"
            )
            wait_until(
                lambda: receiver.of("notification-consumer", "smtp send"),
                TIMEOUT_S,
                "the receipt's smtp send span",
            )
        for _, span in receiver.spans:
            if span.name.startswith("process "):
                assert span.trace_id == PRODUCER_TRACE.to_bytes(16, "big")
                assert span.parent_span_id == PRODUCER_SPAN.to_bytes(8, "big")
                assert span.kind == SpanProto.SPAN_KIND_CONSUMER
        [send] = receiver.of("notification-consumer", "smtp send")
        calls = {s.span_id: s for s in receiver.of("notification-consumer", "handle batch")}
        assert send.parent_span_id in calls
        call = calls[send.parent_span_id]
        [completed] = [
            s
            for s in receiver.of(
                "notification-consumer", f"process {services.topics.for_event('payment.completed')}"
            )
            if attribute(s, "messaging.message.id") == completed_id
        ]
        assert completed.span_id in {call.parent_span_id, *(x.span_id for x in call.links)}
