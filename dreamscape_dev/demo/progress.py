"""Following the services until every group has committed everything that was published.

Lag per service is the sum over partitions of (end offset known from the delivery reports)
minus (the group's committed offset). The broker's watermarks are never used (they can lag
on the embedded broker), and a group is caught up only when its commits reach every end:
services store an offset only after its effect is durable, so a commit at the end means the
effects are in place. Analytics resumes from offsets kept in its own database, but its run
loop also commits to Kafka, which is what this watches.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, TextIO

from common.errors import TransientError
from common.kafka import GroupOffsets
from common.records import TopicPartition
from dreamscape_dev.demo.orchestra import ServiceProcess, first_death

TICK_S: Final = 0.5
"""How often commits are read (a condition poll, not a synchronisation)."""
PLAIN_LINE_EVERY_S: Final = 2.0
"""Off a terminal, one progress line per this many seconds."""

Outcome = Literal["caught_up", "died", "timeout"]


def lag(ends: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int]) -> int:
    """Records published but not yet committed, summed over partitions."""
    return sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())


@dataclass(frozen=True, slots=True)
class FollowResult:
    outcome: Outcome
    seconds: float
    lags: dict[str, int]
    dead: ServiceProcess | None = None


class ProgressLine:
    """One line rewritten in place on a terminal; a line every ~2 s otherwise."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out
        self._tty = out.isatty()
        self._last_plain = -PLAIN_LINE_EVERY_S

    def show(self, text: str, elapsed: float, *, final: bool = False) -> None:
        if self._tty:
            self._out.write(f"\r{text}\x1b[K" + ("\n" if final else ""))
        elif final or elapsed - self._last_plain >= PLAIN_LINE_EVERY_S:
            self._last_plain = elapsed
            self._out.write(text + "\n")
        self._out.flush()


def follow(
    bootstrap: str,
    ends: Mapping[TopicPartition, int],
    services: Sequence[ServiceProcess],
    *,
    timeout_s: float,
    extra: Callable[[], str] = lambda: "",
    line: ProgressLine | None = None,
) -> FollowResult:
    """Watch every group's lag until all reach zero, a service dies, or `timeout_s` passes."""
    line = line or ProgressLine()
    readers = {
        s.name: GroupOffsets({"bootstrap.servers": bootstrap}, s.definition.group) for s in services
    }
    lags = {name: sum(ends.values()) for name in readers}
    started = time.monotonic()
    try:
        while True:
            elapsed = time.monotonic() - started
            lags = _read_lags(readers, ends, lags)
            dead = first_death(services)
            outcome = _outcome(dead, lags, elapsed > timeout_s)
            line.show(_describe(lags, extra(), elapsed), elapsed, final=outcome is not None)
            if outcome is not None:
                return FollowResult(outcome, elapsed, lags, dead)
            time.sleep(TICK_S)  # the next reading of the commits; the loop polls a condition
    finally:
        for reader in readers.values():
            reader.close()


def _outcome(dead: ServiceProcess | None, lags: Mapping[str, int], late: bool) -> Outcome | None:
    """A death beats catching up (its effects may be incomplete); None: keep following."""
    if dead is not None:
        return "died"
    if all(value == 0 for value in lags.values()):
        return "caught_up"
    return "timeout" if late else None


def _read_lags(
    readers: Mapping[str, GroupOffsets],
    ends: Mapping[TopicPartition, int],
    previous: Mapping[str, int],
) -> dict[str, int]:
    lags = dict(previous)
    for name, reader in readers.items():
        # A coordinator busy with a rebalance may not answer: keep the last reading this tick.
        with contextlib.suppress(TransientError):
            lags[name] = lag(ends, reader.read(ends))
    return lags


def _describe(lags: Mapping[str, int], extra: str, elapsed: float) -> str:
    parts = "  ".join(f"{name} {value:>5,}" for name, value in lags.items())
    return f"  lag  {parts}  {extra}  {elapsed:5.1f} s"
