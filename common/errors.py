"""The handful of error types the run loop's decision table knows.

| error            | meaning                                  | the run loop                          |
|------------------|------------------------------------------|---------------------------------------|
| `InvalidEvent`   | the record cannot be parsed or validated | dead-letter at once                   |
| `PermanentError` | a handler says this record can never work | dead-letter at once                   |
| `TransientError` | a dependency is unreachable (DB, SMTP...) | pause, back off, retry without limit  |
| `CriticalError`  | carrying on would do harm                | stop without storing the offset       |
| anything else    | a bug or a surprise                      | retry a bounded number of times, then dead-letter |

Services may also declare their own exception types as transient (for instance SQLAlchemy's
`OperationalError`) so that handlers need not wrap every driver error.
"""

from __future__ import annotations

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


class CriticalError(Exception):
    """Stop the consumer without committing: continuing could lose or corrupt data."""
