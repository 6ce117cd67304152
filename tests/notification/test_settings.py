"""Configuration: what the service refuses to start with, and the start-up template check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from common.settings import ConfigurationError
from notification_consumer.service import build
from notification_consumer.settings import NotificationSettings
from notification_consumer.tables import SCHEMA
from tests.notification.support import MAIL_FROM, RETRY_URL

REQUIRED = {"mail_from": MAIL_FROM, "payment_retry_url": RETRY_URL}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: take this process's values out of the way."""
    for name in NotificationSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def _settings(**values: Any) -> NotificationSettings:
    return NotificationSettings(**{**REQUIRED, **values})


def test_defaults() -> None:
    """With only the two required values set, SQLite, localhost:25 and English are the defaults."""
    settings = _settings()
    assert SCHEMA.url(settings) == "sqlite:///data/notification.db"
    assert (settings.smtp_host, settings.smtp_port) == ("localhost", 25)
    assert settings.default_locale == "en"
    assert settings.recipient_email_template is None


@pytest.mark.parametrize(
    "values",
    [
        {"mail_from": None},
        {"payment_retry_url": None},
        {"mail_from": "not an address"},
        {"payment_retry_url": "https://x.test/{booking}"},
        {"payment_retry_url": "/relative/{booking_id}"},
        {"recipient_email_template": "{user}@example.test"},
        {"recipient_email_template": "fixed@example.test"},
        {"default_locale": "xx"},
        {"display_timezone": "Mars/Olympus"},
        {"smtp_starttls": True, "smtp_ssl": True},
        {"notification_template_dir": "/does/not/exist"},
    ],
)
def test_invalid_configuration_is_refused(values: dict[str, Any]) -> None:
    """Each of these would fail email by email later, so it fails at start-up instead."""
    merged = {k: v for k, v in {**REQUIRED, **values}.items() if v is not None}
    with pytest.raises(ValidationError):
        NotificationSettings(**merged)


def test_a_broken_override_template_stops_the_start_up(tmp_path: Path) -> None:
    """A template override referencing an unknown variable makes build() raise ConfigurationError."""
    (tmp_path / "refund.txt").write_text("{{ payload.no_such_field }}")
    settings = _settings(notification_template_dir=tmp_path, database_url="sqlite://")
    with pytest.raises(ConfigurationError, match="refund"):
        build(settings, CollectorRegistry())


def test_a_broken_translation_override_is_found_too(tmp_path: Path) -> None:
    """Language folders of the override directory are checked as well."""
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "receipt.html").write_text("{% if %}")
    settings = _settings(notification_template_dir=tmp_path, database_url="sqlite://")
    with pytest.raises(ConfigurationError, match="'de'"):
        build(settings, CollectorRegistry())
