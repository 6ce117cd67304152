"""Fixtures of the deployment tests: docker-compose, and compose.yaml as it resolves it."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.deploy.deployment import missing_tool, parse_yaml, run_compose


@pytest.fixture(scope="module")
def docker_compose() -> str:
    """Path of the docker-compose binary (scripts/ensure-tools.sh installs Debian's 1.29)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_tool("docker-compose is not installed (make test installs it with apt-get)")
    return binary


@pytest.fixture(scope="module")
def compose(docker_compose: str) -> dict[str, Any]:
    """compose.yaml as docker-compose resolves it: anchors merged, relative paths absolute."""
    result = run_compose(docker_compose, "config")
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    model: dict[str, Any] = parse_yaml(result.stdout, docker_compose)
    return model
