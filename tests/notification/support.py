"""Helpers shared by the notification tests: events, inbound records, settings, handlers."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlmodel import Session

from common.db import create_schema, make_engine, transaction
from common.parsing import parse_event
from common.records import Inbound, OutboundRecord, Record
from dreamscape_dev.testing.smtp import ReceivedMessage, SmtpSink
from notification_consumer import repository
from notification_consumer.models import MODELS, SentNotification, UserContact
from notification_consumer.service import build
from notification_consumer.settings import NotificationSettings

ROOT = Path(__file__).resolve().parents[2]
SPEC_EXAMPLES = ROOT / "dreamscape_dev" / "testing" / "spec_examples"
USER = "usr_123456789"
"""The spec examples' user."""
MAIL_FROM = "DreamScape <no-reply@dreamscape.test>"
RETRY_URL = "https://app.dreamscape.test/bookings/{booking_id}/pay?retry={payment_id}"
TOPIC_BY_TYPE = {
    "payment.initiated": "dreamscape.payment.initiated",
    "payment.completed": "dreamscape.payment.completed",
    "payment.failed": "dreamscape.payment.failed",
    "payment.refunded": "dreamscape.payment.refunded",
}


def spec_document(event_type: str) -> dict[str, Any]:
    """The spec's example of `event_type`, as a dict."""
    name = event_type.replace(".", "_") + ".json"
    document: dict[str, Any] = json.loads((SPEC_EXAMPLES / name).read_text())
    return document


def document(event_type: str, *, fresh: bool = True, **payload: Any) -> dict[str, Any]:
    """A spec example with a new eventId (unless `fresh` is False) and payload fields replaced."""
    doc = spec_document(event_type)
    if fresh:
        doc["eventId"] = str(uuid.uuid4())
    doc["payload"].update(payload)
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


_offsets = iter(range(10**9))


def inbound(doc: dict[str, Any]) -> Inbound:
    """An `Inbound` as the run loop would hand it over (offsets increase across calls)."""
    topic = TOPIC_BY_TYPE[doc["eventType"]]
    value = encode(doc)
    record = Record(topic, 0, next(_offsets), doc["payload"]["paymentId"].encode(), value)
    return Inbound(record, parse_event(value, topic))


def inbound_record(record: OutboundRecord) -> Inbound:
    """An `Inbound` from a record as produced (the simulator's), parsed on its topic."""
    consumed = Record(record.topic, 0, next(_offsets), record.key, record.value, record.headers)
    return Inbound(consumed, parse_event(record.value, record.topic))


def inbounds(docs: Sequence[dict[str, Any]]) -> list[Inbound]:
    return [inbound(doc) for doc in docs]


def outbound(doc: dict[str, Any], prefix: str = "") -> OutboundRecord:
    topic = prefix + TOPIC_BY_TYPE[doc["eventType"]]
    return OutboundRecord(topic, doc["payload"]["paymentId"].encode(), encode(doc))


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
        self.engine = make_engine(config.database_url or "")
        create_schema(self.engine, MODELS)

    def handle(self, docs: Sequence[dict[str, Any]]) -> None:
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
            repository.save_contact(session=session, contact=contact)

    def claimed(self, event_id: str, kind: str) -> bool:
        """Whether some member has claimed this notification for sending."""
        with session_of(self) as session:
            return repository.claim_of(session=session, event_id=event_id, kind=kind) is not None

    def outcome(self, event_id: str, kind: str) -> SentNotification | None:
        with session_of(self) as session:
            return repository.outcome_of(session=session, event_id=event_id, kind=kind)


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
