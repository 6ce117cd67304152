"""Fixtures of the run-loop integration tests (the services' come from the shared plugin)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A localhost port that refuses connections (bound, never listening) for the test."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


class Lines(logging.Handler):
    """Keeps the text of every line logged to it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


@pytest.fixture
def librdkafka_lines() -> Iterator[list[str]]:
    """The lines librdkafka logs during the test (warnings and worse), as they are logged."""
    logger = logging.getLogger("librdkafka")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield handler.texts
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
