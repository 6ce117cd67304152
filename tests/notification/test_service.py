"""The notification service on the real run loop and broker: end to end, outages, the process.

Each test runs the handler `build` wires inside a `Runner` on a thread (the run loop's
own test helpers), against the session's broker, a real SMTP server and SQLite; one test
runs `python -m notification_consumer` as a process. Progress is read from the runner's
lifecycle events and from what the SMTP server received, never from sleeps.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from common.lifecycle import BatchHandled
from common.topics import Topics
from dreamscape_dev.testing.builders import event, outbound, spec_example
from dreamscape_dev.testing.smtp import SmtpSink
from notification_consumer.service import build
from tests.integration.helpers import (
    FAST_FETCH,
    FAST_GROUP,
    ObservedRunner,
    dlq_records,
    process_env,
    produce,
    service_process,
    wait_until,
)
from tests.notification.support import (
    MAIL_FROM,
    RETRY_URL,
    Service,
    kinds,
    settings,
)

pytestmark = pytest.mark.integration

TIMEOUT_S = 20.0
OUTAGE_RETRIES = 6  # backoff 0.05 s doubling to 0.5 s: an outage of a few seconds


def _runner(
    topics: Topics, bootstrap: str, smtp: SmtpSink, database_url: str, **overrides: Any
) -> ObservedRunner:
    config = settings(
        smtp,
        database_url,
        recipient_email_template="{user_id}@example.test",
        topic_prefix=topics.prefix,
        batch_size=100,
        poll_timeout_seconds=0.1,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.5,
        kafka={"bootstrap.servers": bootstrap, **FAST_GROUP, **FAST_FETCH},
        **overrides,
    )
    spec = build(config, CollectorRegistry())
    return ObservedRunner(
        spec.handle,
        config,
        group=f"notification-{uuid.uuid4().hex[:8]}",
        name="notification",
        transient_errors=spec.transient_errors,
        closers=spec.closers,
    )


def _handled(consumer: ObservedRunner, *docs: dict[str, Any]) -> bool:
    handled = set(consumer.recorder.handled_ids())
    return all(doc["eventId"] in handled for doc in docs)


def test_the_spec_examples_end_in_one_receipt_and_one_refund(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """The spec's four examples, the failure arriving after the completion, send a receipt and a refund and no failure notice."""
    names = ("initiated", "completed", "failed", "refunded")
    examples = {name: spec_example(f"payment.{name}") for name in names}
    with _runner(topics, kafka_bootstrap_servers, smtp_server, sqlite_url) as consumer:
        produce(
            kafka_bootstrap_servers,
            [outbound(examples[t], topics) for t in ("initiated", "completed")],
        )
        smtp_server.wait_for(1, TIMEOUT_S)
        produce(
            kafka_bootstrap_servers,
            [outbound(examples[t], topics) for t in ("failed", "refunded")],
        )
        wait_until(lambda: _handled(consumer, *examples.values()), TIMEOUT_S, "all four examples")
        received = smtp_server.wait_for(2, TIMEOUT_S)
        consumer.stop()

    assert kinds(received) == ["receipt", "refund"]
    assert received[0].rcpt_tos == ("usr_123456789@example.test",)
    assert consumer.recorder.dead_lettered() == []


def test_an_event_published_twice_sends_one_email(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """The same completed event at two offsets (a producer retry) is emailed once."""
    completed = event("payment.completed")
    record = outbound(completed, topics)
    with _runner(topics, kafka_bootstrap_servers, smtp_server, sqlite_url) as consumer:
        produce(kafka_bootstrap_servers, [record])
        smtp_server.wait_for(1, TIMEOUT_S)
        produce(kafka_bootstrap_servers, [record])
        wait_until(
            lambda: consumer.recorder.handled_ids().count(completed["eventId"]) >= 2,
            TIMEOUT_S,
            "the copy to be handled",
        )
        consumer.stop()

    assert len(smtp_server.messages) == 1


def test_an_smtp_outage_mid_stream_delays_but_loses_and_repeats_nothing(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """With the SMTP server down mid-stream across several retries, the loop backs off and retries, and afterwards every email has arrived exactly once with nothing dead-lettered."""
    before = [event("payment.completed", paymentId=f"pay_a{n}") for n in range(10)]
    during = [
        event("payment.refunded", paymentId=f"pay_b{n}", refundId=f"ref_b{n}") for n in range(10)
    ]
    with _runner(topics, kafka_bootstrap_servers, smtp_server, sqlite_url) as consumer:
        produce(kafka_bootstrap_servers, [outbound(d, topics) for d in before])
        smtp_server.wait_for(10, TIMEOUT_S)
        smtp_server.stop()
        produce(kafka_bootstrap_servers, [outbound(d, topics) for d in during])
        wait_until(
            lambda: len(consumer.recorder.retries()) >= OUTAGE_RETRIES,
            TIMEOUT_S,
            f"{OUTAGE_RETRIES} retries while the server is down",
        )
        assert len(smtp_server.messages) == 10
        smtp_server.start()
        received = smtp_server.wait_for(20, TIMEOUT_S)
        wait_until(lambda: _handled(consumer, *during), TIMEOUT_S, "the batch to be handled")
        consumer.stop()

    ids = [m.message["Message-ID"].strip() for m in received]
    assert len(ids) == len(set(ids)) == 20
    assert {r.kind for r in consumer.recorder.retries()} == {"transient"}
    assert consumer.recorder.dead_lettered() == []
    assert dlq_records(kafka_bootstrap_servers, consumer.dlq_topic) == []


def test_one_recipient_over_quota_holds_the_others_a_few_retries_then_is_dead_lettered(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """A 452 for one of three recipients on the real loop: the other two are sent once; the loop calls again with that record alone (two "deferred" retries), then records it `deferred` and dead-letters it once as `smtp_deferred`, storing the offsets; replayed once the mailbox has room, it is sent once with the same Message-ID."""
    docs = [
        event("payment.completed", userId=f"quota-{n}", paymentId=f"pay_quota{n}") for n in range(3)
    ]
    smtp_server.reply_to_recipient("quota-1@example.test", "452 4.2.2 mailbox over quota")
    with _runner(topics, kafka_bootstrap_servers, smtp_server, sqlite_url) as consumer:
        produce(kafka_bootstrap_servers, [outbound(doc, topics) for doc in docs])
        wait_until(lambda: consumer.recorder.dead_lettered(), TIMEOUT_S, "the letter")
        smtp_server.reply_to_recipient("quota-1@example.test", None)
        produce(kafka_bootstrap_servers, [outbound(docs[1], topics)])  # the replay
        wait_until(lambda: len(smtp_server.messages) == 3, TIMEOUT_S, "the replayed receipt")
        consumer.stop()

    [letter] = consumer.recorder.dead_lettered()
    assert (letter.error_type, letter.attempts) == ("smtp_deferred", 3)
    assert letter.message.startswith("deferred 3 times: recipient deferred the message: 452")
    assert [(r.kind, len(r.records)) for r in consumer.recorder.retries()] == [
        ("deferred", 1),
        ("deferred", 1),
    ]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == [
        f"quota-{n}@example.test" for n in range(3)
    ]
    [replayed] = [m for m in smtp_server.messages if m.rcpt_tos[0] == "quota-1@example.test"]
    assert (
        replayed.message["Message-ID"].strip()
        == f"<{docs[1]['eventId']}.receipt@notifications.dreamscape>"
    )
    [dlq] = dlq_records(kafka_bootstrap_servers, consumer.dlq_topic)
    assert dlq.value == outbound(docs[1], topics).value


def test_a_5xx_refusal_is_recorded_failed_and_never_dead_lettered(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """A recipient refused with 550 is handled once, recorded failed, not retried and not dead-lettered."""
    smtp_server.reject_with("550 5.1.1 mailbox unavailable")
    completed = event("payment.completed")
    with _runner(topics, kafka_bootstrap_servers, smtp_server, sqlite_url) as consumer:
        produce(kafka_bootstrap_servers, [outbound(completed, topics)])
        wait_until(lambda: _handled(consumer, completed), TIMEOUT_S, "the event to be handled")
        consumer.stop()

    outcome = Service(settings(smtp_server, sqlite_url)).outcome(completed["eventId"], "receipt")
    assert outcome is not None
    assert (outcome.status, outcome.smtp_code) == ("failed", 550)
    assert consumer.recorder.retries() == []
    assert consumer.recorder.dead_lettered() == []


def test_the_service_process_sends_a_receipt_and_stops_cleanly_on_sigterm(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, tmp_path: Path
) -> None:
    """`python -m notification_consumer`, configured by environment only, sends a receipt, never logs the address, and exits 0 on SIGTERM."""
    env = process_env(
        kafka_bootstrap_servers,
        topics,
        DATABASE_URL=f"sqlite:///{tmp_path}/notification.db",
        SMTP_HOST=smtp_server.host,
        SMTP_PORT=str(smtp_server.port),
        MAIL_FROM=MAIL_FROM,
        PAYMENT_RETRY_URL=RETRY_URL,
        RECIPIENT_EMAIL_TEMPLATE="{user_id}@example.test",
        LOG_LEVEL="DEBUG",
        KAFKA_GROUP_ID=f"notification-{uuid.uuid4().hex[:8]}",
    )
    completed = event("payment.completed")
    with service_process("notification_consumer", env, tmp_path) as service:
        produce(kafka_bootstrap_servers, [outbound(completed, topics)])
        wait_until(lambda: smtp_server.messages, TIMEOUT_S, "the receipt", abort=service.died)
        service.signal(signal.SIGTERM)
        assert service.wait(15) == 0

    output = service.output.read_text()
    assert "notification.sent" in output
    assert "@example.test" not in output


def test_the_service_process_refuses_to_start_without_its_required_settings(
    tmp_path: Path,
) -> None:
    """Without MAIL_FROM and PAYMENT_RETRY_URL the process names them and exits with code 2 before dialling anything."""
    env = process_env("127.0.0.1:9", Topics())
    env.pop("MAIL_FROM", None)
    env.pop("PAYMENT_RETRY_URL", None)
    with service_process("notification_consumer", env, tmp_path) as service:
        assert service.wait(15) == 2
    output = service.output.read_text()
    assert "MAIL_FROM" in output
    assert "PAYMENT_RETRY_URL" in output


def test_a_slow_relay_is_fed_in_bounded_calls_with_the_consumer_kept_alive_between(
    kafka_bootstrap_servers: str, topics: Topics, smtp_server: SmtpSink, sqlite_url: str
) -> None:
    """With a relay taking 50 ms per email and MAX_RECORDS_PER_CALL=3 and CALL_POLL_INTERVAL_SECONDS=0, a batch of 12 receipts is sent in calls of at most 3, the consumer polled (partitions paused) between them so max.poll.interval.ms and liveness cannot run out, and each email sent once (issue 10, finding 7)."""
    smtp_server.delay_s = 0.05
    docs = [
        event("payment.completed", userId=f"slow-{n}", paymentId=f"pay_slow{n}") for n in range(12)
    ]
    consumer = _runner(
        topics,
        kafka_bootstrap_servers,
        smtp_server,
        sqlite_url,
        max_records_per_call=3,
        call_poll_interval_seconds=0,
    )
    produce(kafka_bootstrap_servers, [outbound(doc, topics) for doc in docs])
    with consumer:
        wait_until(lambda: _handled(consumer, *docs), TIMEOUT_S, "every receipt handled")
        consumer.stop()
    calls = [len(e.handled) for e in consumer.recorder.of(BatchHandled)]
    assert max(calls) <= 3
    assert sum(calls) >= 12
    assert any(action == "pause" for action, _ in consumer.flow_control)
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == sorted(
        f"slow-{n}@example.test" for n in range(12)
    )
