"""The one decision table, and what a dead letter is named after (`common.failures`)."""

from __future__ import annotations

import pytest

from common.errors import (
    CriticalError,
    InvalidEvent,
    PermanentError,
    RetryLater,
    ShutdownRequested,
    TransientError,
)
from common.failures import Decision, dead_letter, decide
from common.parsing import parse_event
from common.records import Inbound, Record
from common.topics import Topics
from dreamscape_dev.testing.builders import encode, event

TOPICS = Topics(prefix="unit-")
TOPIC = TOPICS.for_event("payment.initiated")
RECORD = Record(TOPIC, 0, 7, b"k", encode(event("payment.initiated")), (), 1)


class DriverError(Exception):
    """A service-declared transient error type."""


class TestDecide:
    @pytest.mark.parametrize(
        ("error", "decision"),
        [
            (CriticalError("disk corrupt"), Decision.STOP),
            (ShutdownRequested("stopping"), Decision.STOP),
            (InvalidEvent("not_json", "x"), Decision.DEAD_LETTER),
            (PermanentError("no such booking"), Decision.DEAD_LETTER),
        ],
    )
    def test_critical_invalid_and_permanent_errors(
        self, error: BaseException, decision: Decision
    ) -> None:
        """Critical errors and a shutdown request stop the loop (never retried); invalid events and permanent errors go to the DLQ."""
        assert decide(error, ()) is decision

    @pytest.mark.parametrize(
        "error", [TransientError("db down"), ConnectionError("reset"), TimeoutError("slow")]
    )
    def test_transient_errors_are_retried(self, error: BaseException) -> None:
        """TransientError, ConnectionError and TimeoutError are retried without limit."""
        assert decide(error, ()) is Decision.RETRY

    def test_service_declared_transient_errors_are_retried(self) -> None:
        """An exception type the service declares transient is retried without limit."""
        assert decide(DriverError("driver error"), (DriverError,)) is Decision.RETRY

    def test_anything_else_gets_bounded_retries(self) -> None:
        """An unexpected exception (a bug) is retried a bounded number of times."""
        assert decide(ValueError("bug"), ()) is Decision.RETRY_BOUNDED

    def test_permanent_wins_over_a_declared_transient_type(self) -> None:
        """A PermanentError is dead-lettered even when its type is also declared transient."""
        assert decide(PermanentError("no"), (PermanentError,)) is Decision.DEAD_LETTER


class TestDeadLetter:
    def test_an_invalid_record_is_named_by_the_parser_s_reason(self) -> None:
        """A record that did not parse is dead-lettered under the reason, its detail as the message."""
        letter = dead_letter(RECORD, None, InvalidEvent("not_json", "line 1"), 1)
        assert (letter.error_type, letter.message, letter.inbound) == ("not_json", "line 1", None)

    def test_a_permanent_error_is_named_by_its_error_type(self) -> None:
        """A PermanentError's own error_type names the letter."""
        inbound = Inbound(RECORD, parse_event(RECORD.value, TOPIC, topics=TOPICS))
        letter = dead_letter(RECORD, inbound, PermanentError("gone", error_type="no_booking"), 1)
        assert (letter.error_type, letter.message, letter.inbound) == (
            "no_booking",
            "gone",
            inbound,
        )

    def test_a_record_given_up_on_after_deferrals_is_named_by_its_error_type(self) -> None:
        """A RetryLater the loop gave up on names the letter by its error_type, the message saying how many attempts and why."""
        later = RetryLater("452 mailbox over quota", error_type="smtp_deferred")
        letter = dead_letter(RECORD, None, later, 3)
        assert (letter.error_type, letter.message, letter.attempts) == (
            "smtp_deferred",
            "deferred 3 times: 452 mailbox over quota",
            3,
        )

    def test_anything_else_is_unexpected_with_its_type_and_attempts(self) -> None:
        """Any other error is `unexpected:<Type>`; an empty message falls back to its repr."""
        letter = dead_letter(RECORD, None, KeyError(), 3)
        assert (letter.error_type, letter.message, letter.attempts) == (
            "unexpected:KeyError",
            "KeyError()",
            3,
        )
