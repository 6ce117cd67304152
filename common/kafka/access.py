"""What this client's principal may do on a topic, asked before a tool reads it.

A consumer without READ on a topic gets no record and, through `read_all`, no error either:
an unreadable dead-letter topic would look empty. One DescribeTopics request asking for the
authorized operations (KIP-430) tells a missing DESCRIBE, a missing READ and refused
credentials (reported by the client on the side, and ending the wait at once) apart, in
one line each, before anything is read.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient  # type: ignore[attr-defined]

from common.kafka.client import build_client, log

_MAY_READ = {AclOperation.READ, AclOperation.ALL}
#: Errors the client reports on the side (`error_cb`) that no retry will mend.
_REFUSED = (KafkaError._AUTHENTICATION, KafkaError._SSL)


def topic_read_problem(
    config: Mapping[str, str], topic: str, timeout_s: float = 10.0
) -> str | None:
    """Why this principal may not read `topic`, or None when it may (or the topic is absent).

    A topic that does not exist is no problem here: a group that never dead-lettered has no
    DLQ topic, and reading it finds nothing, truthfully. A broker that leaves the
    operations out is trusted.
    """
    refused: list[KafkaError] = []

    def note(error: KafkaError) -> None:
        if error.code() in _REFUSED:
            refused.append(error)

    # The client's own log would repeat what the one line says (`log_level` 0: none).
    quiet = {"logger": log, "log_level": 0, "error_cb": note}
    admin = build_client(AdminClient, {**config, **quiet})
    futures = admin.describe_topics(
        TopicCollection([topic]), include_authorized_operations=True, request_timeout=timeout_s
    )
    deadline = time.monotonic() + timeout_s + 1.0
    while True:
        admin.poll(0.1)  # serves error_cb: refused credentials end the wait at once
        if refused:
            return f"the broker refused the connection: {refused[-1].str()}"
        try:
            description = futures[topic].result(timeout=0.1)
            break
        except FutureTimeout:
            if time.monotonic() > deadline:
                return f"topic {topic} could not be described within {timeout_s:.0f} s"
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                return f"authorization: no DESCRIBE permission on topic {topic}"
            return f"topic {topic} could not be described: {error.name()}: {error.str()}"
    operations = description.authorized_operations
    if operations is not None and not _MAY_READ & set(operations):
        return f"authorization: no READ permission on topic {topic}"
    return None
