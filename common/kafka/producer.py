"""The producer adapter: durable, idempotent writes, each confirmed, never produced twice on a retry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from common.errors import FatalClientError, ProduceRefusedError, TransientError
from common.kafka import fatal
from common.kafka.client import build_client, log
from common.records import OutboundRecord, TopicPartition

PERMANENT_PRODUCE_ERRORS: frozenset[int] = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
    }
)


_MAX_CARRIED = 10_000


class KafkaProducer:
    """A durable producer: `acks=all`, idempotent, and every send confirmed before returning.

    A send that fails part-way is retried by calling `send_confirmed` again with the same
    records: the ones already acknowledged are not produced again, and the ones still in
    flight are waited for rather than produced a second time, so a retry never writes a
    record twice.

    A fatal error of the client (`common.kafka.fatal`: an idempotent producer refused its
    producer id...) raises `FatalClientError` naming its cause, from then on at every call:
    only a new process recovers. `name` says which producer it is in that error.
    """

    def __init__(self, config: Mapping[str, str], *, name: str = "producer") -> None:
        self._name = name
        self._producer = build_client(Producer, {**config, "logger": log})
        #: From calls that did not succeed entirely, for their retries: per record, the
        #: outcome cells of its copies still "pending" (in flight) or "delivered".
        self._carried: dict[OutboundRecord, list[list[Any]]] = {}
        self._fatal: FatalClientError | None = None

    def check(self) -> None:
        """Serve the client's queue; raises `FatalClientError` once the producer is fatal.

        The run loop calls it between polls, so a producer made fatal at start (no producer
        id without a WRITE ACL) ends the process before the first letter needs it.
        """
        if self._fatal is not None:
            raise self._fatal
        try:
            self._producer.poll(0)
        except (KafkaException, SystemError) as exc:
            self._fail(exc)

    def send_confirmed(
        self, records: Sequence[OutboundRecord], timeout_s: float = 30.0
    ) -> dict[TopicPartition, int]:
        """Produce `records` and wait for the broker's acknowledgement of every one.

        Returns, per partition written, the offset after its last record: the true end of
        what was published, which brokers' watermarks may report late. Raises
        `ProduceRefusedError` naming the records refused for good (too large, invalid) once
        every other one is acknowledged, and `TransientError` if any record is neither
        acknowledged nor refused in time: the caller retries, it never assumes the write
        happened.
        """
        if self._fatal is not None:
            raise self._fatal
        carried = self._carried
        if len(carried) > _MAX_CARRIED:  # retries abandoned (partitions moved on): forget them
            carried.clear()
        cells: list[list[Any]] = []  # per record: [state, ...], updated by its delivery report
        for record in records:
            earlier = carried.get(record)
            if earlier:  # this call is a retry: acknowledged already, or still in flight
                cells.append(earlier.pop(0))
                if not earlier:
                    del carried[record]
                continue
            cell: list[Any] = ["pending"]
            cells.append(cell)
            try:
                self._produce(record, _reporter(cell))
            except _Refused as local:
                cell[:] = ["refused", local.code]
        try:
            remaining = self._producer.flush(timeout_s)
        except (KafkaException, SystemError) as exc:
            self._fail(exc)
        if any(c[0] == "fatal" for c in cells):  # reported fatal (the cause not said)
            self._fail(KafkaException(KafkaError(KafkaError._FATAL)))
        unfinished = [c for c in cells if c[0] in ("pending", "failed")]
        refused = {n: str(c[1]) for n, c in enumerate(cells) if c[0] == "refused"}
        if remaining or unfinished or refused:
            for record, cell in zip(records, cells, strict=True):
                if cell[0] in ("pending", "delivered"):
                    carried.setdefault(record, []).append(cell)
        if remaining or unfinished:
            failed = [c[1] for c in cells if c[0] == "failed"]
            raise TransientError(
                f"{len(unfinished)} record(s) unacknowledged or failed: {failed[:1]}"
            )
        if refused:
            raise ProduceRefusedError(refused)
        ends: dict[TopicPartition, int] = {}
        for _, tp, end in cells:
            ends[tp] = max(ends.get(tp, 0), end)
        return ends

    def send(self, records: Iterable[OutboundRecord]) -> None:
        """Produce without waiting (bulk publishing); call `flush()` to wait for delivery."""
        for record in records:
            self._produce(record, None)

    def flush(self, timeout_s: float = 30.0) -> int:
        return int(self._producer.flush(timeout_s))

    def _produce(self, record: OutboundRecord, on_delivery: Callable[..., None] | None) -> None:
        """Hand one record to librdkafka; `_Refused` if it rejects it locally for good."""
        deadline = time.monotonic() + 60.0
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers) or None,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:  # local queue full: let deliveries drain, then go on
                if time.monotonic() > deadline:
                    raise TransientError("the producer's queue stayed full for 60 s") from None
                self._producer.poll(0.1)
            except SystemError as exc:
                self._fail(exc)
            except KafkaException as exc:
                error = exc.args[0]
                if fatal.is_fatal(error):
                    self._fail(exc)
                if error.code() in PERMANENT_PRODUCE_ERRORS:
                    raise _Refused(error.name()) from exc
                raise TransientError(f"produce to {record.topic} failed: {exc}") from exc

    def _fail(self, exc: BaseException) -> NoReturn:
        """Raise the producer's fatal error if `exc` is one (reading its cause), else `exc`."""
        found = fatal.from_exception(self._name, exc)
        if found is None:
            raise exc
        if self._fatal is None and found.code == "_FATAL":  # the cause waits in the queue
            self._fatal = self._served_fatal()
        self._fatal = self._fatal or found
        raise self._fatal from exc

    def _served_fatal(self) -> FatalClientError | None:
        """The fatal cause librdkafka queued for `error_cb`, which a poll raises."""
        try:
            self._producer.poll(0)
        except (KafkaException, SystemError) as exc:
            return fatal.from_exception(self._name, exc)
        return None


def _reporter(cell: list[Any]) -> Callable[[KafkaError | None, Message], None]:
    """A delivery callback that writes one record's outcome into `cell`."""

    def report(error: KafkaError | None, message: Message) -> None:
        if error is None:
            tp = TopicPartition(str(message.topic()), int(message.partition() or 0))
            cell[:] = ["delivered", tp, int(message.offset() or 0) + 1]
        elif fatal.is_fatal(error):
            cell[:] = ["fatal", error.str()]
        elif error.code() in PERMANENT_PRODUCE_ERRORS:
            cell[:] = ["refused", error.name()]
        else:
            cell[:] = ["failed", error.str()]

    return report


class _Refused(Exception):  # noqa: N818 - internal: librdkafka refused a record locally
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
