"""The one decision table for a failure: what the run loop does with each kind of error.

| error | decision |
|---|---|
| `CriticalError` | stop without storing the offset |
| `FatalClientError` (a `CriticalError`: the consumer or DLQ producer failed for good) | stop, commit only what is stored, exit 1 |
| `InvalidEvent`, `PermanentError` | dead-letter at once |
| `TransientError`, `ConnectionError`, `TimeoutError`, a service's `transient_errors` | retry without limit, partitions paused |
| anything else | retry the record alone a bounded number of times, then dead-letter it |

The README's table and docs/architecture.md say the same, with the bounded-time rule.
"""

from __future__ import annotations

from enum import Enum

from common.errors import CriticalError, InvalidEvent, PermanentError, TransientError


class Decision(Enum):
    DEAD_LETTER = "dead_letter"
    RETRY = "retry"
    RETRY_BOUNDED = "retry_bounded"
    STOP = "stop"


def decide(error: BaseException, transient: tuple[type[BaseException], ...]) -> Decision:
    """The decision for `error`; `transient` adds a service's own outage types."""
    if isinstance(error, CriticalError):
        return Decision.STOP
    if isinstance(error, InvalidEvent | PermanentError):
        return Decision.DEAD_LETTER
    if isinstance(error, (TransientError, ConnectionError, TimeoutError, *transient)):
        return Decision.RETRY
    return Decision.RETRY_BOUNDED
