"""Running a consumer in a test: the run loop on a thread, and waiting on what it does.

Integration tests decide "done" from the effects they expect, polled with a deadline, never
from a fixed sleep (and never from a consumer lag of zero: some brokers' watermarks lag).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


@contextmanager
def running(runner: Runner, *, stop_within_s: float = 15.0) -> Iterator[Runner]:
    """Run `runner` on a thread; on the way out stop it (it commits) and wait for it."""
    thread = threading.Thread(target=runner.run, name="runner", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(stop_within_s)
    assert not thread.is_alive(), f"the run loop did not stop within {stop_within_s} s"
