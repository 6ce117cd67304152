"""A log throttle: a repeated error is logged once per state change, then summarised.

A client that cannot reach its broker, or is refused by it, reports the same error many
times a second for as long as it lasts (librdkafka retries every connection). One line when
the state changes (a key seen for the first time, or again after a quiet interval), then at
most one summary per `interval_s` with how many were suppressed, says all there is to say.
Pure: the clock is injected, and the caller decides what a key is (an error code, a cause).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final

SUMMARY_INTERVAL_S: Final = 30.0
"""A repeated error is summarised at most once per this many seconds (per key)."""

_MAX_KEYS: Final = 256


@dataclass(frozen=True, slots=True)
class Verdict:
    """Let this occurrence through: as a state change, or as a summary of the repeats."""

    change: bool
    """True: a new state (first seen, or back after a quiet interval); False: a summary."""
    suppressed: int
    """Occurrences of the key not logged since the last line let through."""


@dataclass(slots=True)
class _State:
    logged_at: float
    seen_at: float
    suppressed: int = 0


class LogThrottle:
    """Decides, per key, which occurrences of a repeated error are logged."""

    def __init__(
        self, interval_s: float = SUMMARY_INTERVAL_S, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._now = now
        self._keys: dict[Hashable, _State] = {}

    def admit(self, key: Hashable) -> Verdict | None:
        """The verdict for one occurrence of `key`: None means do not log it."""
        now = self._now()
        state = self._keys.get(key)
        if state is None or now - state.seen_at > self._interval_s:
            suppressed = state.suppressed if state is not None else 0
            self._remember(key, _State(logged_at=now, seen_at=now))
            return Verdict(change=True, suppressed=suppressed)
        state.seen_at = now
        if now - state.logged_at >= self._interval_s:
            suppressed, state.suppressed, state.logged_at = state.suppressed, 0, now
            return Verdict(change=False, suppressed=suppressed)
        state.suppressed += 1
        return None

    def _remember(self, key: Hashable, state: _State) -> None:
        if len(self._keys) >= _MAX_KEYS:  # keys are few (codes, causes); never let them grow
            self._keys.clear()
        self._keys[key] = state
