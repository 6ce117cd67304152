"""Settings from the environment, built once in `main()` and passed down.

Two kinds of settings:

* the runtime's own (`RunnerSettings`: database, HTTP port, logging, batching, retries,
  shutdown), read by pydantic-settings with one environment variable per field;
* librdkafka properties, passed through verbatim: every `KAFKA_<PROPERTY>` variable becomes
  the property with the prefix dropped, lower-cased and underscores turned into dots
  (`KAFKA_SESSION_TIMEOUT_MS=3000` → `session.timeout.ms=3000`). librdkafka validates them
  when the client is built, so a misspelt property fails at start-up with a clear line.

Services extend `RunnerSettings` with their own fields (SMTP, templates...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

KAFKA_ENV_PREFIX = "KAFKA_"

# Properties the runtime relies on for at-least-once delivery; the environment may not change them.
PINNED_CONSUMER_PROPERTIES: Mapping[str, str] = {"enable.auto.offset.store": "false"}

CONSUMER_DEFAULTS: Mapping[str, str] = {
    "bootstrap.servers": "localhost:9092",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": "true",
    "auto.commit.interval.ms": "5000",
    "partition.assignment.strategy": "cooperative-sticky",
    "statistics.interval.ms": "5000",
    "topic.metadata.refresh.interval.ms": "30000",
}
"""Defaults the environment may override.

`auto.offset.reset=earliest`: a new group reads the topics' history rather than skipping
payments published before it first started. Auto commit only commits offsets the loop has
*stored*, which it does after a record's outcome is durable, so periodic commits are safe.
"""


#: Group protocols librdkafka speaks: `classic` (client-side assignment) and `consumer` (KIP-848).
GROUP_PROTOCOLS = ("classic", "consumer")

#: Classic-protocol properties that librdkafka refuses (`_INVALID_ARG`) under
#: `group.protocol=consumer`: there the broker assigns partitions and owns the session and
#: heartbeat timings (`group.consumer.session.timeout.ms`, `group.consumer.heartbeat.interval.ms`).
CLASSIC_ONLY_PROPERTIES = (
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
)

_log = logging.getLogger(__name__)

S = TypeVar("S", bound="RunnerSettings")


class ConfigurationError(Exception):
    """The environment does not describe a runnable configuration; the message says why."""


def kafka_properties(environ: Mapping[str, str]) -> dict[str, str]:
    """The librdkafka properties named by `KAFKA_*` variables in `environ`."""
    return {
        name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", "."): value
        for name, value in environ.items()
        if name.startswith(KAFKA_ENV_PREFIX) and len(name) > len(KAFKA_ENV_PREFIX)
    }


class RunnerSettings(BaseSettings):
    """Settings every consumer process reads. Field names are the environment variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str | None = None
    db_migrate_on_start: bool = True
    db_start_timeout_seconds: Annotated[float, Field(ge=0)] = 60.0
    http_host: str = "0.0.0.0"  # noqa: S104 - probes and scrapes come from outside the pod
    http_port: Annotated[int, Field(ge=0, le=65535)] = 8080
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] | None = None
    topic_prefix: str = ""
    dlq_topic: str | None = None
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    max_records_per_call: Annotated[int, Field(ge=1, le=100_000)] = 1000
    poll_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    shutdown_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    max_attempts: Annotated[int, Field(ge=1)] = 3
    retry_initial_seconds: Annotated[float, Field(gt=0)] = 0.5
    retry_max_seconds: Annotated[float, Field(gt=0)] = 30.0
    liveness_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_clock_skew_seconds: Annotated[float, Field(ge=0)] = 86_400.0
    kafka: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, _KafkaProperties(settings_cls), env_settings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", "dlq_topic", "database_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    def group_id(self, default: str) -> str:
        """The consumer group: `KAFKA_GROUP_ID` if set, else the service's own default.

        One setting for every service; its DLQ is `dreamscape.dlq.<group>` and an inbox keyed
        by consumer uses it too, so two deployments in two groups never share effects.
        """
        return self.kafka.get("group.id", default)

    def adopt_deprecated_group(self, variable: str, value: str | None) -> None:
        """Honour a service's old group variable for one release, with a warning."""
        if value is None:
            return
        if "group.id" in self.kafka:
            _log.warning("%s is deprecated and ignored: KAFKA_GROUP_ID is set", variable)
            return
        _log.warning("%s is deprecated: set KAFKA_GROUP_ID=%s instead", variable, value)
        self.kafka["group.id"] = value

    def consumer_config(self, group_id: str) -> dict[str, str]:
        """librdkafka consumer properties: defaults, then the environment, then pinned ones.

        Under `group.protocol=consumer` the classic-only properties are left out, so one
        environment (the tests' fast group timings, say) works under both protocols; ones the
        environment set explicitly are named in a warning.
        """
        config = {**CONSUMER_DEFAULTS, "group.id": group_id, **self.kafka}
        protocol = config.get("group.protocol", "classic")
        if protocol not in GROUP_PROTOCOLS:
            raise ConfigurationError(
                f"KAFKA_GROUP_PROTOCOL={protocol} is not one of {', '.join(GROUP_PROTOCOLS)}"
            )
        if protocol == "consumer":
            if ignored := sorted(set(CLASSIC_ONLY_PROPERTIES) & set(self.kafka)):
                _log.warning(
                    "group.protocol=consumer: ignoring classic-only %s (the broker's "
                    "group.consumer.* settings govern sessions and heartbeats)",
                    ", ".join(ignored),
                )
            for name in CLASSIC_ONLY_PROPERTIES:
                config.pop(name, None)
        for name, required in PINNED_CONSUMER_PROPERTIES.items():
            if config.get(name, required) != required:
                raise ConfigurationError(
                    f"KAFKA_{name.upper().replace('.', '_')}={config[name]} is not allowed: "
                    f"the run loop stores offsets itself after each outcome is durable"
                )
            config[name] = required
        return config

    def producer_config(self) -> dict[str, str]:
        """librdkafka producer properties for DLQ writes: durable, idempotent, confirmed."""
        shared = {k: v for k, v in self.kafka.items() if not _consumer_only(k)}
        return {
            "bootstrap.servers": CONSUMER_DEFAULTS["bootstrap.servers"],
            **shared,
            "acks": "all",
            "enable.idempotence": "true",
            "linger.ms": "5",
        }


_CONSUMER_ONLY_PREFIXES = (
    "group.",
    "session.",
    "heartbeat.",
    "auto.",
    "enable.auto.",
    "partition.assignment",
    "max.poll",
    "fetch.",
    "isolation.",
    "enable.partition.eof",
    "check.crcs",
    "queued.",
    "consume.",
    "coordinator.",
    "group.instance",
    "statistics.",
)


def _consumer_only(name: str) -> bool:
    return name.startswith(_CONSUMER_ONLY_PREFIXES)


class _KafkaProperties(PydanticBaseSettingsSource):
    """A settings source that gathers every `KAFKA_*` variable into the `kafka` field."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return {"kafka": kafka_properties(os.environ)}


def load_settings(cls: type[S]) -> S:
    """Build settings of type `cls` from the process environment.

    Raises `ConfigurationError` with one readable line naming each bad variable.
    """
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from None
