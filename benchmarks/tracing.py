"""What tracing costs the run loop per record: off, and on at 100 % sampling.

    .venv/bin/python benchmarks/tracing.py [--records 50000] [--batch-size 500] [--rounds 3]

No broker: an in-memory consumer hands the real `common.runner.Runner` the same pre-built
records (the spec's `payment.completed` example, each with its own eventId, a third of them
with a W3C `traceparent`) in batches of `--batch-size`, and a no-op batch handler accepts
them, so what is timed is the loop's own work: parsing, validation, offsets, lifecycle
events, and, with tracing on, the spans. Three configurations, each run `--rounds` times
in alternation (the best round is kept, the machine being shared):

* `off`: no `OTEL_*` variable, `common.tracing.NO_TRACER`;
* `on, spans only`: an `OtelTracer`, sampler always on, spans handed to a
  `BatchSpanProcessor` whose exporter drops them (the cost on the loop's thread);
* `on, OTLP encoded`: the same, the exporter encoding every span to OTLP protobuf as the
  OTLP/HTTP exporter does before sending (the cost of a real export but the network);
* `on, 10 % sampled`: the OTLP-encoding exporter, a `traceidratio` sampler of 0.1 (not
  parent-based, so the sampled flag of the records' traceparent does not decide).

The time of a configuration with tracing on includes `force_flush`, so spans still queued at
the end are paid for; the processor's queue is large enough that none is dropped. Prints
microseconds per record and the overhead against `off`.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import uuid
from collections.abc import Mapping, Sequence

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler, TraceIdRatioBased

from common.handlers import ConsumerSpec
from common.kafka import ClientError, RebalanceListener
from common.lifecycle import Bus
from common.records import Inbound, OutboundRecord, Record, TopicPartition
from common.runner import Runner
from common.settings import RunnerSettings
from common.topics import PAYMENT_COMPLETED, Topics
from common.tracing import NO_TRACER, OtelTracer, Tracer
from dreamscape_dev.testing.builders import encode, event

TOPICS = Topics(prefix="bench-")
TOPIC = TOPICS.for_event(PAYMENT_COMPLETED)
PARTITIONS = 3
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Consumer:
    """Hands out `records` in batches, then stops the runner; every partition is always ours."""

    def __init__(self, records: Sequence[Record], batch_size: int) -> None:
        self._batches = [
            list(records[n : n + batch_size]) for n in range(0, len(records), batch_size)
        ]
        self.runner: Runner | None = None
        self._listener: RebalanceListener | None = None

    def bind(self, listener: RebalanceListener) -> Consumer:
        self._listener = listener
        return self

    def subscribe(self, topics: Sequence[str]) -> None:
        assert self._listener is not None
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        self._listener.on_assign(partitions)
        self._listener.after_assign(partitions)

    def poll_batch(
        self, max_records: int, timeout_s: float
    ) -> tuple[list[Record], list[ClientError]]:
        if self._batches:
            return self._batches.pop(0), []
        assert self.runner is not None
        self.runner.stop()
        return [], []

    def store_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        pass

    def commit(self) -> Mapping[TopicPartition, int]:
        return {}

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        pass

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    def close(self) -> None:
        pass


class Producer:
    """The DLQ producer: never called, every record being valid."""

    def send_confirmed(
        self, records: Sequence[OutboundRecord], timeout_s: float = 30.0
    ) -> Mapping[TopicPartition, int]:
        raise AssertionError("no record of the benchmark is dead-lettered")


class Dropping(SpanExporter):
    """Drops spans, or encodes them to OTLP protobuf first (`encode`), counting them."""

    def __init__(self, *, encode: bool) -> None:
        self._encode = encode
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._encode:
            encode_spans(spans).SerializeToString()
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def records(count: int) -> list[Record]:
    template = event(PAYMENT_COMPLETED, paymentId="pay_bench")
    built = []
    for n in range(count):
        template["eventId"] = str(uuid.uuid4())
        headers = (("traceparent", TRACEPARENT),) if n % 3 == 0 else ()
        built.append(
            Record(TOPIC, n % PARTITIONS, n // PARTITIONS, b"pay", encode(template), headers, 1)
        )
    return built


def accept(_batch: Sequence[Inbound]) -> None:
    return None


def run(batch: list[Record], batch_size: int, tracer: Tracer) -> float:
    """Seconds for the runner to process `batch` (with `tracer`), the tracer closed included."""
    consumer = Consumer(batch, batch_size)
    settings = RunnerSettings(topic_prefix=TOPICS.prefix, batch_size=batch_size, kafka={})
    spec = ConsumerSpec(name="bench", group_id="bench", handle=accept)
    runner = Runner(spec, settings, consumer.bind, Producer(), Bus(), tracer=tracer)
    consumer.runner = runner
    gc.collect()
    started = time.perf_counter()
    runner.run()  # closes the tracer: its processor flushes every queued span
    return time.perf_counter() - started


def otel(encode_spans: bool, sampler: Sampler = ALWAYS_ON) -> tuple[OtelTracer, Dropping]:
    exporter = Dropping(encode=encode_spans)
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=1_000_000, max_export_batch_size=512)
    )
    return OtelTracer(provider, group="bench"), exporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]
    batch = records(args.records)
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name in ("off", "on, spans only", "on, OTLP encoded", "on, 10 % sampled"):
            if name == "off":
                seconds = run(batch, args.batch_size, NO_TRACER)
            elif name.endswith("sampled"):
                tracer, exporter = otel(encode_spans=True, sampler=TraceIdRatioBased(0.1))
                seconds = run(batch, args.batch_size, tracer)
            else:
                tracer, exporter = otel(encode_spans=name.endswith("encoded"))
                seconds = run(batch, args.batch_size, tracer)
                # a record span each, and a handler call span per batch
                expected = args.records + -(-args.records // args.batch_size)
                assert exporter.exported == expected, (exporter.exported, expected)
            best[name] = min(best.get(name, float("inf")), seconds)
    off = best["off"] / args.records * 1e6
    print(f"{args.records} records, batches of {args.batch_size}, best of {args.rounds} rounds")
    for name, seconds in best.items():
        per = seconds / args.records * 1e6
        extra = "" if name == "off" else f"  (+{per - off:5.1f} µs/record, {per / off:4.2f}x)"
        print(
            f"  tracing {name:<17} {per:6.1f} µs/record  {args.records / seconds:9.0f} records/s{extra}"
        )


if __name__ == "__main__":
    main()
