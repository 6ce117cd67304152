"""`notification-consumer preview`: files for template authors, no services needed."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from common.confirmation import confirmation_number
from dreamscape_dev.testing.builders import spec_path
from notification_consumer.cli import main


def test_preview_writes_the_eml_html_and_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Previewing the spec's failed event in French writes a parseable .eml and its two bodies."""
    code = main(
        [
            "preview",
            str(spec_path("payment.failed")),
            "--locale",
            "fr",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "payment_failed.eml",
        "payment_failed.html",
        "payment_failed.txt",
    ]
    message = email.message_from_bytes(
        (tmp_path / "payment_failed.eml").read_bytes(), policy=email.policy.default
    )
    assert message.get_content_type() == "multipart/alternative"
    assert "1\u202f250,00\xa0€" in (tmp_path / "payment_failed.txt").read_text()
    assert "<html" in (tmp_path / "payment_failed.html").read_text()
    assert "n'a pas abouti" in capsys.readouterr().out


def test_previewing_a_receipt_shows_its_confirmation_number(tmp_path: Path) -> None:
    """The preview of the spec's completed event shows the confirmation number voyage would store for it."""
    code = main(["preview", str(spec_path("payment.completed")), "--out", str(tmp_path)])
    assert code == 0
    number = confirmation_number("booking_456def", "pay_abc123xyz")
    assert f"Confirmation number: {number}" in (tmp_path / "receipt.txt").read_text()
    assert number in (tmp_path / "receipt.html").read_text()


def test_previewing_an_initiated_event_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """payment.initiated sends no email, and the preview says so."""
    code = main(["preview", str(spec_path("payment.initiated")), "--out", str(tmp_path)])
    assert code == 0
    assert list(tmp_path.iterdir()) == []
    assert "sends no email" in capsys.readouterr().err


def test_previewing_an_invalid_event_exits_2(tmp_path: Path) -> None:
    """A file that is not a payment event is reported, exit code 2."""
    bad = tmp_path / "bad.json"
    bad.write_text('{"eventType": "payment.completed"}')
    assert main(["preview", str(bad), "--out", str(tmp_path / "out")]) == 2
