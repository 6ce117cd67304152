"""Reading the cause of a fatal client error, the way confluent-kafka hands it over.

librdkafka keeps one fatal error per client (`rd_kafka_fatal_error()`); confluent-kafka has
no method for it, and it reaches Python in three shapes:

* **the producer**: librdkafka raises `_FATAL` through `error_cb`; confluent-kafka's C
  callback reads `rd_kafka_fatal_error()` itself and, instead of calling any Python
  callback, sets a `KafkaException` whose `KafkaError` carries the real code
  (`CLUSTER_AUTHORIZATION_FAILED`...) with `fatal()` true, raised by the `poll()` or
  `flush()` that served it. It leaves that exception *pending*: a delivery callback served
  in the same call fails on its first C call (`KafkaError.code()`) with a `SystemError`
  whose `__cause__` is the fatal `KafkaException`, and that `SystemError` is what `flush()`
  raises. Later `produce()` calls raise `_FATAL` with `fatal()` false, the cause gone.
* **the consumer**: librdkafka hands the fatal error back as a consumed message's error,
  code `_FATAL` with `fatal()` false, its text `Fatal error: <cause>: <detail>` (the
  cause's own error string, which names its code).
* any other `SystemError` out of the client: a broken call state, never one record's fault.
"""

from __future__ import annotations

from functools import cache

from confluent_kafka import KafkaError, KafkaException

from common.errors import FatalClientError

CLIENT_FAILURE = "CLIENT_FAILURE"
_PREFIX = "Fatal error: "


def is_fatal(error: KafkaError) -> bool:
    """`error` is fatal: flagged so, or librdkafka's umbrella `_FATAL` (flag false)."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def from_error(client: str, error: KafkaError) -> FatalClientError:
    """The fatal error `error` stands for; `_FATAL`'s cause is read from its text."""
    text = error.str()
    if error.code() != KafkaError._FATAL:
        return FatalClientError(client, error.name(), text)
    return FatalClientError(client, cause_name(text) or error.name(), text)


def from_exception(client: str, exc: BaseException) -> FatalClientError | None:
    """The fatal client error `exc` carries (in itself or its cause), or None.

    A `SystemError` is always one: with the fatal cause found in its chain, or as
    `CLIENT_FAILURE`.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, FatalClientError):
            return link
        error = link.args[0] if isinstance(link, KafkaException) and link.args else None
        if isinstance(error, KafkaError) and is_fatal(error):
            return from_error(client, error)
        link = link.__cause__ or link.__context__
    if isinstance(exc, SystemError):
        return FatalClientError(client, CLIENT_FAILURE, f"SystemError: {exc}")
    return None


def cause_name(text: str) -> str | None:
    """The error code named by librdkafka's `Fatal error: <cause string>: <detail>`."""
    rest = text.removeprefix(_PREFIX)
    matches = [message for message in _names() if rest.startswith(message)]
    return _names()[max(matches, key=len)] if matches else None


@cache
def _names() -> dict[str, str]:
    """Each error code's string (`Broker: Cluster authorization failed`) → its name."""
    names: dict[str, str] = {}
    for name in dir(KafkaError):
        code = getattr(KafkaError, name)
        if name.isupper() and isinstance(code, int) and code != KafkaError._FATAL:
            names.setdefault(KafkaError(code).str(), name)
    return names
