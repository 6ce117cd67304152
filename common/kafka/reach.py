"""Can this client reach its broker at all? Asked first by the tools, with a deadline.

librdkafka never gives up on a broker: a client pointed at a closed port, or refused by
the broker, retries for ever, and a tool waiting on it never ends (or ends, much later, in
a timeout that does not say why). One metadata request, retried in short slices until
`timeout_s`, tells the three cases apart: it answers (None), the credentials or the TLS
handshake are refused (said at once: no retry will mend them), or nothing answers in time
(the cause the client last reported: `broker unreachable`...).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from common.kafka.client import AUTHENTICATION, SSL_HANDSHAKE, build_client, cause_category, log

DEFAULT_TIMEOUT_S = 15.0
"""How long a tool waits for its broker before saying it cannot reach it."""

_SLICE_S = 0.5


def broker_problem(config: Mapping[str, str], timeout_s: float = DEFAULT_TIMEOUT_S) -> str | None:
    """Why the broker at `config`'s `bootstrap.servers` cannot be used, in one line, or None.

    Returns within about `timeout_s`; refused credentials or TLS end the wait at once.
    """
    seen: list[KafkaError] = []
    # The client's own log would repeat what the one line says (`log_level` 0: none).
    quiet = {"logger": log, "log_level": 0, "error_cb": seen.append}
    admin = build_client(AdminClient, {**config, **quiet})
    address = config.get("bootstrap.servers", "localhost:9092")
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            admin.list_topics(timeout=max(0.1, min(_SLICE_S, remaining)))
            return None
        except KafkaException:
            pass  # not in this slice: the errors reported on the side say why
        admin.poll(0)  # serves error_cb
        causes = [(cause_category(e.name(), e.str()), e.str()) for e in seen]
        for cause, text in causes:
            if cause in (AUTHENTICATION, SSL_HANDSHAKE):
                return f"the broker at {address} refused the connection: {cause} ({text})"
        if time.monotonic() >= deadline:
            return _unreachable(address, timeout_s, causes)


def _unreachable(address: str, timeout_s: float, causes: list[tuple[str | None, str]]) -> str:
    known = [(cause, text) for cause, text in causes if cause is not None]
    if not known:
        return f"no answer from the broker at {address} within {timeout_s:g} s"
    cause, text = known[-1]
    return f"cannot reach the broker at {address} within {timeout_s:g} s: {cause} ({text})"
