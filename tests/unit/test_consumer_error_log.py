"""The lifecycle log's `consumer.error` lines: a repeated client error is summarised, not repeated."""

from __future__ import annotations

from structlog.testing import capture_logs

from common.lifecycle import ConsumerError
from common.logs import LogSubscriber


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestRepeatedConsumerErrors:
    def test_a_repeated_consumer_error_is_logged_once_then_summarised(self) -> None:
        """The same code 5 times a second for a minute gives one line, then one summary per 30 s carrying the count."""
        clock = Clock()
        subscriber = LogSubscriber(now=clock)
        with capture_logs() as entries:
            for tick in range(5 * 60):
                clock.now = tick / 5
                subscriber(
                    ConsumerError(
                        "GROUP_AUTHORIZATION_FAILED",
                        "Broker: Group authorization failed",
                        fatal=False,
                    )
                )
        assert [e["event"] for e in entries] == ["consumer.error", "consumer.error"]
        assert "repeats_since_last" not in entries[0]
        assert entries[1]["repeats_since_last"] == 149

    def test_another_code_is_logged_at_once(self) -> None:
        """A different error code while one is being summarised gets its own line at once."""
        subscriber = LogSubscriber(now=Clock())
        with capture_logs() as entries:
            subscriber(ConsumerError("_TRANSPORT", "down", fatal=False))
            subscriber(ConsumerError("_TRANSPORT", "down", fatal=False))
            subscriber(ConsumerError("TOPIC_AUTHORIZATION_FAILED", "no", fatal=False))
        assert [e["code"] for e in entries] == ["_TRANSPORT", "TOPIC_AUTHORIZATION_FAILED"]

    def test_a_fatal_error_is_always_logged(self) -> None:
        """A fatal client error is never suppressed, even right after the same code."""
        subscriber = LogSubscriber(now=Clock())
        with capture_logs() as entries:
            subscriber(ConsumerError("_FENCED", "x", fatal=False))
            subscriber(ConsumerError("_FENCED", "x", fatal=True))
        assert [e["fatal"] for e in entries] == [False, True]
