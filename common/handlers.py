"""What a service declares: its handler, the errors it calls transient, and optional hooks.

The primary contract is the batch handler: it receives every parsed record of one poll
(several partitions and event types mixed, in offset order per partition) and applies them,
typically in one database transaction. It returns the records it rejects for good, with the
reason (`PermanentError`), and those whose effect could not happen now for a reason of their
own (`RetryLater`: the loop calls the handler again with them alone, a bounded number of
times); every other record counts as handled once it returns. Raising means "the batch did
not happen": the run loop decides what next from the exception (see `common.errors`).

`per_event` adapts plain per-event functions to that contract for services that need no batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.errors import PermanentError, RetryLater
from common.events import PaymentEvent
from common.records import Inbound, TopicPartition
from common.topics import EVENT_TYPES

Rejections = Mapping[Inbound, PermanentError | RetryLater]
BatchHandler = Callable[[Sequence[Inbound]], Rejections | None]
StartingOffsets = Callable[[Sequence[TopicPartition]], Mapping[TopicPartition, int]]
EventHandler = Callable[[Any], None]


@dataclass(frozen=True)
class ConsumerSpec:
    """Everything the run loop needs to know about one service."""

    name: str
    group_id: str
    """The consumer group, as `settings.group_id(DEFAULT)` resolves it (`KAFKA_GROUP_ID` wins):
    the loop joins it and names the DLQ and spans after it, and reads it nowhere else."""
    handle: BatchHandler
    event_types: Sequence[str] = EVENT_TYPES
    transient_errors: tuple[type[BaseException], ...] = ()
    starting_offsets: StartingOffsets | None = None
    """For services that keep offsets with their state (exactly-once): where to resume."""
    validate: Callable[[PaymentEvent], None] | None = None
    """A pure check that raises `PermanentError` for an event this service can never apply.

    Rejected records are dead-lettered *before* the handler runs, so a service that stores
    offsets with its state (and resumes from them) can never cover a record whose DLQ copy
    was not yet acknowledged when the process died."""
    readiness_checks: Mapping[str, Callable[[], bool]] = field(default_factory=dict)
    on_stop: Callable[[], None] | None = None
    """Called (from a signal handler: it must only set a flag) when shutdown is requested, so
    a handler in a long call can stop starting new work and end the call by raising
    `common.errors.ShutdownRequested`, leaving its records to be delivered again; what it
    finished it must make durable before raising (`common.retry.until_durable`)."""
    closers: Sequence[Callable[[], None]] = ()
    """What the service opened, closed by the run loop in this order once it stopped, whatever
    stopped it (a crash too), after its consumer: SMTP sessions, a lock's connection, the
    database engine. One that raises is logged, and neither stops the others nor hides why
    the loop stopped."""
    record_attempts: int = 3  # last: a new field never moves the others
    """How many calls a record the handler keeps returning as `RetryLater` gets (the first
    included) before the loop gives up on it and dead-letters it under its `error_type`. The
    loop backs off between calls as for a transient error, every partition paused, so one
    such record holds the others a few seconds at most. A service that stores its offsets
    with its state must not store one past a record it returns as `RetryLater`."""


def per_event(handlers: Mapping[type[PaymentEvent], EventHandler]) -> BatchHandler:
    """A batch handler calling `handlers[type(event)](event)` per record; others are ignored.

    A `PermanentError` rejects that record only; any other exception fails the batch, and the
    run loop then retries records one at a time, so handlers must be idempotent.
    """

    def handle(batch: Sequence[Inbound]) -> Rejections:
        rejected: dict[Inbound, PermanentError] = {}
        for inbound in batch:
            handler = handlers.get(type(inbound.event))
            if handler is None:
                continue
            try:
                handler(inbound.event)
            except PermanentError as exc:
                rejected[inbound] = exc
        return rejected

    return handle
