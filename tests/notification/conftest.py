"""Fixtures of the notification tests: the wired handler on SQLite and PostgreSQL.

`database_url` and `chromium` come from the shared plugin (dreamscape_dev.testing.plugin).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dreamscape_dev.testing.smtp import SmtpSink
from tests.notification.support import USER, Service, settings


def _with_contact(svc: Service) -> Service:
    svc.add_contact(USER, "zoe@example.test", "Zoé Martin", "en")
    return svc


@pytest.fixture
def service(smtp_server: SmtpSink, database_url: str) -> Iterator[Service]:
    """On SQLite and PostgreSQL: the handler, a contact for the spec's user, no address template."""
    svc = _with_contact(Service(settings(smtp_server, database_url)))
    yield svc
    svc.close()


@pytest.fixture
def sqlite_service(smtp_server: SmtpSink, sqlite_url: str) -> Iterator[Service]:
    """The same on SQLite only, for tests about content rather than storage."""
    svc = _with_contact(Service(settings(smtp_server, sqlite_url)))
    yield svc
    svc.close()
