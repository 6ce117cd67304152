"""The one place a failure is classified: what the run loop does with it, and its DLQ name.

| error | decision |
|---|---|
| `CriticalError` | stop without storing the offset |
| `FatalClientError` (a `CriticalError`: the consumer or DLQ producer failed for good) | stop, commit only what is stored, exit 1 |
| `ShutdownRequested` (the process is stopping) | stop the batch unstored; the loop then commits what is stored |
| `InvalidEvent`, `PermanentError` | dead-letter at once |
| `TransientError`, `ConnectionError`, `TimeoutError`, a service's `transient_errors` | retry without limit, partitions paused |
| anything else | retry the record alone a bounded number of times, then dead-letter it |

A record a handler returns as `RetryLater` (a failure of its own while the others succeed,
not an exception) is retried by the run loop alone, `ConsumerSpec.record_attempts` calls
in all, then dead-lettered under its `error_type`.

A dead-lettered record is named in `dlq.error.type` by the same table: an invalid record by
the parser's reason (`not_json`...), a `PermanentError` or a `RetryLater` given up on by its
`error_type`, anything else as
`unexpected:<Type>`. The retry policy (`common.retry`) asks `decide` once per failed
attempt; the run loop asks it for what a service's `validate` raised; `dead_letter` builds
every letter the loop writes (`common.dlq_writer`).

Two lists of failures live elsewhere on purpose, each feeding this table rather than
deciding anything itself:

* which database errors are outages (`common.db.TRANSIENT_DB_ERRORS`, and
  `DatabaseOutage` matching PostgreSQL's SQLSTATEs): a service declares them in
  `ConsumerSpec.transient_errors`, the `transient` argument of `decide`. They name
  SQLAlchemy's types, and the loop serves services without a database;
* which produce errors refuse a record for good (`PERMANENT_PRODUCE_ERRORS` in
  `common.kafka.producer`): librdkafka's codes, which only `common.kafka` may know. The
  producer turns them into `ProduceRefusedError`, which is not a record's failure but an
  answer to a DLQ write: the writer replaces the letter by a marker letter.

docs/architecture.md says the same, with the bounded-time rule.
"""

from __future__ import annotations

from enum import Enum

from common import dlq
from common.errors import (
    CriticalError,
    InvalidEvent,
    PermanentError,
    RetryLater,
    ShutdownRequested,
    TransientError,
)
from common.records import Inbound, Record


class Decision(Enum):
    DEAD_LETTER = "dead_letter"
    RETRY = "retry"
    RETRY_BOUNDED = "retry_bounded"
    STOP = "stop"


def decide(error: BaseException, transient: tuple[type[BaseException], ...]) -> Decision:
    """The decision for `error`; `transient` adds a service's own outage types."""
    if isinstance(error, CriticalError | ShutdownRequested):
        return Decision.STOP
    if isinstance(error, InvalidEvent | PermanentError):
        return Decision.DEAD_LETTER
    if isinstance(error, (TransientError, ConnectionError, TimeoutError, *transient)):
        return Decision.RETRY
    return Decision.RETRY_BOUNDED


def dead_letter(
    record: Record, inbound: Inbound | None, error: BaseException, attempts: int
) -> dlq.DeadLetter:
    """The letter for `record` (parsed into `inbound`, if it was) that failed with `error`."""
    if isinstance(error, InvalidEvent):
        return dlq.DeadLetter(record, inbound, error.reason, error.detail, attempts)
    if isinstance(error, RetryLater):  # given up on after `attempts` calls
        message = f"deferred {attempts} times: {error.reason}"
        return dlq.DeadLetter(record, inbound, error.error_type, message, attempts)
    if isinstance(error, PermanentError):
        kind = error.error_type
    else:
        kind = f"unexpected:{type(error).__name__}"
    return dlq.DeadLetter(record, inbound, kind, str(error) or repr(error), attempts)
