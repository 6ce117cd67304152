"""What the adapters share: building a client, its errors, and copying records in and out.

`common.kafka` is the one package that imports `confluent_kafka`; everything else works on
`Record`s and `OutboundRecord`s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from common.records import Record, TopicPartition
from common.settings import MASK, is_secret_property
from common.throttle import LogThrottle

T = TypeVar("T")

UNREACHABLE: Final = "broker unreachable"
AUTHENTICATION: Final = "authentication failed"
SSL_HANDSHAKE: Final = "SSL handshake failed"
AUTHORIZATION: Final = "authorization failed"

#: What a client error says, by its text (librdkafka's log lines carry no code), most
#: specific first: an SSL failure also ends the connection.
_CAUSE_TEXTS: Final = (
    (SSL_HANDSHAKE, ("ssl handshake failed", "certificate verify failed")),
    (AUTHENTICATION, ("sasl authentication error", "authentication failed")),
    (AUTHORIZATION, ("authorization failed", "not authorized")),
    (UNREACHABLE, ("connection refused", "failed to resolve", "brokers are down", "connect to")),
)
_CAUSE_CODES: Final = {
    "_SSL": SSL_HANDSHAKE,
    "_AUTHENTICATION": AUTHENTICATION,
    "SASL_AUTHENTICATION_FAILED": AUTHENTICATION,
    "_TRANSPORT": UNREACHABLE,
    "_ALL_BROKERS_DOWN": UNREACHABLE,
    "_RESOLVE": UNREACHABLE,
}


def cause_category(code: str | None, text: str) -> str | None:
    """The stable category of a client error (`broker unreachable`...), or None if unknown.

    What an unauthenticated probe may be told: never the text itself, which names hosts,
    topics and principals.
    """
    if code is not None:
        if code.endswith("_AUTHORIZATION_FAILED"):
            return AUTHORIZATION
        if code in _CAUSE_CODES:
            return _CAUSE_CODES[code]
    lowered = text.lower()
    for category, needles in _CAUSE_TEXTS:
        if any(needle in lowered for needle in needles):
            return category
    return None


class ClientLog:
    """librdkafka's `logger`: lines go to the `librdkafka` logger, repeats throttled.

    librdkafka retries every connection, and logs each failure: about 20 lines a second per
    client against an unreachable broker. Per client and cause, one line when it starts (or
    changes), then a summary at most every `LogThrottle` interval with the count. The last
    error's cause category is remembered for readiness (`cause`).
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        throttle: LogThrottle | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger if logger is not None else logging.getLogger("librdkafka")
        self._throttle = throttle if throttle is not None else LogThrottle(now=now)
        self._now = now
        self._lock = threading.Lock()
        self._last: tuple[str, float] | None = None

    def log(self, level: int, fmt: str, *args: object) -> None:
        """What confluent-kafka calls: `log(level, "%s [%s] %s", facility, client, text)`."""
        if level < logging.WARNING or len(args) != 3:
            self._logger.log(level, fmt, *args)
            return
        facility, client, text = (str(a) for a in args)
        cause = cause_category(None, text)
        if cause is not None:
            self.note(cause)
        with self._lock:
            verdict = self._throttle.admit((client, cause or facility))
        if verdict is None:
            return
        if verdict.change:
            self._logger.log(level, fmt, *args)
        else:
            self._logger.log(
                level, "%s [%s] %s (%d times since the last line)", *args, verdict.suppressed + 1
            )

    def note(self, cause: str) -> None:
        """Remember `cause` as the last client error's category."""
        self._last = (cause, self._now())

    def note_error(self, code: str, text: str) -> None:
        """Remember the category of an error a client handed back (a consumed error)."""
        if (cause := cause_category(code, text)) is not None:
            self.note(cause)

    def cause(self, max_age_s: float = 60.0) -> str | None:
        """The last client error's category if one was seen within `max_age_s`, else None."""
        last = self._last
        if last is None or self._now() - last[1] > max_age_s:
            return None
        return last[0]


#: The one logger every client of this process is given (a client names itself in its lines).
client_log = ClientLog()
log = client_log


class KafkaConfigError(Exception):
    """librdkafka refused the configuration (unknown property, bad value)."""


@dataclass(frozen=True, slots=True)
class ClientError:
    """An error the client delivered in place of a record."""

    code: str
    message: str
    fatal: bool
    topic: str | None

    @property
    def unknown_topic(self) -> bool:
        return self.code == "UNKNOWN_TOPIC_OR_PART"


def to_record(message: Message) -> Record:
    """Copy a client message into a `Record`, bytes untouched."""
    kind, timestamp = message.timestamp()
    headers = message.headers()
    return Record(
        message.topic(),  # type: ignore[arg-type]  # never None on a consumed record
        message.partition(),  # type: ignore[arg-type]
        message.offset(),  # type: ignore[arg-type]
        message.key(),  # bytes: no deserializer is configured
        message.value(),
        tuple(headers) if headers else (),  # type: ignore[arg-type]
        timestamp if kind != 0 else None,  # 0 = TIMESTAMP_NOT_AVAILABLE
    )


def to_kafka_tp(tp: TopicPartition, offset: int | None = None) -> KafkaTopicPartition:
    if offset is None:
        return KafkaTopicPartition(tp.topic, tp.partition)
    return KafkaTopicPartition(tp.topic, tp.partition, offset)


def from_kafka_tps(tps: Iterable[KafkaTopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in tps]


def build_client(factory: Callable[[dict[str, Any]], T], config: Mapping[str, Any]) -> T:
    """The client `factory` builds from `config`; a refusal is a `KafkaConfigError` whose
    message never holds a secret property's value, even if librdkafka quoted it."""
    try:
        return factory(dict(config))
    except (KafkaException, ValueError, TypeError) as exc:
        detail = exc.args[0] if exc.args else exc
        message = detail.str() if isinstance(detail, KafkaError) else str(detail)
        for name, value in config.items():
            if is_secret_property(name) and isinstance(value, str) and value:
                message = message.replace(value, MASK)
        raise KafkaConfigError(f"{message} (KAFKA_* settings name librdkafka properties)") from None
