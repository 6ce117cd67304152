"""Structured logging: one configuration for the process, and the lifecycle subscriber.

Logging is a subscriber to the run loop's lifecycle events (`common.lifecycle`) rather than
calls sprinkled through the loop, so every outcome gets exactly one canonical line with the
same fields. Lines are JSON when stderr is not a terminal (collectors parse them) and a
readable console format on a terminal. Tracebacks never show the frames' locals, in either
format: a frame can hold the settings (passwords) or a record (a payload). Lines about a record carry its coordinates and
envelope ids (`record_context`), never its payload: payloads hold personal data, and email
addresses that slip into free text (error messages, correlation ids) are masked.

The hot path costs nothing at the default level: `make_filtering_bound_logger` turns disabled
levels into a bare `return None`, and per-record DEBUG lines are skipped wholesale after one
level check per batch.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from common.events import PaymentEvent
from common.lifecycle import (
    BatchHandled,
    ConsumerError,
    LifecycleEvent,
    LoopStopped,
    OffsetsCommitted,
    PartitionsChanged,
    RecordDeadLettered,
    RetryScheduled,
    TopicMissing,
)
from common.records import Record, TopicPartition
from common.throttle import SUMMARY_INTERVAL_S, LogThrottle

TOPIC_MISSING_INTERVAL_S: Final = 60.0
"""A missing topic is reported at most once per this many seconds (per topic)."""

MAX_TEXT_LENGTH: Final = 500
"""Free text (error messages) is cut to this many characters."""

_EMAIL: Final = re.compile(r"[^\s@<>()\[\],;:\"']+@[^\s@<>()\[\],;:\"']+\.[A-Za-z]{2,}")


def configure_logging(*, level: str = "INFO", fmt: str | None = None, service: str) -> None:
    """Send structlog and stdlib (WARNING and up) logging to stderr in one format.

    `fmt` is "json", "console", or None to pick JSON unless stderr is a terminal.
    """
    threshold = _level_number(level)
    as_json = _wants_json(fmt)
    colors = sys.stderr.isatty()
    shared = _shared_processors(service, as_json=as_json)
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=_traceback_without_locals(colors=colors)
        )
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _route_stdlib(shared, renderer, max(threshold, logging.WARNING))


def _traceback_without_locals(*, colors: bool) -> structlog.typing.ExceptionRenderer:
    """The console's traceback: rich's when installed, never with the frames' locals.

    structlog's default console formatter is rich's traceback *with* locals (or
    better-exceptions, which prints them too): a crash would print the settings (a Kafka
    password) and the records in hand (payloads). Source lines are shown, values never.
    """
    try:
        import rich  # noqa: F401 - only whether it is installed
    except ImportError:
        return structlog.dev.plain_traceback
    return structlog.dev.RichTracebackFormatter(
        color_system="truecolor" if colors else None, show_locals=False
    )


def _level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def _wants_json(fmt: str | None) -> bool:
    if fmt is None:
        return not sys.stderr.isatty()
    if fmt not in ("json", "console"):
        raise ValueError(f"log format must be 'json' or 'console', not {fmt!r}")
    return fmt == "json"


def _shared_processors(service: str, *, as_json: bool) -> list[Processor]:
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    if as_json:  # the console renderer formats exceptions itself
        # Without locals: a frame's locals can hold a payload or an email address.
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        processors.append(structlog.processors.ExceptionRenderer(transformer))
    return processors


def _add_service(service: str) -> Processor:
    """A processor, not a contextvar, so lines from every thread carry the service."""

    def add(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def _route_stdlib(shared: list[Processor], renderer: Processor, level: int) -> None:
    """Format records of stdlib loggers (librdkafka, sqlalchemy, aiosmtpd...) like ours."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def record_context(record: Record, event: PaymentEvent | None) -> dict[str, object]:
    """The fields every line about a record carries; never the payload or an email address."""
    context: dict[str, object] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    }
    if event is not None:
        context["event_id"] = event.event_id
        context["event_type"] = event.event_type
        if event.correlation_id is not None:
            context["correlation_id"] = scrub(event.correlation_id)
        if event.causation_id is not None:
            context["causation_id"] = scrub(event.causation_id)
    return context


def scrub(text: str) -> str:
    """`text` cut to MAX_TEXT_LENGTH, with anything shaped like an email address masked."""
    if len(text) > MAX_TEXT_LENGTH:
        text = text[:MAX_TEXT_LENGTH] + "..."
    return _EMAIL.sub("<email>", text) if "@" in text else text


def partition_names(tps: Iterable[TopicPartition]) -> list[str]:
    """Distinct partitions as sorted `topic[partition]` strings."""
    return [f"{topic}[{partition}]" for topic, partition in sorted(set(tps))]


def offset_names(offsets: Mapping[TopicPartition, int]) -> dict[str, int]:
    """Offsets keyed by `topic[partition]`, a form every log sink can store."""
    return {f"{tp.topic}[{tp.partition}]": offset for tp, offset in sorted(offsets.items())}


class LogSubscriber:
    """Lifecycle subscriber writing one canonical line per outcome.

    Per batch: DEBUG only (a line per record and a summary). WARNING for retries and dead
    letters, INFO for rare state changes (rebalances, final commits, stop). A missing topic
    is reported once per `topic_missing_interval_s` per topic, with the repeats counted; a
    client error once per code, then summarised every 30 s (`common.throttle`).
    """

    def __init__(
        self,
        logger: FilteringBoundLogger | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        topic_missing_interval_s: float = TOPIC_MISSING_INTERVAL_S,
    ) -> None:
        self._log: FilteringBoundLogger = logger if logger is not None else structlog.get_logger()
        self._now = now
        self._topic_missing_interval_s = topic_missing_interval_s
        self._topic_missing_at: dict[str, float] = {}
        self._topic_missing_repeats: dict[str, int] = {}
        self._client_errors = LogThrottle(SUMMARY_INTERVAL_S, now=now)

    def __call__(self, event: LifecycleEvent) -> None:
        match event:  # the per-batch event first: it is by far the most frequent
            case BatchHandled():
                self._batch_handled(event)
            case RecordDeadLettered():
                self._dead_lettered(event)
            case RetryScheduled():
                self._retry_scheduled(event)
            case OffsetsCommitted():
                self._committed(event)
            case PartitionsChanged():
                self._log.info(
                    "partitions.changed",
                    change=event.change,
                    partitions=partition_names(event.partitions),
                )
            case TopicMissing():
                self._topic_missing(event)
            case ConsumerError():
                self._consumer_error(event)
            case LoopStopped():
                self._log.info(
                    "loop.stopped", reason=event.reason, committed=offset_names(event.committed)
                )
            case _:  # LagMeasured, OffsetsStored: for metrics only
                pass

    def _batch_handled(self, event: BatchHandled) -> None:
        if not self._log.is_enabled_for(logging.DEBUG):
            return
        for inbound in event.handled:
            self._log.debug("record.handled", **record_context(inbound.record, inbound.event))
        self._log.debug(
            "batch.handled",
            records=len(event.handled),
            duration_s=round(event.duration_s, 6),
            partitions=partition_names(item.record.tp for item in event.handled),
        )

    def _dead_lettered(self, event: RecordDeadLettered) -> None:
        parsed = event.inbound.event if event.inbound is not None else None
        self._log.warning(
            "record.dead_lettered",
            **record_context(event.record, parsed),
            error_type=event.error_type,
            message=scrub(event.message),
            attempts=event.attempts,
            dlq_topic=event.dlq_topic,
        )

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        # A database error names its SQLSTATE (DB-API drivers: `error.orig.sqlstate`), so an
        # outage reads as one ("25006": a read-only primary) without parsing the message.
        sqlstate = getattr(getattr(event.error, "orig", None), "sqlstate", None)
        self._log.warning(
            "handling.retry_scheduled",
            kind=event.kind,
            error_type=type(event.error).__name__,
            **({"sqlstate": sqlstate} if isinstance(sqlstate, str) else {}),
            error=scrub(str(event.error)),
            attempt=event.attempt,
            delay_s=round(event.delay_s, 3),
            records=len(event.records),
            partitions=partition_names(record.tp for record in event.records),
        )

    def _committed(self, event: OffsetsCommitted) -> None:
        log = self._log.debug if event.reason == "periodic" else self._log.info
        log("offsets.committed", reason=event.reason, offsets=offset_names(event.offsets))

    def _consumer_error(self, event: ConsumerError) -> None:
        """A fatal error always; others once per code, then summarised (`LogThrottle`)."""
        if event.fatal:
            self._log.error(
                "consumer.error", code=event.code, message=scrub(event.message), fatal=True
            )
            return
        verdict = self._client_errors.admit(event.code)
        if verdict is None:
            return
        repeats = {} if verdict.change else {"repeats_since_last": verdict.suppressed}
        self._log.warning(
            "consumer.error",
            code=event.code,
            message=scrub(event.message),
            fatal=False,
            **repeats,
        )

    def _topic_missing(self, event: TopicMissing) -> None:
        now = self._now()
        last = self._topic_missing_at.get(event.topic)
        if last is not None and now - last < self._topic_missing_interval_s:
            self._topic_missing_repeats[event.topic] = (
                self._topic_missing_repeats.get(event.topic, 0) + 1
            )
            return
        self._topic_missing_at[event.topic] = now
        self._log.warning(
            "topic.missing",
            topic=event.topic,
            detail="subscribed topic does not exist yet; waiting for it",
            repeats_since_last=self._topic_missing_repeats.pop(event.topic, 0),
        )
