"""The handful of error types the run loop's decision table knows.

| error            | meaning                                  | the run loop                          |
|------------------|------------------------------------------|---------------------------------------|
| `InvalidEvent`   | the record cannot be parsed or validated | dead-letter at once                   |
| `PermanentError` | a handler says this record can never work | dead-letter at once                   |
| `RetryLater`     | a handler says this record's effect could not happen now, for a reason of its own (returned, like a rejection) | call the handler again with it alone, backing off, up to `ConsumerSpec.record_attempts`; then give up and dead-letter it |
| `TransientError` | a dependency is unreachable (DB, SMTP...) | pause, back off, retry without limit  |
| `CriticalError`  | carrying on would do harm                | stop without storing the offset       |
| `ShutdownRequested` | the process is stopping: the call leaves its work undone | leave the batch unstored (its records come again), commit, close |
| `FatalClientError` | the consumer or the DLQ producer failed for good (a `CriticalError`) | stop, commit what is durable, exit 1 |
| anything else    | a bug or a surprise                      | retry a bounded number of times, then dead-letter |

Services may also declare their own exception types as transient (for instance SQLAlchemy's
`OperationalError`) so that handlers need not wrap every driver error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

RejectionReason = Literal[
    "not_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "unknown_event_type",
    "event_type_mismatch",
    "unsupported_version",
    "empty_value",
]


class InvalidEvent(Exception):  # noqa: N818 - the name reads as the outcome it is
    """A record that is not a valid payment event; `reason` is machine-readable."""

    def __init__(self, reason: RejectionReason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectionReason = reason
        self.detail = detail
        self.field = field


class PermanentError(Exception):
    """The handler declares that this record will never succeed (dead-letter it now)."""

    def __init__(self, message: str, *, error_type: str = "permanent") -> None:
        super().__init__(message)
        self.error_type = error_type


class RetryLater(Exception):  # noqa: N818 - the name reads as the verdict it is
    """Returned (never raised) by a handler for one record, like a `PermanentError`: this
    record's effect could not happen now, for a reason of its own (its recipient's server
    said 4xx); the batch's other records are done.

    The run loop calls the handler again with the still-deferred records alone, backing off
    between calls, until they succeed or have had `ConsumerSpec.record_attempts` calls; then
    it calls `give_up` (if any: say, to record that it gave up) and dead-letters the record
    as `error_type`. An outage that no record causes is a `TransientError` instead.
    """

    def __init__(
        self,
        reason: str,
        *,
        error_type: str,
        give_up: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type
        self.give_up = give_up


class TransientError(Exception):
    """A dependency is unavailable; the same record will succeed later."""


class ProduceRefusedError(Exception):
    """The broker or client refused some records for good (too large, invalid): do not retry.

    `refused` maps the index of each refused record, in the sequence given to the producer,
    to the client's error code (`MSG_SIZE_TOO_LARGE`...). The others were acknowledged.
    """

    def __init__(self, refused: dict[int, str]) -> None:
        super().__init__(f"{len(refused)} record(s) refused: {sorted(set(refused.values()))}")
        self.refused = refused


class ShutdownRequested(Exception):  # noqa: N818 - a state, like TransientError
    """The process is stopping: raised to end a handler call (or a retry wait) early.

    The run loop raises it out of a retry wait once `stop()` was called, and a handler in a
    long call may raise it after `ConsumerSpec.on_stop` (having made durable what it
    finished). The retry policy lets it through; the loop stores nothing for the batch in
    hand (its records are delivered again), commits what was stored and closes.
    """


class CriticalError(Exception):
    """Stop the consumer without committing: continuing could lose or corrupt data."""


class FatalClientError(CriticalError):
    """The consumer or the DLQ producer failed for good: only a new process recovers.

    librdkafka makes some errors fatal (an idempotent producer refused its producer id, a
    static member fenced by another with its `group.instance.id`); the client then does
    nothing useful until it is recreated. `code` is the cause read from the client
    (`CLUSTER_AUTHORIZATION_FAILED`, `FENCED_INSTANCE_ID`...), not librdkafka's umbrella
    `_FATAL`; a `SystemError` out of the client is one too (`CLIENT_FAILURE`), never one
    record's bug.
    """

    def __init__(self, client: str, code: str, detail: str) -> None:
        self.client = client
        self.code = code
        self.detail = detail
        kind = "authorization failed" if self.authorization else "fatal error"
        super().__init__(f"{client}: {kind}: {code}: {detail}")

    @property
    def authorization(self) -> bool:
        """The cause is a refused permission (an ACL): granting it and restarting fixes it."""
        return "AUTHORIZATION" in self.code or "authorization" in self.detail.lower()
