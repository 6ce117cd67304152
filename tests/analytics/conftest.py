"""Fixtures of the analytics tests (`database_url` and `chromium` come from the shared plugin)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dreamscape_dev.testing.postgres import fresh_database


@pytest.fixture
def other_database_url(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A second fresh database of the same kind as `database_url`."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path}/other.db"
        return
    with fresh_database(request.getfixturevalue("postgres_server")) as url:
        yield url
