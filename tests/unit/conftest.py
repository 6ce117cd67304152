"""The unit tier needs no service: no broker, no database server, no SMTP server, no browser.

Collection stops with the offending tests named if one here asks for a fixture that starts
or reaches a service, or is marked `integration` or `postgres`: such a test belongs to its
service's folder, and `make unit` stays a run of seconds that needs nothing but Python.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SERVICE_FIXTURES = frozenset(
    {
        "session_broker",
        "kafka_bootstrap_servers",
        "kafka_cluster",
        "kafka_config",
        "topics",
        "group_protocol",
        "proxied_kafka",
        "postgres_server",
        "postgres_url",
        "database_url",
        "smtp_server",
        "tcp_proxy",
        "chromium",
    }
)
SERVICE_MARKERS = ("integration", "postgres")
UNIT = Path(__file__).parent


def needs(item: pytest.Item) -> list[str]:
    """The services `item` would use: service fixtures it requests and service markers."""
    fixtures = sorted(SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())))
    markers = [f"@{name}" for name in SERVICE_MARKERS if item.get_closest_marker(name)]
    return fixtures + markers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    offending = [
        f"{item.nodeid}: {', '.join(used)}"
        for item in items
        if UNIT in item.path.parents and (used := needs(item))
    ]
    if offending:
        raise pytest.UsageError(
            "tests/unit needs no service; move these tests to their service's folder:\n  "
            + "\n  ".join(offending)
        )
