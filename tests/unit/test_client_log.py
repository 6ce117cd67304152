"""The clients' log: librdkafka's repeated lines throttled, and the cause of the last error."""

from __future__ import annotations

import logging

import pytest

from common.kafka.client import ClientLog, cause_category
from common.throttle import LogThrottle

FMT = "%s [%s] %s"
REFUSED = "[thrd:b:9092/bootstrap]: b:9092/bootstrap: Connect to ipv4#10.0.0.1:9092 failed: Connection refused (after 0ms in state CONNECT)"
SSL = "[thrd:ssl://b:9093/bootstrap]: ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed"
SASL = "[thrd:sasl_ssl://b:9094/bootstrap]: sasl_ssl://b:9094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


@pytest.fixture
def lines() -> Lines:
    return Lines()


def client_log(lines: Lines, clock: Clock) -> ClientLog:
    logger = logging.Logger("librdkafka-test", logging.DEBUG)
    logger.addHandler(lines)
    return ClientLog(logger, LogThrottle(interval_s=30.0, now=clock), now=clock)


class TestCauseCategory:
    @pytest.mark.parametrize(
        ("code", "text", "category"),
        [
            (None, REFUSED, "broker unreachable"),
            ("_ALL_BROKERS_DOWN", "1/1 brokers are down", "broker unreachable"),
            (None, SSL, "SSL handshake failed"),
            ("_SSL", "whatever", "SSL handshake failed"),
            (None, SASL, "authentication failed"),
            ("SASL_AUTHENTICATION_FAILED", "", "authentication failed"),
            (
                "GROUP_AUTHORIZATION_FAILED",
                "Broker: Group authorization failed",
                "authorization failed",
            ),
            ("TOPIC_AUTHORIZATION_FAILED", "", "authorization failed"),
            ("UNKNOWN_TOPIC_OR_PART", "Broker: Unknown topic or partition", None),
        ],
    )
    def test_a_client_error_has_a_stable_category(
        self, code: str | None, text: str, category: str | None
    ) -> None:
        """Codes and librdkafka's texts map to a few categories that never quote the text."""
        assert cause_category(code, text) == category


class TestClientLog:
    def test_a_repeated_line_is_logged_once_then_summarised_with_its_count(
        self, lines: Lines
    ) -> None:
        """The same failure 20 times a second for a minute gives its first line and one summary per 30 s with the count and the last text."""
        clock = Clock()
        log = client_log(lines, clock)
        for tick in range(20 * 60):
            clock.now = 100.0 + tick / 20
            log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", REFUSED)
        assert lines.texts[0] == f"FAIL [rdkafka#consumer-1] {REFUSED}"
        assert lines.texts[1:] == [
            f"FAIL [rdkafka#consumer-1] {REFUSED} (600 times since the last line)"
        ]

    def test_a_new_cause_is_logged_at_once(self, lines: Lines) -> None:
        """A client whose failure changes from refused to an SSL failure logs the new one at once."""
        clock = Clock()
        log = client_log(lines, clock)
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", REFUSED)
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", REFUSED)
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", SSL)
        assert len(lines.texts) == 2
        assert "SSL handshake failed" in lines.texts[1]

    def test_each_client_has_its_own_first_line(self, lines: Lines) -> None:
        """The consumer's and the producer's first failure are both logged."""
        log = client_log(lines, Clock())
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", REFUSED)
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#producer-2", REFUSED)
        assert len(lines.texts) == 2

    def test_lines_below_warning_are_not_throttled(self, lines: Lines) -> None:
        """Debug lines (asked for with the client's `debug` property) all pass."""
        log = client_log(lines, Clock())
        for _ in range(5):
            log.log(logging.DEBUG, FMT, "BROKER", "rdkafka#consumer-1", "state change")
        assert len(lines.texts) == 5

    def test_the_last_cause_is_remembered_then_forgotten_when_old(self, lines: Lines) -> None:
        """The cause of the last error is named while recent, and None a minute after it."""
        clock = Clock()
        log = client_log(lines, clock)
        assert log.cause() is None
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#consumer-1", SASL)
        assert log.cause() == "authentication failed"
        log.note_error("GROUP_AUTHORIZATION_FAILED", "Broker: Group authorization failed")
        assert log.cause() == "authorization failed"
        clock.now += 61.0
        assert log.cause() is None
