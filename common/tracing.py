"""OpenTelemetry tracing of the run loop, off unless the standard `OTEL_*` variables ask for it.

The loop talks to a `Tracer`: `NO_TRACER` does nothing (a few calls per poll, none per
record), and `OtelTracer`, built by `from_env` only when tracing is configured, is the one
place in the code base that imports `opentelemetry` (the optional `tracing` extra). So a
service without the extra, or with tracing off, imports no OpenTelemetry module at all.

Spans (docs/operations.md, "Tracing"):

* `process <topic>` (CONSUMER), one per record, from the poll that delivered it until its
  batch is done, with the messaging attributes of the semantic conventions. When the
  record carries a W3C `traceparent` header, that context is its parent (the payment's
  trace continues from the webhook) and also a span link, as the conventions ask of a
  process span. Without one, the span starts a new trace: trace ids stay random, and the
  `dreamscape.correlation_id` attribute is what finds every trace of one payment.
* `handle batch` (INTERNAL), one per handler call (the database transaction), linked to
  every record span of the call; a child of the record span when the call has one record.
  Its error, if any, is recorded with the decision the run loop takes.
* `send <dlq topic>` (PRODUCER), one per DLQ write, linked likewise.
* retries are `retry` events on the record spans; a dead letter sets the record span's
  status to error, with the error type and the decision.

A dead letter carries its record span's context in `dlq.traceparent`; `dlq replay` hands it
on as `dlq.replayed.traceparent`, which the next life's record span links to.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from common import dlq
from common.failures import decide
from common.lifecycle import LifecycleEvent, RecordDeadLettered, RetryScheduled
from common.records import Inbound, Record
from common.settings import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Link, Span

TRACEPARENT = "traceparent"
_NULL = contextlib.nullcontext()
_CALL: ContextVar[tuple[OtelTracer, Span] | None] = ContextVar("tracing_call", default=None)
"""The tracer and span of the handler call running in this context, while tracing is on."""


def child_span(name: str) -> AbstractContextManager[None]:
    """A span for one step of the running handler call (an SMTP send): its child.

    A no-op (one context-variable read) when tracing is off or no handler call is running.
    A worker thread of the handler sees the call only when it runs in a copy of the
    handler's context (`contextvars.copy_context().run`), as the notification mailer does.
    """
    call = _CALL.get()
    if call is None:
        return _NULL
    tracer, parent = call
    return tracer.child(name, parent)


class Tracer(Protocol):
    """What the run loop tells tracing; every method is per poll or per call, not per record."""

    def polled(self, records: Sequence[Record]) -> None:
        """A poll's records are about to be processed: their spans start now."""

    def parsed(self, valid: Sequence[Inbound]) -> None:
        """The poll's records are parsed (`valid` are those that parsed): open their spans."""

    def handler_call(self, batch: Sequence[Inbound]) -> AbstractContextManager[None]:
        """Around one call of the service's batch handler."""

    def dlq_write(
        self, letters: Sequence[dlq.DeadLetter], topic: str
    ) -> AbstractContextManager[None]:
        """Around one acknowledged write of letters to the DLQ."""

    def traceparent(self, record: Record) -> bytes | None:
        """The W3C traceparent of `record`'s span, or None when tracing is off."""

    def finished(self) -> None:
        """The poll's records are done (or the loop is leaving): end their spans."""

    def on_event(self, event: LifecycleEvent) -> None:
        """A lifecycle event (retries and dead letters become span events and statuses)."""

    def close(self) -> None:
        """Export what is buffered; called once when the loop stops."""


class NoTracer:
    """Tracing off: every call returns at once."""

    def polled(self, records: Sequence[Record]) -> None:
        pass

    def parsed(self, valid: Sequence[Inbound]) -> None:
        pass

    def handler_call(self, batch: Sequence[Inbound]) -> AbstractContextManager[None]:
        return _NULL

    def dlq_write(
        self, letters: Sequence[dlq.DeadLetter], topic: str
    ) -> AbstractContextManager[None]:
        return _NULL

    def traceparent(self, record: Record) -> bytes | None:
        return None

    def finished(self) -> None:
        pass

    def on_event(self, event: LifecycleEvent) -> None:
        pass

    def close(self) -> None:
        pass


NO_TRACER = NoTracer()


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether `OTEL_*` asks for traces: an exporter other than `none`, or an OTLP endpoint."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def from_env(
    *,
    service: str,
    group: str,
    transient: tuple[type[BaseException], ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Tracer:
    """`NO_TRACER`, or an `OtelTracer` exporting as `OTEL_*` says (sampler, service name...)."""
    env = os.environ if environ is None else environ
    if not enabled(env):
        return NO_TRACER
    try:
        import opentelemetry.sdk.trace  # noqa: F401 - only to say what is missing
    except ImportError:
        raise ConfigurationError(
            "OTEL_* asks for traces but the OpenTelemetry SDK is not installed: install "
            "the 'tracing' extra (dreamscape-payment-consumers[tracing]) or unset them"
        ) from None
    return OtelTracer(provider_from_env(env, service), group=group, transient=transient)


def provider_from_env(environ: Mapping[str, str], service: str) -> TracerProvider:
    """An SDK provider: sampler from `OTEL_TRACES_SAMPLER`, exporters from `OTEL_TRACES_EXPORTER`.

    The service name is `OTEL_SERVICE_NAME`, else the service's own; the exporter `otlp`
    (the default once an endpoint is set) is OTLP over HTTP, reading its own
    `OTEL_EXPORTER_OTLP_*` variables; `console` prints spans to standard output.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    name = environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))  # sampler: env
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() or "otlp"
    for exporter in (n.strip() for n in names.split(",")):
        if exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif exporter != "none":
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER: {exporter!r} is not otlp, console or none"
            )
    return provider


class OtelTracer:
    """Spans of the run loop on an OpenTelemetry SDK `TracerProvider`."""

    def __init__(
        self,
        provider: TracerProvider,
        *,
        group: str,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._provider = provider
        self._tracer = provider.get_tracer("dreamscape.run_loop")
        self._propagator = TraceContextTextMapPropagator()
        self._group = group
        self._transient = transient
        self._spans: dict[Record, Span] = {}
        self._polled: Sequence[Record] = ()
        self._polled_at = 0

    # -- record spans -------------------------------------------------------------------

    def polled(self, records: Sequence[Record]) -> None:
        # The spans start now but are created once parsed, with every attribute at once: the
        # SDK cleans attributes one by one, and setting them later costs as much again.
        self._polled, self._polled_at = records, time.time_ns()

    def parsed(self, valid: Sequence[Inbound]) -> None:
        kind = self._trace.SpanKind.CONSUMER
        events = {i.record: i.event for i in valid}
        for record in self._polled:
            attributes = self._record_attributes(record)
            if (event := events.get(record)) is not None:
                attributes["messaging.message.id"] = str(event.event_id)
                attributes["dreamscape.event_type"] = event.event_type
                if event.correlation_id is not None:
                    attributes["dreamscape.correlation_id"] = event.correlation_id
                if event.causation_id is not None:
                    attributes["dreamscape.causation_id"] = event.causation_id
            parent, links = self._origins(record)
            self._spans[record] = self._tracer.start_span(
                f"process {record.topic}",
                context=parent,
                kind=kind,
                links=links,
                attributes=attributes,
                start_time=self._polled_at,
            )
        self._polled = ()

    def finished(self) -> None:
        self._polled = ()
        spans, self._spans = self._spans, {}
        for span in spans.values():
            span.end()

    def traceparent(self, record: Record) -> bytes | None:
        span = self._spans.get(record)
        if span is None:
            return None
        context = span.get_span_context()
        flags = int(context.trace_flags)
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}".encode()

    # -- child spans --------------------------------------------------------------------

    def handler_call(self, batch: Sequence[Inbound]) -> AbstractContextManager[None]:
        records = [i.record for i in batch]
        kind = self._trace.SpanKind.INTERNAL
        return self._batch_span("handle batch", records, kind, {}, call=True)

    def dlq_write(
        self, letters: Sequence[dlq.DeadLetter], topic: str
    ) -> AbstractContextManager[None]:
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topic,
        }
        records = [x.record for x in letters]
        return self._batch_span(f"send {topic}", records, self._trace.SpanKind.PRODUCER, attributes)

    @contextlib.contextmanager
    def _batch_span(
        self,
        name: str,
        records: list[Record],
        kind: Any,
        attributes: dict[str, Any],
        *,
        call: bool = False,
    ) -> Iterator[None]:
        spans = [s for r in records if (s := self._spans.get(r)) is not None]
        links = [self._trace.Link(s.get_span_context()) for s in spans]
        # One record: the call is part of that record's work, so it is its child. Several: a
        # span has one parent, and the conventions link a batch operation to its messages.
        parent = self._trace.set_span_in_context(spans[0]) if len(spans) == 1 else None
        attributes["messaging.batch.message_count"] = len(records)
        span = self._tracer.start_span(
            name, context=parent, kind=kind, links=links, attributes=attributes
        )
        token = _CALL.set((self, span)) if call else None
        try:
            with self._trace.use_span(span, end_on_exit=False, record_exception=False):
                yield
        except BaseException as exc:
            self._failed(span, exc)
            raise
        finally:
            if token is not None:
                _CALL.reset(token)
            span.end()

    @contextlib.contextmanager
    def child(self, name: str, parent: Span) -> Iterator[None]:
        """A CLIENT span under `parent` (see `child_span`), its error recorded with the decision."""
        context = self._trace.set_span_in_context(parent)
        span = self._tracer.start_span(name, context=context, kind=self._trace.SpanKind.CLIENT)
        try:
            yield
        except BaseException as exc:
            self._failed(span, exc)
            raise
        finally:
            span.end()

    def _failed(self, span: Span, exc: BaseException) -> None:
        decision = decide(exc, self._transient).value
        span.record_exception(exc, attributes={"dreamscape.decision": decision})
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_attribute("dreamscape.decision", decision)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(exc)[:200]))

    # -- lifecycle events ---------------------------------------------------------------

    def on_event(self, event: LifecycleEvent) -> None:
        if isinstance(event, RetryScheduled):
            attributes: dict[str, Any] = {
                "dreamscape.retry.kind": event.kind,
                "dreamscape.retry.attempt": event.attempt,
                "dreamscape.retry.delay_s": event.delay_s,
                "exception.type": type(event.error).__qualname__,
                "exception.message": str(event.error)[:200],
            }
            for record in event.records:
                if (span := self._spans.get(record)) is not None:
                    span.add_event("retry", attributes)
        elif isinstance(event, RecordDeadLettered) and (span := self._spans.get(event.record)):
            span.set_attribute("error.type", event.error_type)
            span.set_attribute("dreamscape.decision", "dead_letter")
            span.set_attribute("dreamscape.dlq.topic", event.dlq_topic)
            span.set_attribute("dreamscape.attempts", event.attempts)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, event.message[:200]))

    def close(self) -> None:
        self.finished()
        self._provider.shutdown()

    # -- helpers ------------------------------------------------------------------------

    def _record_attributes(self, record: Record) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": self._group,
        }
        if record.key is not None:
            # The conventions: a key with no unambiguous string form gets no attribute.
            with contextlib.suppress(UnicodeDecodeError):
                attributes["messaging.kafka.message.key"] = record.key.decode()
        if record.value is None:
            attributes["messaging.kafka.message.tombstone"] = True
        return attributes

    def _origins(self, record: Record) -> tuple[Any, list[Link]]:
        """The parent context (the producer's `traceparent`) and the links of a record span."""
        parent = None
        links: list[Link] = []
        for name, value in record.headers:
            if value is None or name not in (TRACEPARENT, dlq.H_REPLAYED_TRACEPARENT):
                continue
            context = self._propagator.extract({TRACEPARENT: value.decode("ascii", "replace")})
            span_context = self._trace.get_current_span(context).get_span_context()
            if not span_context.is_valid:
                continue
            if name == TRACEPARENT:
                parent = context
                links.append(self._trace.Link(span_context, {"dreamscape.link": "producer"}))
            else:
                links.append(self._trace.Link(span_context, {"dreamscape.link": "first_life"}))
        return parent, links
