"""Running a consumer in a test: the run loop on a thread, and waiting on what it does.

Integration tests decide "done" from the effects they expect, polled with a deadline, never
from a fixed sleep (and never from a consumer lag of zero: some brokers' watermarks lag).
`RunnerThread` is the one way to run a `Runner` on a thread of the test process: a context
manager that starts it and, on the way out, stops it (it finishes its batch and commits),
waits for it and re-raises what the loop raised.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from common.runner import Runner

POLL_EVERY_S = 0.05


def wait_until(
    condition: Callable[[], object],
    timeout_s: float,
    what: str,
    *,
    abort: Callable[[], str | None] = lambda: None,
) -> None:
    """Return once `condition()` holds; fail with `what` if it still does not after `timeout_s`.

    `abort` returns a reason to give up at once (the awaited thing can no longer happen).
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if (reason := abort()) is not None:
            raise AssertionError(f"gave up waiting for {what}: {reason}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_EVERY_S)


class RunnerThread:
    """`runner`'s loop on a daemon thread; `with RunnerThread(runner) as loop:` runs it.

    On the way out of the block the loop is stopped and joined, and what it raised is raised
    again; if the block itself raised, that error goes on (with the loop's added as a note).
    """

    def __init__(
        self, runner: Runner, *, name: str = "runner", stop_within_s: float = 15.0
    ) -> None:
        self._runner: Runner | None = runner
        self._stop_within_s = stop_within_s
        self.result: str | None = None
        """Why the loop stopped (`Runner.run`'s answer), once it has."""
        self.error: BaseException | None = None
        """What the loop raised, if it did."""
        self._thread = threading.Thread(target=self._run, args=(runner,), name=name, daemon=True)

    @property
    def runner(self) -> Runner:
        assert self._runner is not None, "the runner has stopped and been released"
        return self._runner

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def died(self) -> str | None:
        """Why waiting on the loop is pointless (its thread ended), for `wait_until(abort=...)`."""
        return None if self.alive else f"the run loop ended: {self.error!r}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> str | None:
        """Ask the loop to stop, wait for it, and re-raise what it raised; returns why it stopped."""
        self._finish()
        if self.error is not None:
            raise self.error
        return self.result

    def _run(self, runner: Runner) -> None:
        try:
            self.result = runner.run()
        except BaseException as exc:  # handed to the test's thread by `stop`
            self.error = exc

    def _finish(self) -> None:
        """Stop and join the loop, then drop the runner so its clients disconnect now."""
        if self._runner is not None:
            self._runner.stop()
        self._thread.join(self._stop_within_s)
        if self._thread.is_alive():
            raise AssertionError(f"the run loop did not stop within {self._stop_within_s} s")
        self._runner = None  # runner <-> consumer is a cycle: only the collector frees it
        gc.collect()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        try:
            self._finish()
        except AssertionError as hung:
            exc.add_note(str(hung))
        if self.error is not None:
            exc.add_note(f"the run loop failed too: {self.error!r}")


def running(runner: Runner, *, name: str = "runner", stop_within_s: float = 15.0) -> RunnerThread:
    """`with running(runner):` runs `runner` on a thread and stops it on the way out."""
    return RunnerThread(runner, name=name, stop_within_s=stop_within_s)
