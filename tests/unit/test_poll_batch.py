"""How the consumer adapter forms a batch: what has arrived, without waiting for a full one."""

from __future__ import annotations

from typing import Any

import pytest

from common.kafka import RebalanceListener
from common.kafka.consumer import KafkaConsumer


class Message:
    """A consumed record as confluent-kafka hands it over (only what `to_record` reads)."""

    def __init__(self, offset: int) -> None:
        self._offset = offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "dreamscape.payment.completed"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"pay_1"

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class Client:
    """A librdkafka consumer whose local queue holds `queued` now and gets `arriving` later.

    `consume(n, timeout)` behaves as librdkafka's does: it returns once it has `n` messages,
    or when the timeout is over with what it has; the messages `arriving` come in during a
    wait of any length.
    """

    queued: list[Message] = []
    arriving: list[Message] = []

    def __init__(self, _config: dict[str, Any]) -> None:
        self.calls: list[tuple[int, float]] = []

    def consume(self, n: int, timeout: float) -> list[Message]:
        self.calls.append((n, timeout))
        if timeout > 0 and len(Client.queued) < n:
            Client.queued += Client.arriving
            Client.arriving = []
        taken, Client.queued = Client.queued[:n], Client.queued[n:]
        return taken


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> KafkaConsumer:
    monkeypatch.setattr("common.kafka.consumer.Consumer", Client)
    Client.queued, Client.arriving = [], []
    return KafkaConsumer({"group.id": "g"}, RebalanceListener())


def calls(consumer: KafkaConsumer) -> list[tuple[int, float]]:
    return consumer._consumer.calls  # type: ignore[attr-defined, no-any-return]


def test_what_has_arrived_is_returned_at_once_without_waiting_for_a_full_batch(
    consumer: KafkaConsumer,
) -> None:
    """Three records queued, a batch of 1000 asked with a 0.5 s wait: the three come back from a call that does not wait. librdkafka's consume(n, timeout) waits for n or the whole timeout, so at a low rate every record waited up to POLL_TIMEOUT_SECONDS (issue 25's latency rows)."""
    Client.queued = [Message(n) for n in range(3)]

    records, errors = consumer.poll_batch(1000, 0.5)

    assert [r.offset for r in records] == [0, 1, 2]
    assert errors == []
    assert calls(consumer) == [(1000, 0)]


def test_with_nothing_queued_the_poll_waits_for_the_first_record_then_takes_what_came_with_it(
    consumer: KafkaConsumer,
) -> None:
    """An empty queue: the poll waits (up to the timeout) for one record, not for a full batch, then takes without waiting whatever arrived with it."""
    Client.arriving = [Message(n) for n in range(5)]

    records, _errors = consumer.poll_batch(1000, 0.5)

    assert [r.offset for r in records] == [0, 1, 2, 3, 4]
    assert calls(consumer) == [(1000, 0), (1, 0.5), (999, 0)]


def test_a_full_queue_gives_a_full_batch_in_one_call(consumer: KafkaConsumer) -> None:
    """Under load the batch is as large as asked: 1000 of the 1500 queued, in one call."""
    Client.queued = [Message(n) for n in range(1500)]

    records, _errors = consumer.poll_batch(1000, 0.5)

    assert len(records) == 1000
    assert calls(consumer) == [(1000, 0)]


def test_an_idle_poll_returns_nothing_after_its_timeout(consumer: KafkaConsumer) -> None:
    """Nothing queued, nothing arriving: two calls, the second waiting the timeout, and no record."""
    records, errors = consumer.poll_batch(1000, 0.5)

    assert (records, errors) == ([], [])
    assert calls(consumer) == [(1000, 0), (1, 0.5)]
