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
`ShutdownRequested`, which the policy lets through untouched.

Two more uses of the same policy, so that no handler needs retries of its own:

* `backoff`: the run loop's wait before calling the handler again with the records it
  deferred (`RetryLater`), announced as a `RetryScheduled` of kind "deferred";
* `until_durable(fn)`: for a handler that must make something durable within its call
  (outcomes of emails already sent): `fn` is retried under the policy of the loop running
  that call (transient errors without limit, partitions paused), so nothing has to be kept
  for a later call. The runner makes its policy current around each handler call
  (`RetryPolicy.serving`); with no loop running (a unit test), `fn` is simply called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TypeVar

from tenacity import RetryCallState, Retrying, wait_exponential_jitter

from common.errors import CriticalError, ShutdownRequested
from common.failures import Decision, decide
from common.lifecycle import Bus, RetryScheduled
from common.records import Inbound, Record
from common.settings import RunnerSettings

T = TypeVar("T")


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
        `ShutdownRequested` through.
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
        except (CriticalError, ShutdownRequested):
            raise
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise GaveUp(exc, attempts) from exc

    def backoff(
        self, records: Sequence[Record], kind: str, reason: BaseException, attempt: int
    ) -> None:
        """Wait as the policy waits after failed attempt number `attempt`, announcing it first."""
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = attempt
        delay = self._backoff(state)
        self._bus.emit(RetryScheduled(records, kind, reason, attempt, delay))
        self._sleep(delay)

    def serving(self, batch: Sequence[Inbound]) -> _Serving:
        """Make this the policy `until_durable` uses while a handler call on `batch` runs."""
        return _Serving(self, batch)

    def _announce(self, state: RetryCallState, records: Sequence[Record], kind: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        assert error is not None
        if kind == "transient":
            self.outage = f"{type(error).__name__}: {str(error)[:200]}"
        delay = state.next_action.sleep if state.next_action else 0.0
        self._bus.emit(RetryScheduled(records, kind, error, state.attempt_number, delay))


_CALL: ContextVar[tuple[RetryPolicy, Sequence[Inbound]] | None] = ContextVar(
    "dreamscape_handler_call", default=None
)


class _Serving:
    """`with policy.serving(records):` the handler call the run loop is in (a cheap class,
    entered once per handler call)."""

    __slots__ = ("_call", "_token")

    def __init__(self, policy: RetryPolicy, batch: Sequence[Inbound]) -> None:
        self._call = (policy, batch)
        self._token: Token[tuple[RetryPolicy, Sequence[Inbound]] | None] | None = None

    def __enter__(self) -> None:
        self._token = _CALL.set(self._call)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CALL.reset(self._token)


def until_durable(fn: Callable[[], T]) -> T:
    """Call `fn`, retried on transient errors for as long as it takes, within this handler call.

    For what a handler must make durable before its call ends (outcomes of emails the
    server already accepted), so that it keeps nothing for a later call. Under the run loop
    the wait is the loop's (partitions paused, the member still polling, announced as
    "transient"); a stop request ends it with `ShutdownRequested`. Any other error is raised
    as it is, at once. With no loop running (a unit test), `fn` is called once.
    """
    call = _CALL.get()
    if call is None:
        return fn()
    policy, batch = call
    try:
        return policy.run(fn, [i.record for i in batch], bounded=False)
    except GaveUp as failure:  # not transient: the error itself, as `fn` raised it
        error = failure.error
    raise error
