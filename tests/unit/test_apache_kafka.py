"""Pure parts of the Apache Kafka test broker: cluster ids and server properties."""

from __future__ import annotations

import uuid

import pytest

from dreamscape_dev.testing import apache_kafka


class TestClusterId:
    def test_a_cluster_id_never_starts_with_a_dash(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An id beginning with '-' reads as an option to kafka-storage (it failed a CI run); like Kafka's Uuid.randomUuid, such a draw is replaced."""
        draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x00" * 15), uuid.UUID(bytes=b"\x01" * 16)])
        monkeypatch.setattr(apache_kafka.uuid, "uuid4", lambda: next(draws))
        cluster_id = apache_kafka.new_cluster_id()
        assert not cluster_id.startswith("-")
        assert len(cluster_id) == 22
