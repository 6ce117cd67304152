"""Fixtures more than one test folder needs (the rest come from `dreamscape_dev.testing.plugin`)."""

from __future__ import annotations

import pytest

from tests.deploy.deployment import required_tool


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of docker-compose (offline `config` only; scripts/ensure-tools.sh installs 1.29)."""
    return required_tool("docker-compose", "make test installs it with apt-get")
