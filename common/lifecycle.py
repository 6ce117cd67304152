"""Named lifecycle events of the run loop, and the bus that delivers them.

The run loop says what happened (a batch was handled, a record was dead-lettered, offsets
were committed...) by emitting one of these values; logging and metrics are subscribers.
That keeps both out of the loop's code and lets a team add its own subscriber (tracing,
audit) without touching the loop. Events are emitted per batch on the hot path and per
record only for the rare outcomes (retry, dead letter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from common.records import Inbound, Record, TopicPartition


@dataclass(frozen=True, slots=True)
class BatchHandled:
    """A batch's handler returned and its effects are durable."""

    handled: Sequence[Inbound]
    duration_s: float


@dataclass(frozen=True, slots=True)
class RecordDeadLettered:
    """A record was written to the DLQ and the broker acknowledged it."""

    record: Record
    inbound: Inbound | None
    error_type: str
    message: str
    attempts: int
    dlq_topic: str


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """Handling failed; the records' partitions are paused until `delay_s` has passed."""

    records: Sequence[Record]
    kind: str  # "transient", "unexpected" or "deferred" (a handler's `RetryLater`)
    error: BaseException
    attempt: int
    delay_s: float


@dataclass(frozen=True, slots=True)
class OffsetsStored:
    """Offsets (next offset to read) stored for the next commit."""

    offsets: Mapping[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class OffsetsCommitted:
    """A synchronous or periodic commit succeeded."""

    offsets: Mapping[TopicPartition, int]
    reason: str  # "periodic", "revoke" or "shutdown"


@dataclass(frozen=True, slots=True)
class PartitionsChanged:
    """The group assigned, revoked or lost partitions."""

    change: str  # "assigned", "revoked" or "lost"
    partitions: Sequence[TopicPartition]


@dataclass(frozen=True, slots=True)
class TopicMissing:
    """A subscribed topic does not exist (yet); the consumer keeps waiting for it."""

    topic: str


@dataclass(frozen=True, slots=True)
class ConsumerError:
    """The client reported an error that is not about one record."""

    code: str
    message: str
    fatal: bool


@dataclass(frozen=True, slots=True)
class LagMeasured:
    """Consumer lag per partition from the client's statistics (approximate on some brokers)."""

    lag: Mapping[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class LoopStopped:
    """The run loop left; `reason` says why (signal, critical error...)."""

    reason: str
    committed: Mapping[TopicPartition, int] = field(default_factory=dict)


LifecycleEvent = (
    BatchHandled
    | RecordDeadLettered
    | RetryScheduled
    | OffsetsStored
    | OffsetsCommitted
    | PartitionsChanged
    | TopicMissing
    | ConsumerError
    | LagMeasured
    | LoopStopped
)

Subscriber = Callable[[LifecycleEvent], None]


class Bus:
    """Delivers each lifecycle event to every subscriber, in subscription order."""

    def __init__(self, subscribers: Sequence[Subscriber] = ()) -> None:
        self._subscribers = list(subscribers)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, event: LifecycleEvent) -> None:
        for subscriber in self._subscribers:
            subscriber(event)
