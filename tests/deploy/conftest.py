"""Fixtures of the deployment tests: compose.yaml as docker-compose resolves it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deployment import parse_yaml, run_compose


@pytest.fixture(scope="module")
def compose(docker_compose: str) -> dict[str, Any]:
    """compose.yaml as docker-compose resolves it: anchors merged, relative paths absolute."""
    result = run_compose(docker_compose, "config")
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    model: dict[str, Any] = parse_yaml(result.stdout, docker_compose)
    return model
