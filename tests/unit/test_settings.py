"""librdkafka properties built from the environment, for both consumer group protocols."""

from __future__ import annotations

import pytest

from common.settings import CLASSIC_ONLY_PROPERTIES, ConfigurationError, RunnerSettings


class TestConsumerConfig:
    def test_the_classic_protocol_gets_cooperative_sticky_assignment(self) -> None:
        """Without a group protocol set, members rebalance incrementally (cooperative-sticky)."""
        config = RunnerSettings(kafka={}).consumer_config("g")
        assert config["partition.assignment.strategy"] == "cooperative-sticky"
        assert config["group.id"] == "g"

    def test_the_consumer_protocol_leaves_out_what_it_refuses(self) -> None:
        """With group.protocol=consumer (KIP-848) the classic-only properties are dropped, set or defaulted."""
        kafka = {
            "group.protocol": "consumer",
            "session.timeout.ms": "1000",
            "heartbeat.interval.ms": "100",
            "partition.assignment.strategy": "range",
        }
        config = RunnerSettings(kafka=kafka).consumer_config("g")
        assert config["group.protocol"] == "consumer"
        assert not set(CLASSIC_ONLY_PROPERTIES) & set(config)

    def test_the_consumer_protocol_keeps_its_own_properties(self) -> None:
        """group.remote.assignor and everything not classic-only pass through unchanged."""
        kafka = {"group.protocol": "consumer", "group.remote.assignor": "range"}
        config = RunnerSettings(kafka=kafka).consumer_config("g")
        assert config["group.remote.assignor"] == "range"
        assert config["enable.auto.offset.store"] == "false"

    def test_an_unknown_group_protocol_is_a_configuration_error(self) -> None:
        """A misspelt protocol fails at start-up with the variable named, not deep in librdkafka."""
        with pytest.raises(ConfigurationError, match="KAFKA_GROUP_PROTOCOL"):
            RunnerSettings(kafka={"group.protocol": "kip848"}).consumer_config("g")

    def test_the_auto_offset_store_cannot_be_turned_on(self) -> None:
        """enable.auto.offset.store=true would store offsets before outcomes are durable: refused."""
        with pytest.raises(ConfigurationError, match="ENABLE_AUTO_OFFSET_STORE"):
            RunnerSettings(kafka={"enable.auto.offset.store": "true"}).consumer_config("g")


class TestGroupId:
    def test_kafka_group_id_names_every_services_group(self) -> None:
        """One setting, KAFKA_GROUP_ID, chooses the group of any service; unset, each has its own default (issue 12)."""
        assert RunnerSettings(kafka={}).group_id("voyage-service") == "voyage-service"
        chosen = RunnerSettings(kafka={"group.id": "voyage-blue"})
        assert chosen.group_id("voyage-service") == "voyage-blue"
