"""`notification-consumer contacts import` and `resend`: what could not be sent goes out once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dreamscape_dev.testing.builders import event
from dreamscape_dev.testing.smtp import SmtpSink
from notification_consumer.cli import main
from tests.notification.support import MAIL_FROM, RETRY_URL, Service, settings

pytestmark = pytest.mark.integration


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpSink, database_url: str) -> None:
    """The commands read the service's own environment."""
    for name, value in {
        "DATABASE_URL": database_url,
        "SMTP_HOST": smtp_server.host,
        "SMTP_PORT": str(smtp_server.port),
        "MAIL_FROM": MAIL_FROM,
        "PAYMENT_RETRY_URL": RETRY_URL,
        "LOG_FORMAT": "json",
    }.items():
        monkeypatch.setenv(name, value)


class TestContactsAndResend:
    def test_a_receipt_undeliverable_for_want_of_a_contact_is_sent_once_after_the_import(
        self,
        cli_env: None,
        smtp_server: SmtpSink,
        database_url: str,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """A receipt recorded `undeliverable` (no contact yet) goes out after `contacts import` and `resend --status undeliverable`, once, with the Message-ID it was given first; a second resend sends nothing (issue 10, finding 20)."""
        service = Service(settings(smtp_server, database_url))
        completed = event("payment.completed", userId="late-user", paymentId="pay_late")
        service.handle([completed])
        first = service.outcome(completed["eventId"], "receipt")
        assert first is not None
        assert first.status == "undeliverable"

        contacts = tmp_path / "contacts.csv"
        contacts.write_text(
            "user_id,email,display_name,locale\nlate-user,late@example.test,Late,fr\n"
        )
        assert main(["contacts", "import", str(contacts)]) == 0
        assert main(["resend", "--status", "undeliverable"]) == 0
        assert main(["resend", "--status", "undeliverable"]) == 0

        [message] = smtp_server.wait_for(1)
        assert message.rcpt_tos == ("late@example.test",)
        assert str(message.message["Message-ID"]).strip() == first.message_id
        sent = service.outcome(completed["eventId"], "receipt")
        assert sent is not None
        assert sent.status == "sent"
        out = capsys.readouterr().out
        assert "1 contact(s) imported" in out
        assert "1 sent" in out

    def test_json_lines_import_and_a_bad_row_is_reported_not_imported(
        self, cli_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """JSON lines import the same fields; a row with an invalid address is named and skipped, and the exit code says so."""
        rows = [
            {"user_id": "u1", "email": "u1@example.test"},
            {"user_id": "u2", "email": "not an address"},
        ]
        path = tmp_path / "contacts.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        assert main(["contacts", "import", str(path)]) == 1
        captured = capsys.readouterr()
        assert "1 contact(s) imported" in captured.out
        assert "line 2" in captured.err
