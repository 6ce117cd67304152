"""Tracing of the run loop on the real broker: record spans, batch links, DLQ and replay.

The run loop runs in-process (`RunnerThread`) with an `OtelTracer` exporting to the SDK's
`InMemorySpanExporter`; records are produced with and without a W3C `traceparent`, one is
rejected for good, its dead letter is replayed, and a second runner handles the replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

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
from dreamscape_dev.testing.running import RunnerThread
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
