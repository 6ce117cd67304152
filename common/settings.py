"""Settings from the environment, built once in `main()` and passed down.

Two kinds of settings:

* the runtime's own (`RunnerSettings`: database, HTTP port, logging, batching, retries,
  shutdown), read by pydantic-settings with one environment variable per field;
* librdkafka properties, passed through verbatim: every `KAFKA_<PROPERTY>` variable becomes
  the property with the prefix dropped, lower-cased and underscores turned into dots
  (`KAFKA_SESSION_TIMEOUT_MS=3000` → `session.timeout.ms=3000`). librdkafka validates them
  when the client is built, so a misspelt property fails at start-up with a clear line.

Services extend `RunnerSettings` with their own fields (SMTP, templates...).

Secrets never render. The Kafka properties are a `KafkaProperties` mapping whose repr masks
every secret property (`sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`,
a private key in PEM...), while the client still receives the value; `DATABASE_URL` is a
`DatabaseURL` (a `SecretStr` shown with its password masked) and a service's passwords are
`SecretStr`s. So neither `repr(settings)`, a log line nor a traceback can print one.

Every secret can instead come from a file, the Docker and Kubernetes secrets convention:
`<VARIABLE>_FILE` names the file holding the value (`DATABASE_URL_FILE`,
`SMTP_PASSWORD_FILE`, `KAFKA_SASL_PASSWORD_FILE`); one trailing newline is dropped. Setting
both the variable and its `_FILE` is a configuration error.
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field, GetCoreSchemaHandler, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import core_schema
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

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


MASK = "**********"
"""What a secret shows instead of its value (pydantic's `SecretStr` shows the same)."""

FILE_SUFFIX = "_FILE"

_SECRET_WORDS = ("password", "secret", "passphrase")
_SECRET_PROPERTIES = frozenset({"sasl.oauthbearer.config", "sasl.jaas.config"})


def is_secret_property(name: str) -> bool:
    """Whether the librdkafka property `name` holds a secret: a password, a client secret, a
    private key in PEM, or a free-form configuration that may carry one."""
    return (
        any(word in name for word in _SECRET_WORDS)
        or name.endswith("key.pem")
        or name in _SECRET_PROPERTIES
    )


class KafkaProperties(dict[str, str]):
    """librdkafka properties whose repr (and so str, logs, tracebacks) masks every secret.

    A `dict`, so the client is built from it as before; only its rendering differs. Serialised
    to JSON (`model_dump_json`), the secrets are masked too.
    """

    def masked(self) -> dict[str, str]:
        """A plain copy with each secret property's value replaced by `MASK`."""
        return {k: MASK if is_secret_property(k) else v for k, v in self.items()}

    def __repr__(self) -> str:
        return repr(self.masked())

    def __rich_repr__(self) -> Iterator[tuple[str, str]]:
        yield from self.masked().items()

    def copy(self) -> KafkaProperties:
        return KafkaProperties(self)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls,
            handler.generate_schema(dict[str, str]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda value: KafkaProperties(value).masked(), when_used="json"
            ),
        )


class DatabaseURL(SecretStr):
    """A database URL shown with its password masked (`postgresql://app:***@db/pay`).

    `get_secret_value()` gives the URL to connect with; a URL SQLAlchemy cannot read is
    masked whole.
    """

    def _display(self) -> str:
        value = self.get_secret_value()
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            return MASK if value else ""
        if any(is_secret_property(key.lower()) for key in url.query):
            url = url.set(query={})
        return url.render_as_string(hide_password=True)


def secret_value(value: SecretStr | str | None) -> str | None:
    """The plain value of a secret setting (a subclass may redeclare one as a plain `str`)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def read_secret_file(variable: str, path: str) -> str:
    """The secret in the file `variable` names, without one trailing newline."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigurationError(f"{variable}: cannot read the secret file {path}: {why}") from None
    return text.removesuffix("\n").removesuffix("\r")


def _property(variable: str) -> str:
    return variable[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")


def kafka_properties(environ: Mapping[str, str]) -> KafkaProperties:
    """The librdkafka properties named by `KAFKA_*` variables in `environ`.

    `KAFKA_<SECRET>_FILE` (a secret property, e.g. `KAFKA_SASL_PASSWORD_FILE`) reads that
    property's value from the file; other names ending in `_FILE` are properties of their own
    (`KAFKA_SASL_OAUTHBEARER_ASSERTION_FILE`).
    """
    properties = KafkaProperties()
    for variable, value in environ.items():
        if not variable.startswith(KAFKA_ENV_PREFIX) or len(variable) == len(KAFKA_ENV_PREFIX):
            continue
        inline = variable.removesuffix(FILE_SUFFIX)
        if inline != variable and is_secret_property(_property(inline)):
            if inline in environ:
                raise ConfigurationError(f"{inline} and {variable} are both set: set one of them")
            properties[_property(inline)] = read_secret_file(variable, value)
        else:
            properties[_property(variable)] = value
            _check_location(variable, value)
    return properties


#: librdkafka's special `ssl.ca.location`: the system's CA store, wherever it is.
_PROBE = "probe"


def _check_location(variable: str, value: str) -> None:
    """A file property (`KAFKA_SSL_CA_LOCATION`...) must name an existing path.

    librdkafka would refuse it too, as `ssl.ca.location failed: ... BIO lib`, naming neither
    the variable nor the path.
    """
    if variable.endswith("_LOCATION") and value and value != _PROBE and not Path(value).exists():
        raise ConfigurationError(f"{variable}: no such file or directory: {value}")


class RunnerSettings(BaseSettings):
    """Settings every consumer process reads. Field names are the environment variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: DatabaseURL | None = None
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
    call_poll_interval_seconds: Annotated[float, Field(ge=0, le=60)] = 5.0
    """Longest time without a poll between two handler calls of one batch (see
    `MAX_RECORDS_PER_CALL`). The poll serves a rebalance and resets `max.poll.interval.ms`,
    but pausing the partitions for it makes librdkafka drop what it fetched ahead, so it is
    not done after every fast call. `0` polls between every two calls."""
    poll_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    shutdown_timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    max_attempts: Annotated[int, Field(ge=1)] = 3
    retry_initial_seconds: Annotated[float, Field(gt=0)] = 0.5
    retry_max_seconds: Annotated[float, Field(gt=0)] = 30.0
    liveness_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_clock_skew_seconds: Annotated[float, Field(ge=0)] = 86_400.0
    kafka: KafkaProperties = Field(default_factory=KafkaProperties)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _KafkaProperties(settings_cls),
            _SecretFiles(settings_cls),
            env_settings,
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Fields as pydantic shows them, the Kafka properties masked even when a copy made
        with `model_copy(update=...)` holds them in a plain dict."""
        for name, value in super().__repr_args__():
            if name == "kafka" and isinstance(value, Mapping):
                yield name, KafkaProperties(value)
            else:
                yield name, value

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

    def consumer_config(self, group_id: str) -> KafkaProperties:
        """librdkafka consumer properties: defaults, then the environment, then pinned ones.

        Under `group.protocol=consumer` the classic-only properties are left out, so one
        environment (the tests' fast group timings, say) works under both protocols; ones the
        environment set explicitly are named in a warning.
        """
        config = KafkaProperties({**CONSUMER_DEFAULTS, "group.id": group_id, **self.kafka})
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

    def producer_config(self) -> KafkaProperties:
        """librdkafka producer properties for DLQ writes: durable, idempotent, confirmed."""
        shared = {k: v for k, v in self.kafka.items() if not _consumer_only(k)}
        return KafkaProperties(
            {
                "bootstrap.servers": CONSUMER_DEFAULTS["bootstrap.servers"],
                **shared,
                "acks": "all",
                "enable.idempotence": "true",
                "linger.ms": "5",
            }
        )


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


def _is_secret(annotation: Any) -> bool:
    """Whether a field's type is a secret (`SecretStr`, `DatabaseURL`, optional or not)."""
    if isinstance(annotation, type):
        return issubclass(annotation, SecretStr)
    if get_origin(annotation) in (Union, types.UnionType, Annotated):
        return any(_is_secret(arg) for arg in get_args(annotation))
    return False


class _SecretFiles(PydanticBaseSettingsSource):
    """A settings source reading each secret field `X` from the file `X_FILE` names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name, field in self.settings_cls.model_fields.items():
            variable = name.upper()
            path = environ.get(variable + FILE_SUFFIX)
            if path is None or not _is_secret(field.annotation):
                continue
            if variable in environ:
                raise ConfigurationError(
                    f"{variable} and {variable}{FILE_SUFFIX} are both set: set one of them"
                )
            values[name] = read_secret_file(variable + FILE_SUFFIX, path)
        return values


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
