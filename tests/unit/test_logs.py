"""Log configuration, the per-record context, and the lifecycle log subscriber."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from functools import partial
from typing import Any

import msgspec
import psycopg.errors
import pytest
import sqlalchemy.exc as sa_exc
import structlog
from structlog.testing import capture_logs

from common import logs
from common.lifecycle import (
    BatchHandled,
    ConsumerError,
    LagMeasured,
    LoopStopped,
    OffsetsCommitted,
    OffsetsStored,
    PartitionsChanged,
    RecordDeadLettered,
    RetryScheduled,
    TopicMissing,
)
from common.logs import LogSubscriber, configure_logging, record_context, scrub
from common.records import Record, TopicPartition
from common.topics import EVENT_TYPES
from dreamscape_dev.testing import builders

PAYLOAD_VALUES = ("pay_abc123xyz", "booking_456def", "usr_123456789", "1250")
_, COMPLETED, FAILED, REFUNDED = EVENT_TYPES

Entries = list[MutableMapping[str, Any]]


inbound = partial(builders.inbound, offset=7, key=b"booking_456def")


def raw_record(value: bytes = b"not json", *, offset: int = 3) -> Record:
    return Record("dreamscape.payment.completed", 1, offset, key=None, value=value)


@contextmanager
def captured(level: int = logging.DEBUG) -> Iterator[Entries]:
    """Capture structlog entries with the level filter `configure_logging` would install."""
    saved = structlog.get_config()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )
    try:
        with capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(**saved)


def assert_no_personal_data(entries: Entries) -> None:
    text = repr(entries)
    for value in PAYLOAD_VALUES:
        assert value not in text
    assert "@" not in text


class TestRecordContext:
    def test_parsed_record_carries_coordinates_and_envelope_ids(self) -> None:
        """A parsed record's context is its coordinates plus the envelope's ids, nothing else."""
        item = inbound(FAILED, partition=2, offset=41)
        assert record_context(item.record, item.event) == {
            "topic": "dreamscape.payment.failed",
            "partition": 2,
            "offset": 41,
            "event_id": item.event.event_id,
            "event_type": "payment.failed",
            "correlation_id": "booking-123-payment-flow",
            "causation_id": "a1b2c3d4-e5f6-4a5b-8c7d-9e8f7a6b5c4d",
        }

    def test_unparsed_record_carries_only_coordinates(self) -> None:
        """Without a parsed event the context is topic, partition and offset."""
        assert record_context(raw_record(), None) == {
            "topic": "dreamscape.payment.completed",
            "partition": 1,
            "offset": 3,
        }

    def test_absent_ids_are_omitted(self) -> None:
        """Envelope ids the producer left out do not appear as None values."""
        item = inbound(COMPLETED)
        event = msgspec.structs.replace(item.event, correlation_id=None, causation_id=None)
        context = record_context(item.record, event)
        assert "correlation_id" not in context
        assert "causation_id" not in context

    def test_email_in_a_correlation_id_is_masked(self) -> None:
        """An email address used as a correlation id is masked."""
        item = inbound(COMPLETED)
        event = msgspec.structs.replace(item.event, correlation_id="flow of jane.doe@example.com")
        assert record_context(item.record, event)["correlation_id"] == "flow of <email>"


class TestScrub:
    def test_masks_email_addresses(self) -> None:
        """Every email-shaped substring is replaced, the rest of the text kept."""
        text = "rejected by smtp for <jane.doe+x@mail.example.org>, cc bob@ex.io"
        assert scrub(text) == "rejected by smtp for <<email>>, cc <email>"

    def test_cuts_long_text(self) -> None:
        """Text over the limit is cut and marked as cut."""
        assert scrub("x" * 2000) == "x" * logs.MAX_TEXT_LENGTH + "..."

    def test_leaves_ordinary_text_alone(self) -> None:
        """Text without an email address comes back unchanged."""
        assert scrub("connection refused") == "connection refused"


class TestLogSubscriber:
    def test_batch_logs_each_record_and_a_summary_at_debug(self) -> None:
        """At DEBUG a batch yields one record.handled per record and one batch.handled."""
        batch = [inbound(COMPLETED, offset=1), inbound(REFUNDED, partition=1, offset=9)]
        with captured(logging.DEBUG) as entries:
            LogSubscriber()(BatchHandled(batch, duration_s=0.0123456789))
        handled = [e for e in entries if e["event"] == "record.handled"]
        assert [(e["topic"], e["offset"], e["log_level"]) for e in handled] == [
            ("dreamscape.payment.completed", 1, "debug"),
            ("dreamscape.payment.refunded", 9, "debug"),
        ]
        assert handled[1]["event_id"] == batch[1].event.event_id
        summary = entries[-1]
        assert summary["event"] == "batch.handled"
        assert summary["log_level"] == "debug"
        assert summary["records"] == 2
        assert summary["duration_s"] == 0.012346
        assert summary["partitions"] == [
            "dreamscape.payment.completed[0]",
            "dreamscape.payment.refunded[1]",
        ]
        assert_no_personal_data(entries)

    def test_batch_costs_no_context_building_at_info(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """At INFO a batch logs nothing and never builds a record context."""

        def must_not_run(record: Record, event: object) -> dict[str, object]:
            raise AssertionError("record_context was called at INFO")

        monkeypatch.setattr(logs, "record_context", must_not_run)
        with captured(logging.INFO) as entries:
            LogSubscriber()(BatchHandled([inbound(COMPLETED), inbound(COMPLETED)], duration_s=0.01))
        assert entries == []

    def test_dead_letter_is_a_warning_without_payload(self) -> None:
        """A dead-lettered record logs its context and error, never payload or email."""
        item = inbound(COMPLETED, offset=12)
        event = RecordDeadLettered(
            item.record,
            item,
            error_type="permanent",
            message="recipient jane.doe@example.com refused",
            attempts=1,
            dlq_topic="dreamscape.dlq.notification-service",
        )
        with captured() as entries:
            LogSubscriber()(event)
        [entry] = entries
        assert entry["event"] == "record.dead_lettered"
        assert entry["log_level"] == "warning"
        assert entry["offset"] == 12
        assert entry["event_type"] == "payment.completed"
        assert entry["correlation_id"] == "booking-123-payment-flow"
        assert entry["error_type"] == "permanent"
        assert entry["message"] == "recipient <email> refused"
        assert entry["attempts"] == 1
        assert entry["dlq_topic"] == "dreamscape.dlq.notification-service"
        assert_no_personal_data(entries)

    def test_unparsed_dead_letter_logs_coordinates_only(self) -> None:
        """A record that did not parse is logged by its coordinates, without event ids."""
        event = RecordDeadLettered(
            raw_record(), None, "not_json", "expected value", 1, "dreamscape.dlq.voyage-service"
        )
        with captured() as entries:
            LogSubscriber()(event)
        [entry] = entries
        assert entry["error_type"] == "not_json"
        assert "event_id" not in entry
        assert entry["partition"] == 1

    def test_retry_is_a_warning_with_error_and_partitions(self) -> None:
        """A scheduled retry names the error, attempt, delay and the distinct partitions."""
        records = [inbound(COMPLETED, offset=o).record for o in (1, 2)] + [
            inbound(COMPLETED, partition=2).record
        ]
        event = RetryScheduled(
            records, "transient", ConnectionError("db down"), attempt=3, delay_s=1.23456
        )
        with captured() as entries:
            LogSubscriber()(event)
        [entry] = entries
        assert entry["event"] == "handling.retry_scheduled"
        assert entry["log_level"] == "warning"
        assert (entry["kind"], entry["error_type"], entry["error"]) == (
            "transient",
            "ConnectionError",
            "db down",
        )
        assert (entry["attempt"], entry["delay_s"], entry["records"]) == (3, 1.235, 3)
        assert entry["partitions"] == [
            "dreamscape.payment.completed[0]",
            "dreamscape.payment.completed[2]",
        ]

    def test_a_database_outage_retry_names_its_sqlstate(self) -> None:
        """A retry caused by a database error carries the SQLSTATE, so a failover reads as one in a single line."""
        error = sa_exc.InternalError("INSERT", {}, psycopg.errors.lookup("25006")())
        event = RetryScheduled(
            [inbound(COMPLETED).record], "transient", error, attempt=1, delay_s=0.5
        )
        with captured() as entries:
            LogSubscriber()(event)
        [entry] = entries
        assert entry["sqlstate"] == "25006"
        assert entry["error_type"] == "InternalError"

    @pytest.mark.parametrize(
        ("reason", "level"),
        [("periodic", "debug"), ("revoke", "info"), ("shutdown", "info")],
    )
    def test_commit_level_depends_on_reason(self, reason: str, level: str) -> None:
        """Periodic commits are DEBUG; commits on revoke and shutdown are INFO."""
        offsets = {TopicPartition("dreamscape.payment.failed", 0): 43}
        with captured() as entries:
            LogSubscriber()(OffsetsCommitted(offsets, reason))
        [entry] = entries
        assert entry["event"] == "offsets.committed"
        assert entry["log_level"] == level
        assert entry["offsets"] == {"dreamscape.payment.failed[0]": 43}

    def test_partition_change_is_info(self) -> None:
        """A rebalance logs the change and the partitions at INFO."""
        partitions = [TopicPartition("t", 1), TopicPartition("t", 0)]
        with captured() as entries:
            LogSubscriber()(PartitionsChanged("assigned", partitions))
        [entry] = entries
        assert (entry["event"], entry["log_level"]) == ("partitions.changed", "info")
        assert (entry["change"], entry["partitions"]) == ("assigned", ["t[0]", "t[1]"])

    def test_missing_topic_is_reported_once_per_minute_per_topic(self) -> None:
        """Repeats within 60 s are counted, not logged; other topics are reported on their own."""
        clock = [100.0]
        subscriber = LogSubscriber(now=lambda: clock[0])
        with captured() as entries:
            subscriber(TopicMissing("a"))
            clock[0] = 159.9
            subscriber(TopicMissing("a"))
            subscriber(TopicMissing("b"))
            clock[0] = 160.0
            subscriber(TopicMissing("a"))
        assert [(e["topic"], e["repeats_since_last"]) for e in entries] == [
            ("a", 0),
            ("b", 0),
            ("a", 1),
        ]
        assert entries[0]["log_level"] == "warning"
        assert entries[0]["detail"] == "subscribed topic does not exist yet; waiting for it"

    @pytest.mark.parametrize(("fatal", "level"), [(True, "error"), (False, "warning")])
    def test_consumer_error_level_depends_on_fatality(self, fatal: bool, level: str) -> None:
        """Fatal client errors are ERROR, others WARNING."""
        with captured() as entries:
            LogSubscriber()(ConsumerError("_TRANSPORT", "broker down", fatal=fatal))
        [entry] = entries
        assert (entry["event"], entry["log_level"]) == ("consumer.error", level)
        assert (entry["code"], entry["message"], entry["fatal"]) == (
            "_TRANSPORT",
            "broker down",
            fatal,
        )

    def test_loop_stop_is_info(self) -> None:
        """The loop's stop is one INFO line with its reason and final offsets."""
        event = LoopStopped("signal", {TopicPartition("t", 0): 5})
        with captured() as entries:
            LogSubscriber()(event)
        assert entries == [
            {
                "event": "loop.stopped",
                "log_level": "info",
                "reason": "signal",
                "committed": {"t[0]": 5},
            }
        ]

    def test_lag_and_stored_offsets_are_not_logged(self) -> None:
        """Lag measurements and stored offsets are for metrics only."""
        offsets = {TopicPartition("t", 0): 5}
        with captured() as entries:
            LogSubscriber()(LagMeasured(offsets))
            LogSubscriber()(OffsetsStored(offsets))
        assert entries == []


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo `configure_logging`: structlog's configuration and the root logger's handlers."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    structlog.contextvars.clear_contextvars()
    root.handlers, root.level = handlers, level


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines()]


@pytest.mark.usefixtures("restore_logging")
class TestConfigureLogging:
    def test_json_line_has_level_timestamp_service_and_context(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """In JSON mode a line carries level, a UTC ISO timestamp, the service and contextvars."""
        configure_logging(fmt="json", service="voyage")
        structlog.contextvars.bind_contextvars(run="r1")
        structlog.get_logger().info("service.started", port=8080)
        [line] = json_lines(capsys.readouterr().err)
        assert line["event"] == "service.started"
        assert (line["level"], line["service"], line["run"], line["port"]) == (
            "info",
            "voyage",
            "r1",
            8080,
        )
        assert line["timestamp"].endswith("Z")

    def test_json_is_the_default_when_stderr_is_not_a_terminal(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With no format given and stderr captured (not a TTY), lines are JSON."""
        configure_logging(service="voyage")
        structlog.get_logger().warning("x")
        assert json_lines(capsys.readouterr().err)[0]["event"] == "x"

    def test_console_format_is_not_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The console format renders a human-readable line."""
        configure_logging(fmt="console", service="voyage")
        structlog.get_logger().info("service.started")
        err = capsys.readouterr().err
        assert "service.started" in err
        assert not err.lstrip().startswith("{")

    def test_lines_below_the_level_are_dropped(self, capsys: pytest.CaptureFixture[str]) -> None:
        """At WARNING, info and debug lines produce no output."""
        configure_logging(level="warning", fmt="json", service="voyage")
        log = structlog.get_logger()
        log.debug("d")
        log.info("i")
        log.warning("w")
        assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["w"]

    def test_exceptions_are_structured_in_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An exception is rendered as a structured traceback, not a text blob."""
        configure_logging(fmt="json", service="voyage")
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger().exception("failed")
        [line] = json_lines(capsys.readouterr().err)
        assert line["exception"][0]["exc_type"] == "ValueError"
        assert line["exception"][0]["exc_value"] == "boom"

    def test_stdlib_warnings_share_the_format(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Stdlib records at WARNING and up come out as the same JSON; INFO is dropped."""
        configure_logging(level="DEBUG", fmt="json", service="voyage")
        library = logging.getLogger("confluent_kafka.test")
        library.info("chatter")
        library.warning("broker %s unreachable", "b1")
        [line] = json_lines(capsys.readouterr().err)
        assert (line["event"], line["level"], line["logger"], line["service"]) == (
            "broker b1 unreachable",
            "warning",
            "confluent_kafka.test",
            "voyage",
        )

    def test_unknown_level_or_format_is_refused(self) -> None:
        """A misspelt level or format raises ValueError instead of logging nothing."""
        with pytest.raises(ValueError, match="log level"):
            configure_logging(level="verbose", service="voyage")
        with pytest.raises(ValueError, match="log format"):
            configure_logging(fmt="xml", service="voyage")


@pytest.mark.usefixtures("restore_logging")
class TestTracebacksWithoutLocals:
    @staticmethod
    def fail(password: str) -> None:
        secret_in_a_frame = password  # a local, as run_service's settings are
        raise RuntimeError(f"boom after {len(secret_in_a_frame)} characters")

    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_a_logged_traceback_shows_no_frame_locals(
        self, fmt: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A traceback logged through structlog or stdlib logging names the frames but never a local's value."""
        configure_logging(fmt=fmt, service="voyage")
        password = "-".join(("pw", "in", "a", "local", "4711"))  # the source never holds it whole
        for logger in (structlog.get_logger(), logging.getLogger("some.library")):
            try:
                self.fail(password)
            except RuntimeError:
                logger.exception("crashed")
        err = capsys.readouterr().err
        assert err.count("boom after 18 characters") == 2
        assert "secret_in_a_frame = password" in err or fmt == "json"  # the source, not values
        assert "pw-in-a-local-4711" not in err
