"""`build`: from settings to the `ConsumerSpec` the run loop runs. Everything stateful starts here.

The engine, the template environments and the SMTP configuration are created once, at
start-up, and passed down; nothing is created at import. Templates are checked before the
consumer joins its group, so a broken override exits with code 2 instead of failing emails.
The database is opened the way every service opens it (`common.schema.open_database`:
waited for at start-up, then migrated).
"""

from __future__ import annotations

import socket

from prometheus_client import CollectorRegistry

from common.business import BusinessMetrics
from common.db import TRANSIENT_DB_ERRORS, reachable
from common.handlers import ConsumerSpec
from common.schema import open_database
from common.topics import GROUP_NOTIFICATION
from notification_consumer.handler import NotificationHandler
from notification_consumer.mailer import Mailer
from notification_consumer.metrics import NotificationMetrics
from notification_consumer.rendering import Renderer
from notification_consumer.samples import check_templates, languages_to_check
from notification_consumer.settings import NotificationSettings
from notification_consumer.smtp import SmtpConfig
from notification_consumer.tables import SCHEMA

SERVICE = "notification-consumer"


def renderer_for(settings: NotificationSettings) -> Renderer:
    return Renderer(
        retry_url=settings.payment_retry_url,
        default_locale=settings.default_locale,
        timezone=settings.display_timezone,
        template_dir=settings.notification_template_dir,
        message_id_domain=settings.message_id_domain,
    )


def build(settings: NotificationSettings, registry: CollectorRegistry) -> ConsumerSpec:
    """The notification service's spec; raises ConfigurationError for broken templates."""
    renderer = renderer_for(settings)
    check_templates(
        renderer, languages_to_check(settings.default_locale, settings.notification_template_dir)
    )
    engine = open_database(SCHEMA, settings)
    smtp = SmtpConfig.from_settings(settings)
    mailer = Mailer(smtp, connections=settings.smtp_connections)
    group = settings.group_id(GROUP_NOTIFICATION)
    handler = NotificationHandler(
        engine=engine,
        renderer=renderer,
        mailer=mailer,
        sender=settings.mail_from,
        metrics=NotificationMetrics(registry),
        address_template=settings.recipient_email_template,
        message_id_domain=settings.message_id_domain,
        record_every=settings.record_every,
        consumer=group,
        on_claimed=BusinessMetrics(registry, SERVICE),
    )
    return ConsumerSpec(
        name=SERVICE,
        group_id=group,
        handle=handler,
        transient_errors=TRANSIENT_DB_ERRORS,
        record_attempts=settings.smtp_defer_attempts,  # a recipient deferring (4xx at RCPT)
        readiness_checks={
            "database": lambda: reachable(engine),
            "smtp": lambda: _listening(smtp.host, smtp.port),
        },
        on_stop=handler.request_stop,
        closers=(handler.close, mailer.close, engine.dispose),
    )


def _listening(host: str, port: int) -> bool:
    """Whether the SMTP server accepts TCP connections (no SMTP dialogue, no login)."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False
