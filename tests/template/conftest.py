"""Fixtures of the template tests: docker-compose, and git for the update tests' repositories."""

from __future__ import annotations

import shutil

import pytest

from tests.deploy.deployment import missing_tool


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Path of docker-compose (offline `config` only); skips, or fails under REQUIRE_TOOLS=1."""
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_tool("docker-compose is not installed (make test installs it with apt-get)")
    return binary
