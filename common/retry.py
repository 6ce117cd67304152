"""The run loop's one retry policy: which failures are retried, how often, and how long between.

Retries live here and nowhere else (no handler retries on its own), so the decision table
(`common.failures.decide`) is applied the same way to a handler call and to a DLQ write:
transient errors are retried without limit, with exponential backoff and jitter; unexpected
errors a bounded number of times (`MAX_ATTEMPTS`), and only where the caller allows it (one
record alone, never a whole batch); anything else is not retried at all. Each failed attempt
is classified once: the decision says whether to try again and as what (the `kind` of the
`RetryScheduled` announced before the wait).

The policy is tenacity, but its "sleep" is not a sleep: the run loop passes a wait that
polls with every partition paused (`Runner._paused_wait`), so the member stays in its group
and serves rebalances while it backs off. A stop request ends that wait by raising
`Stopping`, which the policy lets through untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from common.errors import CriticalError
from common.failures import Decision, decide
from common.lifecycle import Bus, RetryScheduled
from common.records import Record
from common.settings import RunnerSettings

T = TypeVar("T")


class Stopping(Exception):  # noqa: N818 - control flow, never escapes the runner
    """Raised out of a retry wait when shutdown was requested."""


class GaveUp(Exception):  # noqa: N818 - carries the last error out of the retry policy
    """The attempt failed for good: not retryable, or out of attempts; the last error is kept."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


class RetryPolicy:
    """Runs an attempt under the decision table, waiting with `sleep` between tries."""

    def __init__(
        self,
        settings: RunnerSettings,
        transient: tuple[type[BaseException], ...],
        bus: Bus,
        *,
        sleep: Callable[[float], None],
    ) -> None:
        self._max_attempts = settings.max_attempts
        self._transient = transient
        self._bus = bus
        self._sleep = sleep
        initial = settings.retry_initial_seconds
        self._backoff = wait_exponential_jitter(
            multiplier=initial, max=settings.retry_max_seconds, jitter=initial
        )
        self.outage: str | None = None
        """The transient error being retried now (`Type: message`), or None; the run loop
        clears it once a batch goes through."""

    def run(self, attempt: Callable[[], T], records: Sequence[Record], *, bounded: bool) -> T:
        """Run `attempt` under the policy; `bounded` allows retrying unexpected errors.

        Raises `GaveUp` when the attempt failed for good; lets `CriticalError` and
        `Stopping` through.
        """

        kind = ""  # what the failure about to be retried is: "transient" or "unexpected"

        def again(state: RetryCallState) -> bool:
            """Classify the attempt's failure (once): whether to try again, and as what."""
            nonlocal kind
            error = state.outcome.exception() if state.outcome else None
            if error is None:
                return False
            decision = decide(error, self._transient)
            if decision is Decision.RETRY:
                kind = "transient"
                return True
            if bounded and decision is Decision.RETRY_BOUNDED:
                kind = "unexpected"
                return state.attempt_number < self._max_attempts
            return False

        retrying = Retrying(
            retry=again,
            wait=self._backoff,
            sleep=self._sleep,
            before_sleep=lambda state: self._announce(state, records, kind),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except (CriticalError, Stopping):
            raise
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise GaveUp(exc, attempts) from exc

    def _announce(self, state: RetryCallState, records: Sequence[Record], kind: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        assert error is not None
        if kind == "transient":
            self.outage = f"{type(error).__name__}: {str(error)[:200]}"
        delay = state.next_action.sleep if state.next_action else 0.0
        self._bus.emit(RetryScheduled(records, kind, error, state.attempt_number, delay))
