"""One fleet of the three services per scenario module (see `tests.scenarios.fleet`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dreamscape_dev.testing.smtp import SmtpSink
from tests.scenarios.fleet import Fleet, fleet


@pytest.fixture(scope="module")
def services(
    kafka_bootstrap_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """voyage, notification and analytics as processes on private topics, with an SMTP server."""
    directory: Path = tmp_path_factory.mktemp("fleet")
    with SmtpSink() as smtp, fleet(kafka_bootstrap_servers, smtp, directory) as started:
        yield started
