"""The notification service's settings: SMTP, templates, locales, links and recipients.

Every field is an environment variable (upper-cased field name), read once in `main()`.
Settings that would only fail later, email by email, are checked here instead, so a bad
deployment stops at start-up with one line naming the variable (exit code 2): an unknown
locale or time zone, a retry URL or address template with unknown placeholders, STARTTLS
and implicit TLS both switched on.
"""

from __future__ import annotations

import string
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from pydantic import Field, SecretStr, field_validator, model_validator

from common.settings import RunnerSettings


def placeholders(template: str) -> set[str]:
    """The `{name}` fields of a `str.format` template (ValueError if it is malformed)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _only_fields(template: str, allowed: set[str], required: set[str]) -> str:
    try:
        found = placeholders(template)
    except ValueError as exc:
        raise ValueError(f"not a valid template: {exc}") from None
    if unknown := found - allowed:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    if missing := required - found:
        raise ValueError(f"must contain {sorted(missing)}")
    return template


def parse_locale(value: str) -> Locale:
    """A Babel locale from `fr`, `fr_FR` or `fr-FR`; ValueError if Babel does not know it."""
    try:
        return Locale.parse(value.strip().replace("-", "_"))
    except (UnknownLocaleError, ValueError) as exc:
        raise ValueError(f"unknown locale {value!r}: {exc}") from None


class NotificationSettings(RunnerSettings):
    """Settings of `notification-consumer` (see docs/notification.md for each variable)."""

    smtp_host: str = "localhost"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    smtp_connections: Annotated[int, Field(ge=1, le=32)] = 4
    """SMTP connections used in parallel within a batch (see `mailer`)."""
    max_records_per_call: Annotated[int, Field(ge=1, le=100_000)] = 100
    """Notifications per handler call: at 3 emails/s (a slow relay) 100 take ~33 s, well inside
    the 60 s liveness timeout and librdkafka's 300 s max.poll.interval.ms."""
    smtp_defer_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    """Tries of a notification its recipient defers (4xx at RCPT) before it is dead-lettered."""
    mail_from: str
    """Required: the From of every email, e.g. `DreamScape <no-reply@dreamscape.com>`."""

    payment_retry_url: str
    """Required: where the failure email sends the user, with `{booking_id}`/`{payment_id}`."""
    recipient_email_template: str | None = None
    notification_template_dir: Path | None = None
    default_locale: str = "en"
    display_timezone: str = "UTC"
    message_id_domain: str = "notifications.dreamscape"
    record_every: Annotated[int, Field(ge=1, le=10_000)] = 50
    """Emails sent between two writes of `sent_notification` (the duplicate window, see docs)."""

    @field_validator(
        "smtp_username",
        "smtp_password",
        "recipient_email_template",
        "notification_template_dir",
        mode="before",
    )
    @classmethod
    def _blank_means_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("mail_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1] or "\n" in value or "\r" in value:
            raise ValueError("must be an address such as DreamScape <no-reply@dreamscape.com>")
        return value

    @field_validator("payment_retry_url")
    @classmethod
    def _retry_url(cls, value: str) -> str:
        allowed = {"booking_id", "payment_id"}
        _only_fields(value, allowed, required=set())
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL")
        return value

    @field_validator("recipient_email_template")
    @classmethod
    def _address_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _only_fields(value, {"user_id"}, required={"user_id"})
        if "@" not in value:
            raise ValueError("must be an email address template such as {user_id}@example.test")
        return value

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        return str(parse_locale(value))

    @field_validator("display_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("notification_template_dir")
    @classmethod
    def _directory(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> NotificationSettings:
        if self.smtp_starttls and self.smtp_ssl:
            raise ValueError("SMTP_STARTTLS and SMTP_SSL are exclusive: choose one")
        return self
