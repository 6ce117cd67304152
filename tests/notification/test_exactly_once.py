"""Exactly once in effect, against a real SMTP server and each database.

Duplicates, 5xx and 4xx replies, a server that is down, a connection cut mid-batch and a
ledger write the database refuses: in every case each email reaches the server once (or,
in the one documented window, a second time with the same Message-ID), and its outcome is
recorded once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from common.errors import TransientError
from common.testing.proxy import TcpProxy
from common.testing.smtp import SmtpSink
from notification_consumer import repository
from tests.notification.support import Service, document, settings

pytestmark = pytest.mark.integration


class TestExactlyOnce:
    def test_the_same_event_delivered_twice_sends_one_email(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """An event seen twice in one batch and once more later is sent once and counted as a duplicate twice."""
        completed = document("payment.completed")
        service.handle([completed, completed])
        service.handle([completed])

        assert len(smtp_server.wait_for(1)) == 1
        assert service.count("receipt", "sent") == 1
        assert service.count("receipt", "duplicate") == 2
        outcome = service.outcome(completed["eventId"], "receipt")
        assert outcome is not None
        assert outcome.status == "sent"

    def test_a_5xx_refusal_is_recorded_as_failed_and_not_tried_again(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A 550 for the recipient is recorded failed with its code, scrubbed of the address, and the event is not sent again."""
        smtp_server.reject_with("550 5.1.1 <zoe@example.test>: mailbox unknown")
        completed = document("payment.completed")
        with capture_logs() as logs:
            service.handle([completed])
        smtp_server.reject_with(None)
        service.handle([completed])

        assert smtp_server.messages == []
        outcome = service.outcome(completed["eventId"], "receipt")
        assert outcome is not None
        assert (outcome.status, outcome.smtp_code) == ("failed", 550)
        assert outcome.detail is not None
        assert "@" not in outcome.detail
        assert service.count("receipt", "failed") == 1
        assert [line["event"] for line in logs] == ["notification.refused"]
        assert "@" not in str(logs)

    def test_a_4xx_reply_is_transient_and_the_email_goes_out_once_it_clears(
        self, service: Service, smtp_server: SmtpSink
    ) -> None:
        """A 451 raises a TransientError with nothing recorded, and the retried batch sends the email once."""
        smtp_server.reject_with("451 4.3.0 try again later")
        completed = document("payment.completed")
        with pytest.raises(TransientError):
            service.handle([completed])
        assert service.outcome(completed["eventId"], "receipt") is None

        smtp_server.reject_with(None)
        service.handle([completed])
        service.handle([completed])
        assert len(smtp_server.wait_for(1)) == 1

    def test_an_unreachable_server_is_transient(
        self, sqlite_service: Service, smtp_server: SmtpSink
    ) -> None:
        """With the SMTP server stopped the handler raises a TransientError and records nothing."""
        smtp_server.stop()
        completed = document("payment.completed")
        with pytest.raises(TransientError):
            sqlite_service.handle([completed])
        assert sqlite_service.outcome(completed["eventId"], "receipt") is None

    @pytest.mark.parametrize("connections", [1, 4])
    def test_smtp_cut_mid_batch_then_retried_sends_each_email_once(
        self,
        smtp_server: SmtpSink,
        sqlite_url: str,
        tcp_proxy: Callable[[str, int], TcpProxy],
        connections: int,
    ) -> None:
        """The connection cut after a few of 30 emails: the accepted ones are recorded, the retried batch sends only the rest; at most one message per connection (in flight at the cut) can arrive twice, with its Message-ID unchanged."""
        proxy = tcp_proxy(smtp_server.host, smtp_server.port)
        service = Service(
            settings(
                smtp_server,
                sqlite_url,
                smtp_host=proxy.host,
                smtp_port=proxy.port,
                smtp_connections=connections,
                recipient_email_template="{user_id}@example.test",
            )
        )
        docs = [document("payment.completed", paymentId=f"pay_{n}") for n in range(30)]
        cutter = threading.Thread(target=lambda: (smtp_server.wait_for(3, 10), proxy.cut()))
        cutter.start()
        with pytest.raises(TransientError):
            service.handle(docs)
        cutter.join()
        proxy.restore()
        service.handle(docs)

        received = smtp_server.wait_for(30)
        ids = [m.message["Message-ID"].strip() for m in received]
        assert set(ids) == {f"<{d['eventId']}.receipt@notifications.dreamscape>" for d in docs}
        assert len(ids) - 30 <= connections
        assert service.count("receipt", "sent") == 30

    def test_a_ledger_write_refused_by_the_database_is_kept_and_not_resent(
        self, sqlite_service: Service, smtp_server: SmtpSink, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When recording fails after the emails went out, the retry records them first and sends nothing twice."""
        real = repository.record_outcomes
        failures = [OperationalError("INSERT", {}, Exception("database is locked"))]

        def flaky(**kwargs: Any) -> None:
            if failures:
                raise failures.pop()
            real(**kwargs)

        monkeypatch.setattr(repository, "record_outcomes", flaky)
        docs = [document("payment.completed", paymentId=f"pay_{n}") for n in range(3)]
        with pytest.raises(OperationalError):
            sqlite_service.handle(docs)
        sqlite_service.handle(docs)

        assert len(smtp_server.wait_for(3)) == 3
        assert all(sqlite_service.outcome(d["eventId"], "receipt") is not None for d in docs)
