"""SMTP sessions kept between handler calls: reused while fresh, checked when idle, replaced when stale."""

from __future__ import annotations

import pytest

from dreamscape_dev.testing.smtp import SmtpSink
from notification_consumer.mailer import Mailer
from notification_consumer.smtp import (
    CHECK_AFTER_S,
    REOPEN_AFTER_S,
    MailSession,
    SmtpConfig,
    SmtpUnavailable,
)

pytestmark = pytest.mark.integration

MESSAGE = b"Subject: hello\r\n\r\nhello\r\n"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session(smtp: SmtpSink, clock: Clock) -> MailSession:
    return MailSession(SmtpConfig(smtp.host, smtp.port, timeout_s=5.0), clock=clock)


def send(mail: MailSession) -> None:
    assert mail.send(MESSAGE, sender="n@d.test", recipient="zoe@example.test") is None


class TestSessions:
    def test_messages_sent_in_a_row_share_one_connection(self, smtp_server: SmtpSink) -> None:
        """Sends less than a second apart go over the connection opened for the first."""
        clock = Clock()
        mail = session(smtp_server, clock)
        send(mail)
        first = mail._smtp
        clock.now += CHECK_AFTER_S / 2
        send(mail)
        assert mail._smtp is first
        mail.close()
        assert len(smtp_server.wait_for(2)) == 2

    def test_a_connection_the_server_dropped_while_idle_is_replaced_before_a_message(
        self, smtp_server: SmtpSink
    ) -> None:
        """After a second idle the session checks its connection (NOOP); one the server closed is replaced, and the message goes through."""
        clock = Clock()
        mail = session(smtp_server, clock)
        send(mail)
        smtp_server.stop()
        smtp_server.start()  # same port: the old connection is gone
        clock.now += CHECK_AFTER_S + 1
        send(mail)
        mail.close()
        assert len(smtp_server.wait_for(1)) >= 1

    def test_a_connection_dropped_between_sends_close_together_is_an_outage(
        self, smtp_server: SmtpSink
    ) -> None:
        """Within the second no check is made: a dropped connection fails that send as a transient error, and the next one connects anew."""
        clock = Clock()
        mail = session(smtp_server, clock)
        send(mail)
        smtp_server.stop()
        smtp_server.start()
        with pytest.raises(SmtpUnavailable):
            send(mail)
        send(mail)
        mail.close()

    def test_a_connection_idle_for_long_is_closed_and_a_new_one_opened(
        self, smtp_server: SmtpSink
    ) -> None:
        """Past REOPEN_AFTER_S idle, the session QUITs its connection and opens another."""
        clock = Clock()
        mail = session(smtp_server, clock)
        send(mail)
        first = mail._smtp
        clock.now += REOPEN_AFTER_S + 1
        send(mail)
        assert mail._smtp is not first
        mail.close()
        assert mail._smtp is None


class TestMailerAfterAFailure:
    def test_a_failed_delivery_leaves_no_kept_connection_for_the_retry(
        self, smtp_server: SmtpSink
    ) -> None:
        """After a call whose send failed (the server went away), every kept connection is dropped, so the retry connects anew instead of failing again on another stale one (CI flake of test_smtp_cut_mid_batch_then_retried_sends_each_email_once[4])."""
        mailer = Mailer(
            SmtpConfig(smtp_server.host, smtp_server.port, timeout_s=5.0), connections=2
        )

        def work(mail: MailSession, _job: int) -> None:
            send(mail)

        try:
            mailer.deliver([1, 2], work, lambda _result: None)  # both connections open
            smtp_server.stop()
            smtp_server.start()  # same port: both kept connections are gone
            with pytest.raises(SmtpUnavailable):
                mailer.deliver([3], work, lambda _result: None)  # one stale session fails
            mailer.deliver([4, 5], work, lambda _result: None)  # the retry: both sessions
        finally:
            mailer.close()
        assert len(smtp_server.wait_for(2)) >= 2
