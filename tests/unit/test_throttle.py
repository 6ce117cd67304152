"""The log throttle: a repeated error is logged once per state change, then summarised."""

from __future__ import annotations

from common.throttle import LogThrottle, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestLogThrottle:
    def test_the_first_occurrence_of_a_key_is_logged_as_a_state_change(self) -> None:
        """A key never seen before is let through at once, marked as a change, with no repeats."""
        throttle = LogThrottle(interval_s=30.0, now=Clock())
        assert throttle.admit("_TRANSPORT") == Verdict(change=True, suppressed=0)

    def test_repeats_within_the_interval_are_suppressed(self) -> None:
        """The same key again before the interval has passed is not logged."""
        clock = Clock()
        throttle = LogThrottle(interval_s=30.0, now=clock)
        throttle.admit("_TRANSPORT")
        for step in range(100):
            clock.now = step * 0.05
            assert throttle.admit("_TRANSPORT") is None

    def test_a_summary_counts_the_repeats_once_the_interval_has_passed(self) -> None:
        """The first repeat after the interval is let through as a summary carrying how many were suppressed before it."""
        clock = Clock()
        throttle = LogThrottle(interval_s=30.0, now=clock)
        throttle.admit("_TRANSPORT")
        for _ in range(19):
            clock.now += 1.0
            throttle.admit("_TRANSPORT")
        clock.now = 30.0
        assert throttle.admit("_TRANSPORT") == Verdict(change=False, suppressed=19)
        clock.now = 31.0
        assert throttle.admit("_TRANSPORT") is None

    def test_a_new_key_is_a_state_change_logged_at_once(self) -> None:
        """Another key while one is being suppressed is let through at once."""
        clock = Clock()
        throttle = LogThrottle(interval_s=30.0, now=clock)
        throttle.admit("_TRANSPORT")
        clock.now = 1.0
        throttle.admit("_TRANSPORT")
        assert throttle.admit("_AUTHENTICATION") == Verdict(change=True, suppressed=0)

    def test_a_key_back_after_a_quiet_interval_is_a_state_change(self) -> None:
        """A key not seen for a whole interval is logged again as a change, with the suppressed ones it had left unsummarised."""
        clock = Clock()
        throttle = LogThrottle(interval_s=30.0, now=clock)
        throttle.admit("_TRANSPORT")
        clock.now = 5.0
        throttle.admit("_TRANSPORT")
        clock.now = 5.0 + 30.0 + 0.1
        assert throttle.admit("_TRANSPORT") == Verdict(change=True, suppressed=1)

    def test_the_lines_let_through_are_bounded_by_the_rate(self) -> None:
        """Twenty errors a second for ten minutes let through one line plus one per interval."""
        clock = Clock()
        throttle = LogThrottle(interval_s=30.0, now=clock)
        let_through = 0
        for tick in range(20 * 600):
            clock.now = tick / 20
            let_through += throttle.admit("_TRANSPORT") is not None
        assert 2 <= let_through <= 1 + 600 // 30

    def test_keys_are_throttled_independently(self) -> None:
        """Suppressing one key does not suppress another's first line nor its summaries."""
        clock = Clock()
        throttle = LogThrottle(interval_s=10.0, now=clock)
        assert throttle.admit("a") is not None
        assert throttle.admit("b") is not None
        clock.now = 5.0
        assert throttle.admit("a") is None
        assert throttle.admit("b") is None
        clock.now = 10.0
        assert throttle.admit("a") == Verdict(change=False, suppressed=1)
        assert throttle.admit("b") == Verdict(change=False, suppressed=1)
