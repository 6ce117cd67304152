"""The shared plugin's check that a test using PostgreSQL says so with `@pytest.mark.postgres`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import pytest

from dreamscape_dev.testing.plugin import unmarked_postgres_tests


@dataclass
class Item:
    """What the check reads of a collected test: its id, its fixtures' closure, its markers."""

    nodeid: str
    fixturenames: Sequence[str]
    markers: Sequence[str] = ()

    def get_closest_marker(self, name: str) -> pytest.Mark | None:
        return getattr(pytest.mark, name).mark if name in self.markers else None


def unmarked(*items: Item) -> list[str]:
    return unmarked_postgres_tests(cast(list[pytest.Item], list(items)))


def test_a_test_asking_for_postgres_url_unmarked_is_named() -> None:
    """`postgres_url` brings `postgres_server` into the closure: without the marker, named."""
    assert unmarked(Item("t.py::a", ["postgres_url", "postgres_server", "tmp_path"])) == ["t.py::a"]


def test_a_test_asking_for_the_server_itself_unmarked_is_named() -> None:
    assert unmarked(Item("t.py::b", ["postgres_server"])) == ["t.py::b"]


def test_a_marked_test_and_a_test_without_postgres_pass() -> None:
    """The marker (its own, its class's or a `database_url` param's) satisfies the check."""
    marked = Item("t.py::c", ["postgres_url", "postgres_server"], markers=["postgres"])
    other = Item("t.py::d", ["database_url", "sqlite_url", "tmp_path"], markers=["integration"])
    assert unmarked(marked, other) == []
