"""Helpers shared by the notification tests: settings, the handler as wired, received mail."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry
from sqlmodel import Session

from common.db import make_engine, transaction
from dreamscape_dev.testing.builders import Document, inbounds
from dreamscape_dev.testing.smtp import ReceivedMessage, SmtpSink
from notification_consumer import store
from notification_consumer.service import build
from notification_consumer.settings import NotificationSettings
from notification_consumer.tables import SCHEMA, SentNotification, UserContact

USER = "usr_123456789"
"""The spec examples' user."""
MAIL_FROM = "DreamScape <no-reply@dreamscape.test>"
RETRY_URL = "https://app.dreamscape.test/bookings/{booking_id}/pay?retry={payment_id}"


def settings(smtp: SmtpSink, database_url: str, **overrides: Any) -> NotificationSettings:
    """Service settings pointing at the test's SMTP sink and database."""
    values: dict[str, Any] = {
        "mail_from": MAIL_FROM,
        "payment_retry_url": RETRY_URL,
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "smtp_timeout_seconds": 5.0,
        "database_url": database_url,
        **overrides,
    }
    return NotificationSettings(**values)


class Service:
    """The service's batch handler as `build` wires it, with its metrics registry and engine."""

    def __init__(self, config: NotificationSettings) -> None:
        self.registry = CollectorRegistry()
        self.spec = build(config, self.registry)
        self.engine = make_engine(SCHEMA.url(config))

    def close(self) -> None:
        """What the run loop closes at its end (the SMTP sessions, kept between calls, QUIT)."""
        for close in self.spec.closers:
            close()
        self.engine.dispose()

    def handle(self, docs: Sequence[Document]) -> None:
        assert self.spec.handle(inbounds(docs)) in (None, {})

    def count(self, kind: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "dreamscape_notification_emails_total", {"kind": kind, "outcome": outcome}
        )
        return value or 0.0

    def add_contact(
        self, user_id: str, email: str, display_name: str | None = None, locale: str | None = None
    ) -> None:
        with transaction(self.engine) as session:
            contact = UserContact(
                user_id=user_id, email=email, display_name=display_name, locale=locale
            )
            store.save_contact(session=session, contact=contact)

    def claimed(self, event_id: str, kind: str) -> bool:
        """Whether some member has claimed this notification for sending."""
        with session_of(self) as session:
            return store.claim_of(session=session, event_id=event_id, kind=kind) is not None

    def outcome(self, event_id: str, kind: str) -> SentNotification | None:
        with session_of(self) as session:
            return store.outcome_of(session=session, event_id=event_id, kind=kind)


@contextmanager
def session_of(service: Service) -> Iterator[Session]:
    with Session(service.engine) as session:
        yield session


def kinds(messages: Sequence[ReceivedMessage]) -> list[str]:
    """The notification kind of each received message (its X-DreamScape-Notification header)."""
    return [str(m.message["X-DreamScape-Notification"]) for m in messages]


def parts(received: ReceivedMessage) -> tuple[str, str]:
    """(text, html) bodies of a received multipart/alternative message."""
    message = received.message
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())
