"""One fleet of the three services on the secured broker per module (see `tests.security.secured`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dreamscape_dev.testing.broker import SecuredBroker
from dreamscape_dev.testing.smtp import SmtpSink
from tests.security.secured import SecuredFleet, secured_fleet


@pytest.fixture(scope="module")
def fleet(
    secured_kafka: SecuredBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredFleet]:
    """voyage, notification and analytics as processes, each as its own least-privilege user."""
    with (
        SmtpSink() as smtp,
        secured_fleet(secured_kafka, smtp, tmp_path_factory.mktemp("secured")) as started,
    ):
        yield started
